"""A fresh process pays only for what its first call needs: modules, pydantic schemas, work per message."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

import turnout
from turnout.testing import FakeServer
from turnout.types import FunctionCall, Message, ToolCall

#: Modules a client built from a dict config must not load for its first chat call: other
#: providers and their option classes, the CLI, tools, telemetry, cost estimates, the TOML parser,
#: the test servers, the genai-prices catalogue (a model it lists is priced from turnout's slice of
#: it), tenacity (a target's retry decisions start at its first failure), the code of features the
#: config does not use (embeddings, [state] on Redis, a PostgreSQL ledger), the wire models of
#: replies the fast path does not take, and for a sync client asyncio and the thread pool.
NOT_FOR_THE_FIRST_CALL = (
    "asyncio",
    "concurrent.futures",
    "genai_prices",
    "opentelemetry",
    "tenacity",
    "tomllib",
    "turnout._output_spec",
    "turnout._routes_cli",
    "turnout._semconv",
    "turnout._state_budgets",
    "turnout._state_client",
    "turnout._state_scripts",
    "turnout._state_writes",
    "turnout._telemetry",
    "turnout._tool_run",
    "turnout.budget",
    "turnout.cli",
    "turnout.embeddings",
    "turnout.cost._usage_cli",
    "turnout.cost._budget_status",
    "turnout.cost._ledger_pg",
    "turnout.cost._ledger_rows",
    "turnout.cost.estimate",
    "turnout.ledger",
    "turnout.policies._tenacity",
    "turnout.pricing",
    "turnout.providers._embed_wire",
    "turnout.providers._openai_models",
    "turnout.providers.azure",
    "turnout.providers.huggingface",
    "turnout.providers.tgi_options",
    "turnout.providers.vllm",
    "turnout.providers.vllm_options",
    "turnout.templates",
    "turnout.testing",
    "turnout.throughput",
    "turnout.tools",
)

#: Loaded by the first call (for its context window and price), never by building the client.
NOT_FOR_THE_CLIENT = ("turnout.cost._price_slice",)

#: pydantic models whose validators the first chat call does not need: built when first used. A
#: config of providers alone is not validated again as a whole (each provider's table was), and
#: the tables it leaves out take their defaults unvalidated.
NOT_BUILT = (
    "turnout.config.CacheConfig",
    "turnout.config.Config",
    "turnout.config.HooksConfig",
    "turnout.config.TelemetryConfig",
    "turnout.cost.spend_ledger.LedgerConfig",
    "turnout.embeddings.EmbeddingRequest",
    "turnout.embeddings.EmbeddingResponse",
    "turnout.providers.tgi_options.TGIOptions",
    "turnout.providers.vllm_options.VLLMOptions",
    "turnout.policies.breaker.BreakerPolicy",
    "turnout.policies.breaker.TargetHealth",
    "turnout.policies.retry.RetryPolicy",
    "turnout.policies.route.RoutePolicy",
    "turnout.providers._openai_models._Chunk",
    "turnout.shared.OnFailure",
    "turnout.shared.StateConfig",
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
        model = vars(sys.modules[module]).get(name) if module in sys.modules else None  # no lazy import
        if model is not None and model.__pydantic_complete__:
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


_ASYNC_PROBE = """
import asyncio, json, sys
import turnout

async def main(base_url):
    config = {"providers": {"p": {"type": "openai", "base_url": base_url, "api_key": "sk-test"}}}
    async with turnout.AsyncClient(config=config) as client:
        reply = await client.chat(model="p:gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    return reply

reply = asyncio.run(main(sys.argv[1]))
usage = [reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens or 0]
print(json.dumps([str(reply.cost.total), usage, sorted(m for m in sys.modules if m.startswith("genai_prices"))]))
"""


def test_an_async_first_call_is_priced_without_the_catalogue(tmp_path: Path) -> None:
    """``AsyncClient`` too: the first reply's price and context window come from the slice, not genai-prices."""
    env = {**os.environ, "TURNOUT_LEDGER": str(tmp_path / "ledger.sqlite3")}
    with FakeServer(flavor="openai") as server:
        out = subprocess.run(
            [sys.executable, "-c", _ASYNC_PROBE, server.base_url],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=60,
        )
    total, (prompt, completion, cached), loaded = json.loads(out.stdout)
    from genai_prices import Usage as CatalogueUsage
    from genai_prices import calc_price

    usage = CatalogueUsage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)
    assert Decimal(total) == calc_price(usage, "gpt-4o-mini", provider_id="openai").total_price
    assert loaded == []


def test_the_probe_sees_what_is_loaded(tmp_path: Path) -> None:
    """The probe is not blind: a module it lists shows up once something imports it."""
    with FakeServer(flavor="openai") as server:
        built = ["turnout.providers.openai.OpenAIConfig"]
        argument = json.dumps([["turnout.engine"], ["turnout.config"], built, server.base_url])
        env = {**os.environ, "TURNOUT_LEDGER": str(tmp_path / "ledger.sqlite3")}
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, argument], capture_output=True, text=True, check=True, env=env, timeout=60
        )
    report = json.loads(out.stdout)
    assert "turnout.engine" in report["client"]
    assert "turnout.config" in report["client"]
    assert report["client_built"] == ["turnout.providers.openai.OpenAIConfig"]


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


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_conversation_sent_again_is_not_validated_again(kind: str, tmp_path: Path) -> None:
    """The second call of a growing conversation reuses the first call's `Message` objects; only the new one is new."""
    tag = os.urandom(6).hex()  # contents no other test sent
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"{tag} {i}"} for i in range(20)]
    requests: list[list[Message]] = []
    with FakeServer(flavor="openai") as server:
        config = _config(server.base_url, tmp_path)
        server.enqueue(turnout.testing.Reply("one"), turnout.testing.Reply("two"))
        if kind == "sync":
            with turnout.Client(config=config) as client:
                client.on(turnout.events.CallStarted, lambda e: requests.append(e.request.messages))  # type: ignore[union-attr]
                client.chat(model="p:gpt-4o-mini", messages=messages)
                messages.append({"role": "assistant", "content": f"{tag} reply"})
                client.chat(model="p:gpt-4o-mini", messages=[dict(m) for m in messages])  # equal dicts, new objects
        else:
            import asyncio

            async def go() -> None:
                async with turnout.AsyncClient(config=config) as client:
                    client.on(turnout.events.CallStarted, lambda e: requests.append(e.request.messages))  # type: ignore[union-attr]
                    await client.chat(model="p:gpt-4o-mini", messages=messages)
                    messages.append({"role": "assistant", "content": f"{tag} reply"})
                    await client.chat(model="p:gpt-4o-mini", messages=[dict(m) for m in messages])

            asyncio.run(go())
        sent = [r.json["messages"] for r in server.chat_requests]
    first, second = requests
    assert [a is b for a, b in zip(first, second[:20], strict=True)] == [True] * 20
    assert second[20] not in first and second[20].content == f"{tag} reply"
    assert sent == [messages[:20], messages]


def test_remembered_messages_are_written_as_validated_ones(tmp_path: Path) -> None:
    """A body from remembered messages has the bytes of a one-pass dump: key order, ``None`` left out, escapes."""
    tag = os.urandom(6).hex()
    messages: list[Any] = [
        {"content": f'{tag} "quoted" \\ ünïcode ✓ \U0001f600 \n\t\x00', "role": "system"},  # fields out of order
        {"role": "user", "content": f"{tag} hi", "name": None, "x_extra": "kept"},
        {"role": "assistant", "content": None, "tool_call_id": f"{tag}"},
        Message(role="user", content=f"{tag} own"),
    ]
    with FakeServer(flavor="openai") as server:
        config = _config(server.base_url, tmp_path)
        with turnout.Client(config=config) as client:
            client.chat(model="p:gpt-4o-mini", messages=messages)  # validated, remembered
            client.chat(model="p:gpt-4o-mini", messages=messages[:3])  # every message remembered
            client.chat(model="p:gpt-4o-mini", messages=messages)  # remembered ones and a Message
            client.chat(model="p:gpt-4o-mini", messages=messages[:3])  # joined from each message's JSON
        bodies = [r.body for r in server.chat_requests]
    validated = TypeAdapter(list[Message]).validate_python(messages)
    one_pass = TypeAdapter(list[Message]).dump_json(validated, exclude_none=True)
    assert bodies[0] == bodies[2] == b'{"model":"gpt-4o-mini","messages":' + one_pass + b"}"
    assert (
        bodies[1]
        == bodies[3]
        == (b'{"model":"gpt-4o-mini","messages":' + one_pass[: one_pass.rindex(b',{"role":"user"')] + b"]}")
    )


def test_a_changed_message_is_validated_again(tmp_path: Path) -> None:
    """Remembering goes by content, not by object: a dict changed between calls sends (and checks) its new content."""
    tag = os.urandom(6).hex()
    message: dict[str, Any] = {"role": "user", "content": f"{tag} before"}
    with FakeServer(flavor="openai") as server:
        config = _config(server.base_url, tmp_path)
        with turnout.Client(config=config) as client:
            client.chat(model="p:gpt-4o-mini", messages=[message])
            message["content"] = f"{tag} after"
            client.chat(model="p:gpt-4o-mini", messages=[message])
            message["role"] = "robot"
            with pytest.raises(turnout.InvalidArgumentError, match=r"0\.role: Input should be 'system'"):
                client.chat(model="p:gpt-4o-mini", messages=[message])
        sent = [r.json["messages"] for r in server.chat_requests]
    assert sent == [[{"role": "user", "content": f"{tag} before"}], [{"role": "user", "content": f"{tag} after"}]]


def test_a_wrong_message_after_remembered_ones_is_named_at_its_position(tmp_path: Path) -> None:
    """Only new messages are validated, but an error names the position in the whole list."""
    tag = os.urandom(6).hex()
    messages: list[Any] = [{"role": "user", "content": f"{tag} {i}"} for i in range(5)]
    with FakeServer(flavor="openai") as server:
        with turnout.Client(config=_config(server.base_url, tmp_path)) as client:
            client.chat(model="p:gpt-4o-mini", messages=messages)
            wrong = r"arguments: 5\.content\.str: Input should be a valid string"
            with pytest.raises(turnout.InvalidArgumentError, match=wrong):
                client.chat(model="p:gpt-4o-mini", messages=[*messages, {"role": "user", "content": 7}])
            with pytest.raises(turnout.InvalidArgumentError, match=r"messages\[6\] is a bare string"):
                client.chat(model="p:gpt-4o-mini", messages=[*messages, {"role": "user", "content": 7}, "hi"])


def test_remembered_messages_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory of validated messages is cleared when it passes the limit; it never holds a stale id."""
    from turnout import _messages as messages_module

    seen = messages_module._Seen()
    monkeypatch.setattr(messages_module, "_SEEN", seen)
    monkeypatch.setattr(messages_module._Seen, "LIMIT", 10 * (1024 + 2 * 19))
    batch: list[Any] = [{"role": "user", "content": f"message {i:03d}"} for i in range(25)]  # 4 + 11 bytes of text
    normalized = messages_module.normalize_messages(batch)
    assert len(seen.messages) == len(seen.json) == 5  # cleared at the 11th and the 21st
    assert seen.size == 5 * (1024 + 2 * (4 + 11))
    assert all(seen.json[id(m)][0] is m for m in seen.messages.values())
    assert [m.content for m in normalized] == [m["content"] for m in batch]
    held = messages_module.normalize_messages(batch[-5:])
    assert held == normalized[-5:] and all(a is b for a, b in zip(held, normalized[-5:], strict=True))
    one_pass = messages_module._MESSAGES.dump_json(held, exclude_none=True)
    assert [messages_module.dump_messages(held) for _ in range(3)] == [one_pass] * 3
    written = [b'{"role":"user","content":"message %03d"}' % i for i in range(20, 25)]
    assert [seen.json[id(m)][1] for m in held] == written


def test_a_message_is_written_alone_only_when_sent_again() -> None:
    """A remembered message's own JSON is written at the second body that holds it, not the first."""
    from turnout import _messages as messages_module

    tag = os.urandom(6).hex()
    messages: list[Any] = [{"role": "user", "content": f"{tag} {i}"} for i in range(3)]
    normalized = messages_module.normalize_messages(messages)
    states = [messages_module._SEEN.json[id(m)][1] for m in normalized]
    messages_module.dump_messages(normalized)
    after_one = [messages_module._SEEN.json[id(m)][1] for m in normalized]
    messages_module.dump_messages(normalized)
    after_two = [messages_module._SEEN.json[id(m)][1] for m in normalized]
    assert states == [None] * 3 and after_one == [b""] * 3
    assert after_two == [b'{"role":"user","content":"%s %d"}' % (tag.encode(), i) for i in range(3)]


def test_only_text_messages_are_remembered() -> None:
    """A dict with content parts, numbers or lists (mutable, or equal across types) is validated every time."""
    from turnout import _messages as messages_module

    tag = os.urandom(6).hex()
    parts: dict[str, Any] = {"role": "user", "content": [{"type": "text", "text": tag}]}
    number: dict[str, Any] = {"role": "user", "content": f"{tag}", "x_weight": 1}
    text: dict[str, Any] = {"role": "user", "content": f"{tag}", "x_note": "n"}
    batch: list[Any] = [parts, number, text]
    first, second = messages_module.normalize_messages(batch), messages_module.normalize_messages(list(batch))
    assert [a is b for a, b in zip(first, second, strict=True)] == [False, False, True]
    assert second[1].model_dump()["x_weight"] == 1
