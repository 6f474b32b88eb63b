"""The fakes' embeddings routes speak each server's wire format (raw HTTP, no turnout client)."""

from __future__ import annotations

import base64
import struct

import httpx2
import pytest

from turnout.testing import FakeServer, FakeTEIServer
from turnout.testing._embed import vector


def test_vllm_generation_server_has_no_embeddings_route() -> None:
    with FakeServer("vllm") as server:
        response = httpx2.post(f"{server.base_url}/embeddings", json={"model": "fake-model", "input": ["a"]})
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


def test_vllm_pooling_server_embeds_and_has_no_chat() -> None:
    with FakeServer("vllm", models=["bge"], runner="pooling") as server:
        chat = httpx2.post(f"{server.base_url}/chat/completions", json={"model": "bge", "messages": []})
        reply = httpx2.post(f"{server.base_url}/embeddings", json={"model": "bge", "input": "Hello world"}).json()
        empty = httpx2.post(f"{server.base_url}/embeddings", json={"model": "bge", "input": []})
    assert (chat.status_code, chat.json()) == (404, {"detail": "Not Found"})
    assert reply["id"].startswith("embd-") and reply["object"] == "list" and reply["model"] == "bge"
    assert reply["data"] == [{"object": "embedding", "index": 0, "embedding": vector("bge", "Hello world")}]
    assert reply["usage"]["prompt_tokens"] == 3 and reply["usage"]["completion_tokens"] == 0  # 2 words + BOS
    assert empty.status_code == 400 and empty.json()["error"]["message"] == "You must pass at least one prompt"


def test_openai_base64_and_dimensions() -> None:
    with FakeServer("openai") as server:
        body = {"model": "text-embedding-3-large", "input": ["x"], "encoding_format": "base64", "dimensions": 3}
        item = httpx2.post(f"{server.base_url}/embeddings", json=body).json()["data"][0]
        chat_model = httpx2.post(f"{server.base_url}/embeddings", json={"model": "gpt-4o", "input": ["x"]})
        blank = httpx2.post(f"{server.base_url}/embeddings", json={"model": "text-embedding-3-large", "input": [""]})
    raw = base64.b64decode(item["embedding"])
    assert list(struct.unpack("<3f", raw)) == vector("text-embedding-3-large", "x", 3)
    assert chat_model.status_code == 403 and "embeddings from this model" in chat_model.json()["error"]["message"]
    assert blank.status_code == 400


@pytest.mark.parametrize("path", ["/", "/embed"])
def test_tei_embeds_and_validates(path: str) -> None:
    with FakeTEIServer(max_client_batch_size=2, max_input_length=6, api_key="k") as tei:
        auth = {"authorization": "Bearer k"}
        one = httpx2.post(tei.url + path, json={"inputs": "hi"}, headers=auth)
        many = httpx2.post(tei.url + path, json={"inputs": ["a", "b", "c"]}, headers=auth)
        long = httpx2.post(tei.url + path, json={"inputs": ["one two three four five"]}, headers=auth)
        anonymous = httpx2.post(tei.url + path, json={"inputs": "hi"})
    assert one.json() == [vector(tei.model_id, "hi")] and one.headers["x-compute-tokens"] == "3"
    assert many.status_code == 413
    assert many.json() == {"error": "batch size 3 > maximum allowed batch size 2", "error_type": "validation"}
    assert long.status_code == 413 and "`inputs` must have less than 6 tokens. Given: 7" in long.json()["error"]
    assert (anonymous.status_code, anonymous.content) == (401, b"")
