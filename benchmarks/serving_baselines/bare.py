"""The floor of benchmarks/serving.py: a bare Starlette endpoint that reads the request body
and answers a constant, served by uvicorn with uvloop and httptools like `fermion serve`.

    python -m uvicorn bare:app --app-dir benchmarks/serving_baselines --loop uvloop \
        --http httptools --no-access-log --host 127.0.0.1 --port P
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"predictions":[0]}'


async def predict(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
