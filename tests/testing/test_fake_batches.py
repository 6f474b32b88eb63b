"""FakeServer's Files and Batch APIs (openai flavour), in the shapes of OpenAI's reference."""

from __future__ import annotations

import json

import httpx2

from turnout.testing import FakeServer, Fault, Reply


def test_upload_create_poll_and_download() -> None:
    lines = [
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        },
        {
            "custom_id": "b",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "there"}]},
        },
        {"custom_id": "c", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini"}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with (
        FakeServer(flavor="openai", api_key="sk-x") as server,
        httpx2.Client(base_url=server.base_url, headers={"authorization": "Bearer sk-x"}) as http,
    ):
        server.enqueue(Reply("first"), Fault.rate_limit())
        server.batch_polls = 2
        uploaded = http.post("/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", data)}).json()
        assert uploaded["object"] == "file" and uploaded["purpose"] == "batch" and uploaded["bytes"] == len(data)
        assert http.get(f"/files/{uploaded['id']}/content").content == data
        body = {"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        created = http.post("/batches", json=body).json()
        assert created["object"] == "batch" and created["status"] == "validating"
        polled = http.get(f"/batches/{created['id']}").json()
        assert polled["status"] == "in_progress" and polled["output_file_id"] is None
        done = http.get(f"/batches/{created['id']}").json()
        assert done["status"] == "completed"
        assert done["request_counts"] == {"total": 3, "completed": 1, "failed": 2}
        output = [json.loads(t) for t in http.get(f"/files/{done['output_file_id']}/content").content.splitlines()]
        errors = [json.loads(t) for t in http.get(f"/files/{done['error_file_id']}/content").content.splitlines()]
        assert http.get("/batches/batch_nope").status_code == 404
        assert http.post("/files", files={"file": ("in.jsonl", data)}).status_code == 400  # no purpose
    assert [(o["custom_id"], o["response"]["status_code"]) for o in output] == [("a", 200)]
    assert output[0]["response"]["body"]["choices"][0]["message"]["content"] == "first"
    assert sorted((e["custom_id"], e["response"]["status_code"]) for e in errors) == [("b", 429), ("c", 400)]
    assert server.chat_requests == []  # batch lines are not chat requests on the wire
