"""API keys at the server: 401, 403, 429 with Retry-After, revocation seen within seconds,
probes and metrics open, the key's name (never the key) in the access log."""

from __future__ import annotations

import json
import time
from typing import Any

from fermion.serving.auth import KeyGuard
from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}  # a valid row of the `credit` model
PREDICT = "/v1/models/credit/predict"
OPTIONS = ServeOptions(auth=True, key_refresh_s=0.05)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_guard_every_model_endpoint(serve: Any, served_workspace: Workspace) -> None:
    ws = served_workspace
    _, good = ws.keys.create("app-good", ["predict:credit"])
    _, other = ws.keys.create("app-other", ["predict:churn"])
    _, star = ws.keys.create("app-star", ["predict:*"])
    guard = KeyGuard(ws.keys)
    with serve(ws, ["credit"], OPTIONS, guard=guard) as (client, log):
        missing = client.post(PREDICT, json={"rows": [ROW]})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthenticated"
        assert (
            client.post(PREDICT, json={"rows": [ROW]}, headers=bearer("fmn_x_y")).status_code == 401
        )
        forbidden = client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(other))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        assert client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(good)).status_code == 200
        assert (
            client.post(PREDICT, json={"rows": [ROW]}, headers={"X-API-Key": star}).status_code
            == 200
        )
        assert client.get("/v1/models/credit").status_code == 401
        assert client.get("/v1/models/credit", headers=bearer(good)).status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(open_path).status_code == 200
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    keys = [line["key"] for line in lines if line["path"] == PREDICT and line["status"] == 200]
    assert keys == ["app-good", "app-star"]
    assert good not in log.getvalue()


def test_over_the_rate_is_429_with_retry_after(serve: Any, served_workspace: Workspace) -> None:
    ws = served_workspace
    _, key = ws.keys.create("app-slow", ["predict:credit"], rate="1/m")
    with serve(ws, ["credit"], OPTIONS, guard=KeyGuard(ws.keys)) as (client, _):
        assert client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key)).status_code == 200
        limited = client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["code"] == "rate_limited"


def test_a_revoked_key_is_refused_within_seconds(serve: Any, served_workspace: Workspace) -> None:
    ws = served_workspace
    _, key = ws.keys.create("app-revoked", ["predict:credit"])
    with serve(ws, ["credit"], OPTIONS, guard=KeyGuard(ws.keys)) as (client, _):
        assert client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key)).status_code == 200
        ws.keys.revoke("app-revoked")
        deadline = time.monotonic() + 5
        while client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key)).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.05)
        answer = client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key))
        assert answer.status_code == 401
