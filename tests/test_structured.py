"""``response_model``: the schema (built once, strict when it can be), argument checks, re-asks, fallback, budgets.

The per-provider wire forms are in tests/providers/test_structured_output.py; the real vLLM server
in tests/vllm/test_structured_vllm.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

import turnout
from turnout import AsyncClient, Budget, BudgetExceededError, Client, OutputValidationError
from turnout._output_spec import OutputSpec, _spec
from turnout.testing import FakeServer, Reply

from .conftest import LLAMA, Runner

PRICE = {"input_per_million": "0.10", "output_per_million": "0.20"}
T = TypeVar("T")


class City(BaseModel):
    """A city and its population."""

    name: str
    population: int


class Trip(BaseModel):
    start: City
    stops: list[City]


def config_for(*servers: FakeServer, **route: Any) -> dict[str, Any]:
    """Providers ``a``, ``b``... (vLLM fakes, priced 0.10 / 0.20) and alias ``r`` over them in order."""
    names = "abcdef"[: len(servers)]
    return {
        "providers": {n: {"type": "vllm", "base_url": s.base_url} for n, s in zip(names, servers, strict=True)},
        "prices": {f"{n}:{LLAMA}": PRICE for n in names},
        "models": {"r": {"targets": [f"{n}:{LLAMA}" for n in names], **route}},
        "defaults": {"retry": {"max_attempts": 1}},
    }


def usd(prompt: int, completion: int) -> Decimal:
    return (Decimal("0.10") * prompt + Decimal("0.20") * completion) / 1_000_000


# -- the schema ------------------------------------------------------------------------------------


def test_schema_is_built_once_per_class(fake_vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    class Once(BaseModel):
        ok: bool

    calls: list[str] = []
    original = Once.model_json_schema.__func__  # type: ignore[attr-defined]

    def counting(cls: type[BaseModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Once, "model_json_schema", classmethod(counting))
    fake_vllm.enqueue(Reply('{"ok": true}'), Reply('{"ok": false}'))
    with Client(config=config_for(fake_vllm)) as client:
        assert client.chat("r", "?", response_model=Once).parsed == Once(ok=True)
        assert client.chat("r", "?", response_model=Once).parsed == Once(ok=False)
    assert calls == ["Once"]
    first, second = (r.json["response_format"] for r in fake_vllm.chat_requests)
    assert first == second


def test_every_object_is_closed_and_nested_models_stay_strict() -> None:
    spec = OutputSpec.of(Trip)
    assert spec.strict and spec.not_strict is None
    assert spec.schema["additionalProperties"] is False
    assert spec.schema["$defs"]["City"]["additionalProperties"] is False
    assert spec.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "Trip", "schema": spec.schema, "strict": True},
    }
    assert spec.schema["$defs"]["City"]["description"] == "A city and its population."


class WithDefault(BaseModel):
    name: str
    unit: str = "celsius"


class WithDict(BaseModel):
    counts: dict[str, int]


class WithMinLength(BaseModel):
    code: str = Field(min_length=3)


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (WithDefault, "field 'unit' is optional"),
        (WithDict, "#/properties/counts allows extra keys"),
        (WithMinLength, "uses 'minLength'"),
        (Open, "# allows extra keys"),
    ],
)
def test_a_schema_strict_mode_cannot_take_is_sent_with_strict_false(
    model: type[BaseModel], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    _spec.cache_clear()
    with caplog.at_level("DEBUG", logger="turnout"):
        spec = OutputSpec.of(model)
    assert not spec.strict
    assert f"response_model {model.__name__} is sent with strict=false: " in caplog.text and reason in caplog.text
    assert spec.not_strict is not None and reason in spec.not_strict
    assert spec.response_format["json_schema"]["strict"] is False


class Page(BaseModel, Generic[T]):
    items: list[T]


def test_the_name_is_what_openai_accepts() -> None:
    assert OutputSpec.of(Page[int]).name == "Page_int_"


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Oslo", "population": 1}',
        '```json\n{"name": "Oslo", "population": 1}\n```',
        ' {"name": "Oslo", "population": 1}\n',
    ],
)
def test_parse_tolerates_whitespace_and_a_code_fence(text: str) -> None:
    assert OutputSpec.of(City).parse(text) == City(name="Oslo", population=1)


# -- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"response_model": City, "response_format": {"type": "json_object"}},
            "cannot be combined with response_format",
        ),
        ({"response_model": City, "tools": [{"type": "function", "function": {"name": "f"}}]}, "combined with tools"),
        ({"response_model": City, "n": 2}, "n must be 1"),
        ({"response_model": dict}, "must be a pydantic model class"),
        ({"response_model": City, "output_retries": -1}, "output_retries must be an integer >= 0"),
        ({"output_retries": 2}, "output_retries needs response_model"),
    ],
)
def test_invalid_arguments_fail_before_sending(
    runner: Runner, fake_vllm: FakeServer, options: dict[str, Any], match: str
) -> None:
    for streamed in (False, True):
        with pytest.raises(turnout.InvalidArgumentError, match=match):
            runner.call(streamed, config_for(fake_vllm), "r", "Hi", **options)
    assert fake_vllm.chat_requests == []


def test_without_response_model_parsed_is_none(runner: Runner, fake_vllm: FakeServer) -> None:
    reply = runner.chat(config_for(fake_vllm), "r", "Hi")
    assert reply.parsed is None and "response_format" not in fake_vllm.chat_requests[0].json


# -- re-asks, exhaustion, fallback --------------------------------------------------------------


def test_route_output_retries_bound_the_re_asks(runner: Runner, fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(*[Reply("no", prompt_tokens=5, completion_tokens=1) for _ in range(3)])
    with pytest.raises(OutputValidationError) as info:
        runner.chat(config_for(fake_vllm, output_retries=2), "r", "?", response_model=City)
    assert [a.outcome for a in info.value.attempts] == ["OutputValidationError"] * 3
    assert len(fake_vllm.chat_requests) == 3
    # the last request carries both rejected replies and what was wrong with each
    roles = [m["role"] for m in fake_vllm.chat_requests[-1].json["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]


def test_a_failed_call_s_rejected_replies_are_in_the_ledger(
    runner: Runner, fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replies a call rejected were paid for: its ledger row has their tokens and cost, summed."""
    monkeypatch.setenv("TURNOUT_LEDGER", str(tmp_path / "spend.sqlite3"))
    fake_vllm.enqueue(*[Reply("no", prompt_tokens=5, completion_tokens=2) for _ in range(2)])
    config = config_for(fake_vllm, output_retries=1)
    with pytest.raises(OutputValidationError):
        runner.chat(config, "r", "?", response_model=City)
    with closing(sqlite3.connect(tmp_path / "spend.sqlite3")) as db:
        rows = db.execute("SELECT prompt_tokens, completion_tokens, cost, outcome, attempts FROM calls").fetchall()
    assert rows == [(10, 4, str(2 * usd(5, 2)), "OutputValidationError", 2)]


def test_a_call_s_output_retries_override_the_route(runner: Runner, fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply("no"), Reply('{"name": "Oslo", "population": 1}'))
    with pytest.raises(OutputValidationError) as info:
        runner.chat(config_for(fake_vllm, output_retries=3), "r", "?", response_model=City, output_retries=0)
    assert info.value.text == "no" and len(fake_vllm.chat_requests) == 1


def test_length_cut_reply_says_so(runner: Runner, fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply('{"name": "Os', finish_reason="length"))
    with pytest.raises(OutputValidationError, match="stopped at max_tokens: raise max_tokens") as info:
        runner.chat(config_for(fake_vllm), "r", "?", response_model=City, output_retries=0, max_tokens=5)
    assert info.value.text == '{"name": "Os'
    assert info.value.errors[0]["type"] == "json_invalid"


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_falls_back_on_invalid_output_when_the_route_says_so(runner: Runner, streamed: bool) -> None:
    with FakeServer(flavor="vllm", models=[LLAMA]) as a, FakeServer(flavor="vllm", models=[LLAMA]) as b:
        a.enqueue(Reply("", prompt_tokens=10, completion_tokens=0), Reply("", prompt_tokens=20, completion_tokens=0))
        b.enqueue(Reply('{"name": "Oslo", "population": 700000}', prompt_tokens=12, completion_tokens=9))
        config = config_for(a, b, fallback_on=["retryable", "invalid_output"])
        reply = runner.call(streamed, config, "r", "?", response_model=City)
    assert reply.parsed == City(name="Oslo", population=700000) and reply.provider == "b"
    outcomes = [(x.provider, x.outcome) for x in reply.attempts]
    if streamed:  # a stream is never re-asked: an empty reply delivered nothing, so the route moves on
        assert outcomes == [("a", "OutputValidationError"), ("b", "ok")]
        assert reply.cost is not None and reply.cost.total == usd(10, 0) + usd(12, 9)
    else:  # a's re-ask also fails, then b answers; every reply is paid for
        assert outcomes == [("a", "OutputValidationError"), ("a", "OutputValidationError"), ("b", "ok")]
        assert reply.cost is not None and reply.cost.total == usd(30, 0) + usd(12, 9)
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (42, 9)


def test_no_fallback_on_invalid_output_by_default(runner: Runner) -> None:
    with FakeServer(flavor="vllm", models=[LLAMA]) as a, FakeServer(flavor="vllm", models=[LLAMA]) as b:
        a.enqueue(Reply("no"), Reply("still no"))
        with pytest.raises(OutputValidationError) as info:
            runner.chat(config_for(a, b), "r", "?", response_model=City)
        assert info.value.text == "still no" and b.chat_requests == []


def test_a_stream_with_content_is_never_re_routed(runner: Runner) -> None:
    with FakeServer(flavor="vllm", models=[LLAMA]) as a, FakeServer(flavor="vllm", models=[LLAMA]) as b:
        a.enqueue(Reply("not json at all"))
        config = config_for(a, b, fallback_on=["retryable", "invalid_output"])
        with pytest.raises(OutputValidationError) as info:
            runner.stream(config, "r", "?", response_model=City)
        assert info.value.after_content and info.value.text == "not json at all"
        assert len(a.chat_requests) == 1 and b.chat_requests == []


def test_a_stream_yields_its_chunks_then_parsed(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply('{"name": "Oslo", "population": 1}', chunks=3))
    with Client(config=config_for(fake_vllm)) as client, client.stream("r", "?", response_model=City) as stream:
        texts = [c.text for c in stream if c.text]
    assert len(texts) == 3 and "".join(texts) == '{"name": "Oslo", "population": 1}'
    city: City = stream.response.parsed  # typed: mypy checks this line
    assert city == City(name="Oslo", population=1)


async def test_async_stream_is_typed_too(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply('{"name": "Oslo", "population": 1}'))
    async with AsyncClient(config=config_for(fake_vllm)) as client:
        async with client.stream("r", "?", response_model=City) as stream:
            reply = await stream.get_response()
    name: str = reply.parsed.name
    assert name == "Oslo"


def test_hedged_call_validates_the_winner(fake_vllm: FakeServer) -> None:
    with FakeServer(flavor="vllm", models=[LLAMA]) as slow:
        slow.enqueue(Reply('{"name": "Slow", "population": 1}', delay=1.0))
        fake_vllm.enqueue(Reply('{"name": "Fast", "population": 2}'))
        with Client(config=config_for(slow, fake_vllm, hedge_after=0.05)) as client:
            reply = client.chat("r", "?", response_model=City)
    assert reply.parsed == City(name="Fast", population=2)


# -- budgets -------------------------------------------------------------------------------------


def test_budget_is_charged_for_rejected_replies(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(
        Reply("no", prompt_tokens=10, completion_tokens=2),
        Reply('{"name": "Oslo", "population": 1}', prompt_tokens=30, completion_tokens=8),
        Reply("no", prompt_tokens=10, completion_tokens=2),
        Reply("nope", prompt_tokens=30, completion_tokens=3),
    )
    with Client(config=config_for(fake_vllm), budget=Budget(max_usd=Decimal(1))) as client:
        reply = client.chat("r", "?", response_model=City, max_tokens=16)
        assert reply.cost is not None and reply.cost.total == usd(40, 10)
        with pytest.raises(OutputValidationError):
            client.chat("r", "?", response_model=City, max_tokens=16)
        assert client.budgets is not None
        [status] = client.budgets.status()
    assert status.spent == usd(40, 10) + usd(40, 5) and status.reserved == 0


def test_budget_reserves_for_every_re_ask(fake_vllm: FakeServer) -> None:
    needed = {}
    with Client(config=config_for(fake_vllm), budget=Budget(max_usd=Decimal(0))) as client:
        for retries in (0, 2):
            with pytest.raises(BudgetExceededError) as info:
                client.chat("r", "?", response_model=City, max_tokens=16, output_retries=retries)
            needed[retries] = info.value.needed
    assert needed[0] is not None and needed[2] is not None
    assert needed[2] > 3 * needed[0]  # three replies, and each re-ask's prompt is longer
    assert fake_vllm.chat_requests == []


def test_typed_reply_for_mypy(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply('{"name": "Oslo", "population": 1}'))

    async def go() -> turnout.ChatResponse[City]:
        async with AsyncClient(config=config_for(fake_vllm)) as client:
            return await client.chat("r", "?", response_model=City)

    reply = asyncio.run(go())
    population: int = reply.parsed.population
    assert population == 1
