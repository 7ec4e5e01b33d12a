"""The fallback load generator of benchmarks/serving.py, for machines without `wrk`.

    python loadgen.py URL BODY_FILE CONNECTIONS SECONDS

Closed loop like wrk: CONNECTIONS keep-alive HTTP/1.1 connections, each sending the POST again
as soon as its answer arrives, for SECONDS. Raw sockets on asyncio (uvloop when installed) so
that the client costs as little CPU as Python allows; it still costs far more than wrk, which
on a 2-core machine takes CPU from the server under test. Prints one line,
`RESULT {json}`, with the same fields as the benchmark's wrk script.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def connection(
    host: str, port: int, request: bytes, stop: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            headers = head.lower()
            if b"transfer-encoding: chunked" in headers:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                length = int(headers.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            if not 200 <= status < 400:
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[1] += 1
    finally:
        writer.close()


async def run(url: str, body: bytes, connections: int, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = [0, 0]  # non-2xx/3xx answers, broken connections
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(
        *(connection(host, port, request, stop, latencies, errors) for _ in range(connections))
    )
    duration = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6

    return {
        "requests": len(latencies),
        "duration_us": duration * 1e6,
        "p50_us": percentile(50) if latencies else 0.0,
        "p99_us": percentile(99) if latencies else 0.0,
        "connect": 0,
        "read": errors[1],
        "write": 0,
        "status": errors[0],
        "timeout": 0,
    }


def main() -> None:
    url, body_file, connections, seconds = sys.argv[1:5]
    with open(body_file, "rb") as handle:
        body = handle.read()
    work = run(url, body, int(connections), float(seconds))
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
