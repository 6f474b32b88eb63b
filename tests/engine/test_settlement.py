"""`turnout.engine.settlement.Settlement`: the budget hold before a call, `CallStarted` and `CallFinished` around it."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import turnout
from turnout import Client
from turnout.engine import CallFinished, CallStarted
from turnout.errors import APIConnectionError, BudgetExceededError, ServerError
from turnout.testing import FakeClock

from .conftest import Stub, stub_config
from .test_call import MODES, err, run


def _events(cfg: dict[str, Any], clock: FakeClock, go: Any) -> list[Any]:
    seen: list[Any] = []
    with Client(cfg, clock=clock) as client:
        client.on(CallStarted, seen.append)
        client.on(CallFinished, seen.append)
        try:
            go(client)
        except turnout.TurnoutError as exc:
            seen.append(exc)
    return seen


@pytest.mark.parametrize(("kind", "operation"), [("chat", "chat"), ("stream", "stream"), ("embed", "embed")])
def test_call_started_names_the_route_operation_and_request(kind: str, operation: str, clock: FakeClock) -> None:
    def go(client: Client) -> None:
        if kind == "embed":
            client.embed("r", ["x"])
        elif kind == "stream":
            with client.stream("r", "Hi") as stream:
                stream.get_response()
        else:
            client.chat("r", "Hi")

    started, finished = _events(stub_config("a"), clock, go)
    assert isinstance(started, CallStarted) and isinstance(finished, CallFinished)
    assert (started.route, started.operation, started.request) == ("r", operation, Stub.sent["a"][0])
    assert started.call_id == finished.call_id != id(None)


def test_call_finished_carries_what_the_call_did(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    original = Stub.chat

    def slow(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        clock.advance(2)
        return original(self, model, request)

    Stub.chat = slow  # type: ignore[method-assign]
    try:
        _, finished = _events(stub_config("a"), clock, lambda c: c.chat("r", "Hi", tags={"team": "x"}))
    finally:
        Stub.chat = original  # type: ignore[method-assign]
    reply = finished.response
    assert isinstance(reply, turnout.ChatResponse)
    assert (finished.route, finished.error, finished.latency) == (
        "r",
        None,
        4.5,
    )  # two 2 s attempts and a 0.5 s retry wait
    assert finished.attempts == reply.attempts and [a.outcome for a in finished.attempts] == ["ServerError", "ok"]
    assert (finished.usage, finished.cost, finished.cost_unknown) == (reply.usage, reply.cost, False)
    assert (finished.tags, finished.saved, finished.hold) == ({"team": "x"}, None, None)


def test_a_failed_call_finishes_with_its_error_and_no_cost(clock: FakeClock) -> None:
    _, finished, error = _events(
        stub_config("a", retry={"max_attempts": 1}),
        clock,
        lambda c: (Stub.scripts.update(a=[err(ServerError, status_code=500)]), c.chat("r", "Hi")),
    )
    assert finished.error is error and finished.response is None
    assert (finished.usage, finished.cost, finished.cost_unknown) == (None, None, False)


def _cut(*chunks: Any) -> Any:
    def go(client: Client) -> None:
        Stub.scripts["a"] = [[*chunks, err(APIConnectionError)]]
        with client.stream("r", "Hi") as stream:
            list(stream)

    return go


def test_a_stream_cut_after_usage_is_paid_for(clock: FakeClock) -> None:
    usage = turnout.Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    _, finished, error = _events(stub_config("a"), clock, _cut("part", turnout.ChatChunk(usage=usage)))
    assert isinstance(error, turnout.StreamInterruptedError) and finished.error is error
    assert finished.usage == usage and finished.cost is not None
    assert finished.cost.total == Decimal(3 * 1 + 4 * 2) / 1_000_000
    assert finished.cost_unknown is False


def test_a_stream_cut_without_usage_has_an_unknown_cost(clock: FakeClock) -> None:
    _, finished, _ = _events(stub_config("a"), clock, _cut("part"))
    assert (finished.usage, finished.cost, finished.cost_unknown) == (None, None, True)


@pytest.mark.parametrize("mode", MODES)
def test_the_call_is_logged_when_it_ends(mode: str, caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    with caplog.at_level(logging.DEBUG, logger="turnout"):
        reply = run(stub_config("a"), mode, clock)
        Stub.scripts["a"] = [err(ServerError, status_code=500)]
        with pytest.raises(ServerError):
            run(stub_config("a", retry={"max_attempts": 1}), mode, clock)
    keys = ("alias", "outcome", "attempt", "latency", "cost")
    done = [(r.getMessage(), {k: r.__dict__[k] for k in keys}) for r in caplog.records if "cost" in r.__dict__]
    assert reply.cost is not None
    assert done == [
        (
            "route r: call ok after 2 attempt(s) in 0.500s",
            {"alias": "r", "outcome": "ok", "attempt": 2, "latency": 0.5, "cost": str(reply.cost.total)},
        ),
        (
            "route r: call ServerError after 1 attempt(s) in 0.000s",
            {"alias": "r", "outcome": "ServerError", "attempt": 1, "latency": 0, "cost": None},
        ),
    ]


# --- the budget hold ---------------------------------------------------------------------------------


def _budgets(**where: Any) -> dict[str, Any]:
    cfg = stub_config("a")
    cfg["models"]["other"] = {"targets": ["a:m"]}
    for key, value in where.items():
        if key == "route":
            cfg["models"][value]["budget"] = {"max_usd": "0.00001"}
        else:
            cfg["tag_budgets"] = {value: {"max_usd": "0.00001"}}
    return cfg


def test_a_budget_on_another_route_holds_nothing(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[CallFinished] = []
    with Client(_budgets(route="other"), clock=clock) as client:
        client.on(CallFinished, seen.append)
        assert client.chat("r", "Hi").text == "ok"  # no max_tokens needed: no budget applies
    assert seen[0].hold is None  # nothing for the budgets to settle
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_route_budget_holds_the_worst_case(clock: FakeClock) -> None:
    with pytest.raises(BudgetExceededError) as info, Client(_budgets(route="r"), clock=clock) as client:
        client.chat("r", "Hi", max_tokens=10)
    assert (info.value.budget, info.value.needed) == ("models.r", Decimal("0.000033"))
    assert "a" not in Stub.sent


def test_a_route_budget_names_why_a_cost_is_unbounded(clock: FakeClock) -> None:
    with pytest.raises(BudgetExceededError) as info, Client(_budgets(route="r"), clock=clock) as client:
        client.chat("r", "Hi")
    assert info.value.budget == "models.r"
    assert "the cost of this call has no upper bound: " in str(info.value) and "max_tokens" in str(info.value)


def test_a_tag_budget_holds_a_tagged_call(clock: FakeClock) -> None:
    with Client(_budgets(tag="team"), clock=clock) as client:
        with pytest.raises(BudgetExceededError) as info:
            client.chat("r", "Hi", max_tokens=10, tags={"team": "x"})
        with pytest.raises(BudgetExceededError) as unbounded:
            client.chat("r", "Hi", tags={"team": "x"})
        assert client.chat("r", "Hi").text == "ok"  # untagged: no budget applies
    assert info.value.budget == unbounded.value.budget == "tags.team=x"


class Answer(BaseModel):
    n: int


def test_a_hooks_worst_case_replaces_the_engines(clock: FakeClock) -> None:
    """response_model holds its re-asks too: more than the same call without it."""
    with Client(_budgets(route="r"), clock=clock) as client:
        with pytest.raises(BudgetExceededError) as plain:
            client.chat("r", "Hi", max_tokens=10)
        with pytest.raises(BudgetExceededError) as parsed:
            client.chat("r", "Hi", max_tokens=10, response_model=Answer)
    assert plain.value.needed == Decimal("0.000033")
    assert parsed.value.needed == Decimal("0.004199")  # the schema instruction and re-asks are counted too
