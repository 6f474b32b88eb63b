"""The caller's own mistakes: a turnout error naming the fix, raised before anything is sent.

Nothing a caller gets wrong may reach a server or count against a target's circuit breaker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

import turnout
import turnout.cli
from turnout import AsyncClient, Client
from turnout.providers.vllm_throughput import ameasure_vllm_throughput, measure_vllm_throughput
from turnout.testing import FakeClock, FakeServer, refused_url

from .conftest import LLAMA

BAD_HEADERS: list[dict[str, Any]] = [
    {"X-Note": "a\nb"},
    {"Bad Name": "x"},
    {"X-Num": 5},
    {"X-Euro": "5 \u20ac"},
    {"X-Nul": "a\x00"},
]


def _config(server: FakeServer, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url, **provider}},
        "models": {"fast": {"targets": [f"local:{LLAMA}"]}},
        "prices": {f"local:{LLAMA}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
    }


def _on_one_client(mode: str, config: dict[str, Any], calls: list[Callable[[Any], Any]]) -> tuple[list[Any], Any]:
    """Run ``calls`` (each gets the client, returns a reply or an awaitable) on one client; keep each outcome."""
    outcomes: list[Any] = []
    if mode == "sync":
        with Client(config=config, clock=FakeClock()) as client:
            for call in calls:
                try:
                    outcomes.append(call(client))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes, client.health()

    async def go() -> Any:
        async with AsyncClient(config=config, clock=FakeClock()) as client:
            for call in calls:
                try:
                    outcomes.append(await call(client))
                except Exception as exc:
                    outcomes.append(exc)
            return client.health()

    return outcomes, asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_bad_headers_never_reach_the_server_nor_open_its_circuit(
    mode: str, streamed: bool, fake_vllm: FakeServer
) -> None:
    def bad(headers: dict[str, Any]) -> Callable[[Any], Any]:
        if streamed:  # get_response() reads the stream (async: returns the awaitable that does)
            return lambda client: client.stream("fast", "Hi", extra_headers=headers).get_response()
        return lambda client: client.chat("fast", "Hi", extra_headers=headers)

    calls = [bad(h) for h in BAD_HEADERS] + [lambda client: client.chat("fast", "Hi", extra_headers={"X-Ok": "1"})]
    outcomes, health = _on_one_client(mode, _config(fake_vllm), calls)
    for outcome, headers in zip(outcomes, BAD_HEADERS, strict=False):
        assert isinstance(outcome, turnout.InvalidArgumentError), outcome
        assert "extra_headers" in str(outcome) and next(iter(headers)) in str(outcome)
    reply = outcomes[-1]
    assert isinstance(reply, turnout.ChatResponse), reply
    assert reply.text == "Hi"
    assert len(fake_vllm.chat_requests) == 1  # only the valid call was sent
    assert fake_vllm.chat_requests[0].headers["x-ok"] == "1"
    assert [h.state for h in health] == ["closed"]
    assert health[0].consecutive_failures == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_bad_headers_in_embed_are_rejected_before_sending(mode: str, fake_vllm: FakeServer) -> None:
    calls = [lambda client: client.embed(f"local:{LLAMA}", ["x"], extra_headers={"X": "a\r\nInjected: 1"})]
    outcomes, _ = _on_one_client(mode, _config(fake_vllm), calls)
    assert isinstance(outcomes[0], turnout.InvalidArgumentError)
    assert "'\\r'" in str(outcomes[0])
    assert fake_vllm.requests == []


@pytest.mark.parametrize("headers", [{"X": "a\nb"}, {"A B": "x"}])
def test_bad_headers_in_the_config_fail_at_load(headers: dict[str, Any], fake_vllm: FakeServer) -> None:
    with pytest.raises(turnout.ConfigError, match=r"providers\.local\.headers"):
        Client(config=_config(fake_vllm, headers=headers))


MESSAGES_MISTAKES = [
    (None, "not NoneType"),
    (42, "not int"),
    ({"role": "user", "content": "Hi"}, "wrap it in a list"),
    (["hi"], r"messages\[0\] is a bare string"),
    ([{"role": "user", "content": "a"}, 7], r"messages\[1\] must be a dict"),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("messages", "says"), MESSAGES_MISTAKES, ids=["None", "int", "dict", "strings", "7"])
def test_wrong_messages_say_what_to_pass(mode: str, messages: Any, says: str, fake_vllm: FakeServer) -> None:
    outcomes, _ = _on_one_client(mode, _config(fake_vllm), [lambda client: client.chat("fast", messages)])
    assert isinstance(outcomes[0], turnout.InvalidArgumentError), outcomes[0]
    assert fake_vllm.requests == []
    assert re.search(says, str(outcomes[0]))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wrong_model_and_input_types(mode: str, fake_vllm: FakeServer) -> None:
    calls = [
        lambda client: client.chat(None, "Hi"),
        lambda client: client.chat(["fast"], "Hi"),
        lambda client: client.embed(f"local:{LLAMA}", None),
        lambda client: client.embed(f"local:{LLAMA}", 42),
        lambda client: client.chat("fast", "Hi", max_tokens=True),
        lambda client: client.chat("fast", "Hi", timeout=1e308),
        lambda client: client.embed(f"local:{LLAMA}", "x", timeout=float("inf")),
    ]
    outcomes, _ = _on_one_client(mode, _config(fake_vllm), calls)
    assert all(isinstance(o, turnout.InvalidArgumentError) for o in outcomes), outcomes
    assert "model must be a string" in str(outcomes[0]) and "not list" in str(outcomes[1])
    assert "input must be a string or a list of strings, not NoneType" in str(outcomes[2])
    assert "max_tokens: must be a number, not True" in str(outcomes[4])
    assert "timeout" in str(outcomes[5]) and "86400" in str(outcomes[5])
    assert fake_vllm.requests == []


class _NoSchema(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    convert: Callable[[int], int]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_response_model_without_a_json_schema(mode: str, fake_vllm: FakeServer) -> None:
    calls = [lambda client: client.chat("fast", "Hi", response_model=_NoSchema)]
    outcomes, _ = _on_one_client(mode, _config(fake_vllm), calls)
    assert isinstance(outcomes[0], turnout.InvalidArgumentError), outcomes[0]
    assert "response_model: no JSON schema" in str(outcomes[0])
    assert fake_vllm.requests == []


def test_config_of_a_wrong_type() -> None:
    with pytest.raises(turnout.ConfigError, match="config must be a Config, a dict .* not int"):
        Client(config=123)  # type: ignore[arg-type]
    with pytest.raises(turnout.ConfigError, match="not list"):
        AsyncClient(config=[])  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["timeout", "connect_timeout"])
def test_huge_timeouts_fail_at_load(key: str, fake_vllm: FakeServer) -> None:
    with pytest.raises(turnout.ConfigError, match=rf"providers\.local\.{key}: .*86400"):
        Client(config=_config(fake_vllm, **{key: 1e308}))
    for defaults, where in [
        ({"deadline": 1e308}, "deadline"),
        ({"hedge_after": 1e308}, "hedge_after"),
        ({"first_token_timeout": 1e308}, "first_token_timeout"),
        ({"stall_timeout": 1e308}, "stall_timeout"),
        ({"retry": {"max_delay": 1e308}}, "retry.max_delay"),
        ({"retry": {"max_retry_after": 1e308}}, "retry.max_retry_after"),
    ]:
        with pytest.raises(turnout.ConfigError, match=rf"defaults\.{where}: .*86400"):
            Client(config={**_config(fake_vllm), "defaults": defaults})


def test_bom_prefixed_toml_is_read(tmp_path: Path, fake_vllm: FakeServer) -> None:
    path = tmp_path / "turnout.toml"
    text = f'[providers.local]\ntype = "vllm"\nbase_url = "{fake_vllm.base_url}"\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # what Windows editors write as "UTF-8 with BOM"
    with Client(config=path) as client:
        assert client.provider("local").config.base_url == fake_vllm.base_url
    assert turnout.cli.main(["config", "check", str(path)]) == 0


def test_non_utf8_toml_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "turnout.toml"
    path.write_bytes(b'[providers.local]\ntype = "vllm"\n# caf\xe9 (latin-1)\n')
    with pytest.raises(turnout.ConfigError, match=r"not UTF-8 text \(byte 0xe9 on line 3\)"):
        Client(config=path)
    assert turnout.cli.main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_throughput_on_a_wrong_url(mode: str, fake_vllm: FakeServer) -> None:
    def measure(url: str) -> Any:
        if mode == "sync":
            return measure_vllm_throughput(url, 0, sleep=lambda _: None)

        async def nap(_: float) -> None:
            pass

        return asyncio.run(ameasure_vllm_throughput(url, 0, sleep=nap))

    with pytest.raises(turnout.APIConnectionError, match="is the vLLM server running there"):
        measure(refused_url(""))
    with pytest.raises(turnout.InvalidArgumentError, match="use 'http://127.0.0.1:[0-9]+', not .*/v1"):
        measure(fake_vllm.base_url)  # .../v1
    with pytest.raises(turnout.NotFoundError, match="/metrics"):
        measure(fake_vllm.base_url.removesuffix("/v1"))  # the fake serves no /metrics: a 404
