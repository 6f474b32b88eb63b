"""A canary API key must never appear in reprs, errors, tracebacks or log lines."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import Client, cli
from turnout.config import load_config
from turnout.testing import FakeServer, Fault, refused_url

from .conftest import CANARY_KEY, Runner


def _everything_said(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(getattr(exc, "attempts", ""))


def test_config_and_client_reprs_hide_the_key(config: dict[str, Any]) -> None:
    client = Client(config=config)
    provider = client.provider("openai")
    for text in (
        repr(client),
        str(client.config),
        repr(client.config),
        repr(provider),
        client.config.model_dump_json(),
        str(client.config.providers["openai"].model_dump()),
    ):
        assert CANARY_KEY not in text


def test_key_from_file_is_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY", CANARY_KEY)
    path = tmp_path / "turnout.toml"
    path.write_text('[providers.o]\ntype = "openai"\napi_key = "${CANARY}"\ntimeout = "x"\n')
    with pytest.raises(turnout.ConfigError) as info:
        load_config(path)
    assert CANARY_KEY not in _everything_said(info.value)
    path.write_text('[providers.o]\ntype = "openai"\napi_key = "${CANARY}"\n')
    assert CANARY_KEY not in repr(load_config(path))


@pytest.mark.parametrize(
    "fault",
    [Fault.unauthorized(), Fault.server_error(500), Fault.drop(), Fault.rate_limit(retry_after=1)],
    ids=["401", "500", "drop", "429"],
)
def test_errors_and_logs_hide_the_key(
    runner: Runner, config: dict[str, Any], fake_openai: FakeServer, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.enqueue(fault)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(turnout.TurnoutError) as info:
        runner.chat(config, "openai:gpt-4o-mini", "Hi")
    assert CANARY_KEY not in _everything_said(info.value)
    assert CANARY_KEY not in caplog.text
    # the key was really sent: the server saw it
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"


def test_fallback_log_lines_hide_the_key(
    config: dict[str, Any], fake_openai: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.enqueue(Fault.server_error(503))
    caplog.set_level(logging.DEBUG, logger="turnout")
    with Client(config=config) as client:
        client.chat("fast", "Hi")
    assert "falling back" in caplog.text
    assert CANARY_KEY not in caplog.text


CANARY_HEADER = "hdr-canary-3b8e51f0c2d94a7e"
CANARY_PASSWORD = "pw-canary-9d2c7a4e1f60"


def _with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://turnout:{CANARY_PASSWORD}@", 1)


def _canary_config(server: FakeServer, base_url: str | None = None) -> dict[str, Any]:
    """One provider whose key, secret headers and base_url password are canaries."""
    headers = {"api-key": CANARY_HEADER, "X-Api-Key": CANARY_HEADER, "X-Team": "blue"}
    return {
        "providers": {
            "openai": {
                "type": "openai",
                "base_url": base_url or _with_userinfo(server.base_url),
                "api_key": CANARY_KEY,
                "headers": headers,
            }
        },
        "defaults": {"retry": {"max_attempts": 1}},
    }


def _no_canary(text: str) -> None:
    for canary in (CANARY_KEY, CANARY_HEADER, CANARY_PASSWORD):
        assert canary not in text


@pytest.fixture
def keyless() -> Iterator[FakeServer]:
    """An OpenAI-shaped fake that checks no key (the canary config sends basic auth from its base_url)."""
    with FakeServer(flavor="openai", models=["gpt-4o-mini"]) as server:
        yield server


def test_header_values_and_base_url_password_are_masked_in_the_config(keyless: FakeServer) -> None:
    client = Client(config=_canary_config(keyless))
    config = client.config
    provider = config.providers["openai"]
    for text in (
        repr(config),
        str(config),
        repr(provider),
        str(provider),
        config.model_dump_json(),
        repr(client.provider("openai")),
    ):
        _no_canary(text)
    for dump in (str(config.model_dump()), str(provider.model_dump())):  # python dumps keep base_url as it is
        assert CANARY_KEY not in dump and CANARY_HEADER not in dump
    assert provider.header_values()["api-key"] == CANARY_HEADER  # the real value is kept, to send


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_secret_headers_and_basic_auth_are_still_sent(
    runner: Runner, keyless: FakeServer, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = runner.call(streamed, _canary_config(keyless), "openai:gpt-4o-mini", "Hi")
    assert reply.text == "Hi"
    sent = keyless.chat_requests[0].headers
    assert sent["api-key"] == CANARY_HEADER and sent["x-api-key"] == CANARY_HEADER and sent["x-team"] == "blue"
    basic = base64.b64encode(f"turnout:{CANARY_PASSWORD}".encode()).decode()
    assert sent["authorization"] == f"Basic {basic}"  # the URL's credentials, sent as before
    _no_canary(caplog.text + repr(reply) + str(reply))


def _echo_401(message: str) -> Fault:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    return Fault.response(401, json.dumps(body))


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_a_key_the_server_echoes_is_masked(
    runner: Runner, keyless: FakeServer, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keyless.enqueue(
        _echo_401(f"Incorrect API key provided: {CANARY_KEY}. Header api-key={CANARY_HEADER}, pw {CANARY_PASSWORD}")
    )
    with pytest.raises(turnout.AuthenticationError) as info:
        runner.call(streamed, _canary_config(keyless), "openai:gpt-4o-mini", "Hi")
    said = _everything_said(info.value) + str(info.value.body)
    _no_canary(said + caplog.text)
    assert "Incorrect API key provided: ***. Header api-key=***" in str(info.value)


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_an_unknown_sk_key_in_an_error_body_is_masked(runner: Runner, keyless: FakeServer, streamed: bool) -> None:
    keyless.enqueue(_echo_401("Incorrect API key provided: sk-proj-abcdefghijklmnop1234."))
    with pytest.raises(turnout.AuthenticationError) as info:
        runner.call(streamed, _canary_config(keyless), "openai:gpt-4o-mini", "Hi")
    assert "abcdefghijklmnop1234" not in _everything_said(info.value)


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_a_connection_error_hides_the_base_url_password(
    runner: Runner, keyless: FakeServer, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _with_userinfo(refused_url())
    with pytest.raises(turnout.APIConnectionError) as info:
        runner.call(streamed, _canary_config(keyless, base_url=url), "openai:gpt-4o-mini", "Hi")
    said = _everything_said(info.value)
    _no_canary(said + caplog.text)
    assert "talking to http://127.0.0.1:" in said


def test_config_check_hides_the_base_url_password(
    tmp_path: Path, keyless: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(
        f'[providers.openai]\ntype = "openai"\nbase_url = "{_with_userinfo(keyless.base_url)}"\n'
        f'api_key = "{CANARY_KEY}"\nheaders = {{ api-key = "{CANARY_HEADER}" }}\n'
    )
    assert cli.main(["config", "check", str(path)]) == 0
    out = capsys.readouterr()
    assert "base_url=http://***@127.0.0.1:" in out.out
    _no_canary(out.out + out.err)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_turnout_chat_errors_hide_every_canary(
    tmp_path: Path, keyless: FakeServer, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    keyless.enqueue(_echo_401(f"Incorrect API key provided: {CANARY_KEY}; api-key {CANARY_HEADER}"))
    path = tmp_path / "turnout.toml"
    path.write_text(f"""
[providers.openai]
type = "openai"
base_url = "{_with_userinfo(keyless.base_url)}"
api_key = "{CANARY_KEY}"
headers = {{ api-key = "{CANARY_HEADER}" }}

[providers.down]
type = "vllm"
base_url = "{_with_userinfo(refused_url())}"

[models.fast]
targets = ["openai:gpt-4o-mini", "down:m"]
fallback_on = ["auth", "connection"]
retry = {{ max_attempts = 1 }}
""")
    argv = ["chat", "fast", "Hi", "--config", str(path)] + ([] if stream else ["--no-stream"])
    assert cli.main(argv) == 1
    out = capsys.readouterr()
    assert "AuthenticationError" in out.err and "APIConnectionError" in out.err
    _no_canary(out.out + out.err)


@pytest.mark.parametrize("mode", ["python", "json"])
def test_a_config_dump_hides_the_base_url_password(mode: str) -> None:
    """`model_dump()` in either mode, like `repr` and `model_dump_json`, never holds the URL's password."""
    url = _with_userinfo("http://127.0.0.1:9/v1")
    config = turnout.Config.from_dict({"providers": {"p": {"type": "openai", "base_url": url, "api_key": CANARY_KEY}}})
    dumped = config.model_dump(mode=mode)
    assert dumped["providers"]["p"]["base_url"] == "http://***@127.0.0.1:9/v1"
    _no_canary(repr(dumped))
    assert config.providers["p"].base_url == url  # the client still sends with the real one
