"""`FakeAzureServer` speaks Azure OpenAI's paths, auth errors and content-filter shapes over raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest

from turnout.testing import FakeAzureServer, Fault, Reply

CHAT = "/openai/deployments/my-mini/chat/completions"
BODY = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def azure() -> Iterator[FakeAzureServer]:
    with FakeAzureServer({"my-mini": "gpt-4o-mini"}, api_key="k", api_version="2024-10-21") as server:
        yield server


def post(server: FakeAzureServer, path: str, body: object = BODY, **headers: str) -> httpx2.Response:
    return httpx2.post(server.url + path, json=body, headers={"api-key": "k", **headers})


def test_a_deployment_path_needs_its_api_version(azure: FakeAzureServer) -> None:
    assert post(azure, CHAT).status_code == 404
    assert post(azure, CHAT + "?api-version=2023-01-01").json() == {
        "error": {"code": "404", "message": "Resource not found"}
    }
    reply = post(azure, CHAT + "?api-version=2024-10-21")
    assert reply.status_code == 200 and reply.json()["model"] == "gpt-4o-mini"
    assert reply.json()["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"] is False
    assert reply.headers["x-ratelimit-remaining-tokens"] and reply.headers["apim-request-id"]


def test_wrong_key_and_unknown_deployment_get_azures_bodies(azure: FakeAzureServer) -> None:
    denied = post(azure, CHAT + "?api-version=2024-10-21", **{"api-key": "nope"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "401"
    assert "Access denied" in denied.json()["error"]["message"]
    missing = post(azure, "/openai/deployments/other/chat/completions?api-version=2024-10-21")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"
    bearer = post(azure, "/openai/v1/chat/completions", {**BODY, "model": "my-mini"}, authorization="Bearer k")
    assert bearer.status_code == 200


def test_content_filter_fault_and_filtered_reply(azure: FakeAzureServer) -> None:
    azure.enqueue(Fault.content_filter({"hate": "medium"}))
    refused = post(azure, CHAT + "?api-version=2024-10-21").json()["error"]
    assert refused["code"] == "content_filter" and refused["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert refused["innererror"]["content_filter_result"]["hate"] == {"filtered": True, "severity": "medium"}
    azure.enqueue(Reply("cut", finish_reason="content_filter", content_filter={"violence": "high"}))
    choice = post(azure, CHAT + "?api-version=2024-10-21").json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["content_filter_results"]["violence"] == {"filtered": True, "severity": "high"}


def test_a_stream_opens_with_the_prompt_filter_event(azure: FakeAzureServer) -> None:
    raw = post(azure, CHAT + "?api-version=2024-10-21", {**BODY, "stream": True}).text
    events = [line.removeprefix("data: ") for line in raw.splitlines() if line.startswith("data: ")]
    first = json.loads(events[0])
    assert first["choices"] == [] and first["model"] == "" and "prompt_filter_results" in first
    assert events[-1] == "[DONE]"
