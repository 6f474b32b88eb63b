"""The turnout command line, against the fake servers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout.cli import main
from turnout.testing import FakeServer, Fault, Reply


def write_config(tmp_path: Path, openai: FakeServer, vllm: FakeServer) -> Path:
    path = tmp_path / "turnout.toml"
    path.write_text(f"""
[providers.cloud]
type = "openai-compatible"
base_url = "{openai.base_url}"

[providers.local]
type = "vllm"
base_url = "{vllm.base_url}"

[models.fast]
targets = ["cloud:gpt-4o-mini", "local:llama"]

[prices."local:llama"]
input_per_million = 0.1
output_per_million = 0.2

[defaults]
retry = {{ max_attempts = 1 }}
""")
    return path


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as openai, FakeServer(flavor="vllm", models=["llama"]) as vllm:
        yield openai, vllm


def test_chat_streams_and_reports_route_and_cost(
    tmp_path: Path, servers: tuple[FakeServer, FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    openai, vllm = servers
    openai.enqueue(Fault.server_error(503))
    vllm.enqueue(Reply("Llamas hum.", prompt_tokens=10, completion_tokens=3))
    assert main(["chat", "fast", "Say hi", "--config", str(write_config(tmp_path, openai, vllm))]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "Llamas hum."
    assert "cloud:gpt-4o-mini ServerError -> local:llama ok" in err
    assert "10 in / 3 out" in err and "cost: $0.0000016 (in $0.000001 + out $0.0000006; config)" in err


def test_chat_failure_exits_1_with_each_cause(
    tmp_path: Path, servers: tuple[FakeServer, FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    openai, vllm = servers
    openai.enqueue(Fault.server_error(503))
    vllm.enqueue(Fault.server_error(500))
    assert main(["chat", "fast", "Hi", "--no-stream", "--config", str(write_config(tmp_path, openai, vllm))]) == 1
    err = capsys.readouterr().err
    assert "all 2 targets" in err and "ServerError" in err


def test_config_check(
    tmp_path: Path, servers: tuple[FakeServer, FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, *servers)
    assert main(["config", "check", str(path)]) == 0
    assert "model fast: cloud:gpt-4o-mini -> local:llama" in capsys.readouterr().out
    path.write_text('[providers.x]\ntype = "nope"\n')
    assert main(["config", "check", str(path)]) == 1
    assert "unknown provider type 'nope'" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "turnout"
    result = subprocess.run([str(script), "config", "schema"], capture_output=True, text=True)
    assert result.returncode == 0 and '"title": "turnout.toml"' in result.stdout


# -- issue 13.16: --version, stdin, --json, models, health, Ctrl-C, one-line warnings -------------


def _cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(turnout.__file__).parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "turnout.cli", *args], capture_output=True, text=True, env=env, **kwargs
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"turnout {turnout.__version__}"


def test_chat_reads_the_prompt_from_stdin(
    tmp_path: Path,
    servers: tuple[FakeServer, FakeServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    openai, vllm = servers
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long\nprompt from a pipe\n"))
    assert main(["chat", "local:llama", "-", "--no-stream", "--config", str(write_config(tmp_path, openai, vllm))]) == 0
    assert vllm.chat_requests[0].json["messages"] == [{"role": "user", "content": "a long\nprompt from a pipe\n"}]
    assert capsys.readouterr().out.strip() == "a long\nprompt from a pipe"  # the fake echoes
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["chat", "fast", "-", "--config", str(write_config(tmp_path, openai, vllm))]) == 1
    assert "standard input, which was empty" in capsys.readouterr().err


def test_chat_json(tmp_path: Path, servers: tuple[FakeServer, FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    openai, vllm = servers
    openai.enqueue(Fault.server_error(503))
    vllm.enqueue(Reply("Llamas hum.", prompt_tokens=10, completion_tokens=3))
    assert main(["chat", "fast", "Hi", "--json", "--config", str(write_config(tmp_path, openai, vllm))]) == 0
    out, err = capsys.readouterr()
    reply = json.loads(out)
    assert reply["text"] == "Llamas hum." and reply["provider"] == "local" and err == ""
    assert reply["cost"]["total"] == "0.0000016" and [a["outcome"] for a in reply["attempts"]] == ["ServerError", "ok"]
    assert not vllm.chat_requests[0].json.get("stream")


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_models_lists_targets_prices_and_windows(
    tmp_path: Path, servers: tuple[FakeServer, FakeServer], capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    path = write_config(tmp_path, *servers)
    path.write_text(
        path.read_text().replace(
            "[defaults]", '[prices."cloud:gpt-4o-mini"]\nusd_per_hour = 2\ntokens_per_second = 7\n\n[defaults]'
        )
    )
    assert main(["models", "--config", str(path), *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    hourly = "79.3650793651"  # 2 / (3600 * 7) * 1e6 = 79.365079365079...: rounded to 1e-10 dollars
    if as_json:
        cloud, local = json.loads(out)
        assert cloud == {
            "route": "fast",
            "target": "cloud:gpt-4o-mini",
            "input_per_million": "0",
            "output_per_million": hourly,
            "price_source": "config (hourly)",
            "context_window": None,
        }
        assert local["input_per_million"] == "0.1" and local["context_window"] == 4096  # vLLM's /v1/models
    else:
        assert (
            f"cloud:gpt-4o-mini  $0 in / ${hourly} out per 1M tokens (config (hourly))  context window: unknown" in out
        )
        assert "local:llama  $0.1 in / $0.2 out per 1M tokens (config)  context window: 4096 tokens" in out


def test_health_prints_circuits_and_the_context_pre_check(
    tmp_path: Path, servers: tuple[FakeServer, FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, *servers)
    assert main(["health", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "fast:",
        "  cloud:gpt-4o-mini  circuit closed  context window unknown (no pre-check)",
        "  local:llama  circuit closed  prompt + max_tokens checked against 4096 tokens",
    ]
    assert main(["health", "--config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1] == {
        "route": "fast",
        "target": "local:llama",
        "circuit": "closed",
        "circuit_source": "local",
        "context_window": 4096,
    }


def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path, servers: tuple[FakeServer, FakeServer]) -> None:
    openai, vllm = servers
    openai.enqueue(Reply("late", delay=30))
    env = {**os.environ, "PYTHONPATH": str(Path(turnout.__file__).parents[1])}
    command = [
        sys.executable,
        "-m",
        "turnout.cli",
        "chat",
        "fast",
        "Hi",
        "--config",
        str(write_config(tmp_path, openai, vllm)),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 20
    while not openai.chat_requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert openai.chat_requests, "the CLI never sent its request"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1] == "turnout: interrupted"
    # the stream left early is still priced (docs/streaming.md): its target has no price, so it says so
    assert all(line.startswith("turnout: warning: no price") for line in lines[:-1] if line)


def test_warnings_are_one_line_without_python_source(tmp_path: Path, servers: tuple[FakeServer, FakeServer]) -> None:
    openai, vllm = servers  # cloud:gpt-4o-mini has no price: CostUnknownWarning
    result = _cli(
        "chat", "cloud:gpt-4o-mini", "Hi", "--no-stream", "--config", str(write_config(tmp_path, openai, vllm))
    )
    assert result.returncode == 0, result.stderr
    warning_lines = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("turnout: warning: no price")
    assert ".py:" not in result.stderr and "warnings.warn" not in result.stderr
