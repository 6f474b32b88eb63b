"""A canary API key must never appear in reprs, errors, tracebacks or log lines."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import Client
from turnout.config import load_config
from turnout.testing import FakeServer, Fault

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
