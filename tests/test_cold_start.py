"""A fresh process pays only for what its first call needs: modules, pydantic schemas, work per message."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout.testing import FakeServer
from turnout.types import FunctionCall, Message, ToolCall

#: Modules a client built from a dict config must not load for its first chat call: other
#: providers, the CLI, tools, telemetry, cost estimates, the TOML parser, the test servers.
NOT_FOR_THE_FIRST_CALL = (
    "opentelemetry",
    "tomllib",
    "turnout._estimate",
    "turnout._routes_cli",
    "turnout._semconv",
    "turnout._telemetry",
    "turnout._tool_run",
    "turnout._usage_cli",
    "turnout.cli",
    "turnout.providers.azure",
    "turnout.providers.huggingface",
    "turnout.providers.vllm",
    "turnout.templates",
    "turnout.testing",
    "turnout.throughput",
    "turnout.tools",
)

#: Loaded by the first call (for its context window and price), never by building the client.
NOT_FOR_THE_CLIENT = ("genai_prices",)

#: pydantic models whose validators the first chat call does not need: built when first used.
NOT_BUILT = (
    "turnout.embeddings.EmbeddingRequest",
    "turnout.embeddings.EmbeddingResponse",
    "turnout.options.VLLMOptions",
    "turnout.options.TGIOptions",
    "turnout.policies.breaker.TargetHealth",
    "turnout.providers._openai_wire._Chunk",
    "turnout.types.ChatChunk",
    "turnout.types.ChatResponse",
)

_PROBE = """
import importlib, json, sys
import turnout

def loaded(names):
    return sorted(m for m in sys.modules if m in names or m.startswith(tuple(n + "." for n in names)))

def built(names):
    out = []
    for ref in names:
        module, _, name = ref.rpartition(".")
        if module in sys.modules and getattr(sys.modules[module], name).__pydantic_complete__:
            out.append(ref)
    return out

first, client_only, unbuilt, base_url = json.loads(sys.argv[1])
config = {"providers": {"p": {"type": "openai", "base_url": base_url, "api_key": "sk-test"}}}
client = turnout.Client(config=config)
report = {"client": loaded(tuple(first + client_only)), "client_built": built(unbuilt)}
reply = client.chat(model="p:gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
report.update(text=reply.text, call=loaded(tuple(first)), call_built=built(unbuilt))
client.close()
print(json.dumps(report))
"""


def _probe(tmp_path: Path, base_url: str) -> dict[str, Any]:
    argument = json.dumps([list(NOT_FOR_THE_FIRST_CALL), list(NOT_FOR_THE_CLIENT), list(NOT_BUILT), base_url])
    env = {**os.environ, "TURNOUT_LEDGER": str(tmp_path / "ledger.sqlite3")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, argument], capture_output=True, text=True, check=True, env=env, timeout=60
    )
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_client_and_first_call_load_only_what_a_chat_needs(tmp_path: Path) -> None:
    """``Client(config)`` then one chat, in a fresh process: no module or schema outside a chat's path."""
    with FakeServer(flavor="openai") as server:
        report = _probe(tmp_path, server.base_url)
    assert report["text"]  # the call went through
    assert report["client"] == []
    assert report["call"] == []
    assert report["client_built"] == []
    assert report["call_built"] == []


def test_the_probe_sees_what_is_loaded(tmp_path: Path) -> None:
    """The probe is not blind: a module it lists shows up once something imports it."""
    with FakeServer(flavor="openai") as server:
        argument = json.dumps([["turnout.engine"], ["turnout.config"], ["turnout.config.Config"], server.base_url])
        env = {**os.environ, "TURNOUT_LEDGER": str(tmp_path / "ledger.sqlite3")}
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, argument], capture_output=True, text=True, check=True, env=env, timeout=60
        )
    report = json.loads(out.stdout)
    assert "turnout.engine" in report["client"]
    assert "turnout.config" in report["client"]
    assert report["client_built"] == ["turnout.config.Config"]


def _config(base_url: str, tmp_path: Path) -> dict[str, Any]:
    provider = {"type": "openai", "base_url": base_url, "api_key": "sk-test"}
    return {"providers": {"p": provider}, "ledger": {"path": str(tmp_path / "ledger.sqlite3")}}


def _conversation(size: int) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": f"message {i}"} for i in range(size)]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_long_conversation_is_serialised_in_one_pass(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The body of a 300-message call is written without one ``model_dump`` per message, per attempt."""
    dumps = 0
    original = Message.model_dump

    def counting(self: Message, **kwargs: Any) -> dict[str, Any]:
        nonlocal dumps
        dumps += 1
        return original(self, **kwargs)

    monkeypatch.setattr(Message, "model_dump", counting)
    messages = _conversation(300)
    with FakeServer(flavor="openai") as server:
        config = _config(server.base_url, tmp_path)
        server.enqueue(turnout.testing.Fault.server_error(), turnout.testing.Reply("ok"))
        if kind == "sync":
            with turnout.Client(config=config) as client:
                reply = client.chat(model="p:gpt-4o-mini", messages=messages)
        else:
            import asyncio

            async def go() -> turnout.ChatResponse:
                async with turnout.AsyncClient(config=config) as client:
                    return await client.chat(model="p:gpt-4o-mini", messages=messages)

            reply = asyncio.run(go())
        sent = [r.json for r in server.chat_requests]
    assert reply.text == "ok"
    assert len(sent) == 2  # a retry: the body was built twice
    assert dumps == 0
    for body in sent:
        assert list(body) == ["model", "messages"]
        assert body["messages"] == messages


def test_messages_keep_their_fields_on_the_wire(tmp_path: Path) -> None:
    """One-pass serialisation sends what per-message dumps sent: no ``None`` fields, extra fields kept, key order."""
    messages: list[Any] = [
        {"role": "system", "content": 'be terse, "quoted", ünïcode ✓'},
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": None},
        Message(role="assistant", tool_calls=[ToolCall(id="c1", function=FunctionCall(name="f", arguments="{}"))]),
        {"role": "tool", "tool_call_id": "c1", "content": "42", "x_extra": {"a": [1, 2]}},
    ]
    with FakeServer(flavor="openai") as server:
        config = _config(server.base_url, tmp_path)
        with turnout.Client(config=config) as client:
            client.chat(model="p:gpt-4o-mini", messages=messages, max_tokens=5, extra_body={"top_k": 3})
            client.chat(model="p:gpt-4o-mini", messages="Hi", extra_body={"model": "other-id"})
        first, second = (r.body for r in server.chat_requests)
    expected = [m.model_dump(exclude_none=True) if isinstance(m, Message) else m for m in messages]
    expected[1] = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assert json.loads(first) == {"model": "gpt-4o-mini", "messages": expected, "max_tokens": 5, "top_k": 3}
    assert list(json.loads(first)) == ["model", "messages", "max_tokens", "top_k"]
    assert json.loads(second) == {"model": "other-id", "messages": [{"role": "user", "content": "Hi"}]}


def test_prompt_size_bound_matches_the_encoded_size() -> None:
    """The context-window precheck's size bound: the UTF-8 size of each message's text plus 8, however measured."""
    from turnout.engine.chat_call import _utf8_size

    rng = random.Random(7)
    alphabet = "abc xyz\n" + "éü✓日本" + "\U0001f600"
    for _ in range(200):
        messages = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.1:
                content: Any = None
            elif kind < 0.2:
                content = [{"type": "text", "text": "".join(rng.choices(alphabet, k=5))}]
            else:
                content = "".join(rng.choices(alphabet if rng.random() < 0.5 else "ascii ", k=rng.randint(0, 30)))
            messages.append(Message(role="user", content=content))
        assert _utf8_size(messages) == sum(len(str(m.content or "").encode()) + 8 for m in messages)
