"""The turnout command line, against the fake servers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    with FakeServer(flavor="openai") as openai, FakeServer(flavor="vllm") as vllm:
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
