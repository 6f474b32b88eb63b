"""The `vllm_server` fixture: a real vLLM server on 127.0.0.1 for the tests in this directory.

The fixture uses, in this order:

1. the server named by ``TURNOUT_VLLM_BASE_URL`` (with ``TURNOUT_VLLM_API_KEY`` and
   ``TURNOUT_VLLM_MODEL``), which it never starts or stops;
2. the healthy server recorded by ``scripts/vllm-test-server`` (``status``), left running afterwards;
3. a server it starts with ``scripts/vllm-test-server start`` and stops at the end of the session
   (kept running when ``TURNOUT_VLLM_KEEP=1``).

`vllm_embed_server` is the same for the embedding server (``scripts/vllm-test-server ... --embed``,
``TURNOUT_VLLM_EMBED_BASE_URL`` / ``_API_KEY`` / ``_MODEL``): the tiny model served with
``--runner pooling --convert embed``.

When no server can be had the tests are skipped, or fail with the server log's tail when ``CI`` is
set or ``TURNOUT_REQUIRE_VLLM=1``. Every test in this directory gets the ``vllm`` marker, so
``pytest -m "not vllm"`` leaves them out. Only the standard library and pytest are used here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent.parent / "scripts" / "vllm-test-server"
DEFAULT_API_KEY = "turnout-test-key"
DEFAULT_MODEL = "tiny-llama"
DEFAULT_EMBED_MODEL = "tiny-llama-embed"
STATUS_TIMEOUT_S = 30.0
START_OUTPUT_LINES = 100
START_TIMEOUT_S = 1800.0  # from nothing: venv install (~4 min) + model build + startup + warm-up


@dataclass(frozen=True)
class VLLMServer:
    """Where the test server answers and how to talk to it."""

    base_url: str
    """OpenAI-compatible API root, e.g. ``http://127.0.0.1:8765/v1``."""
    root_url: str
    """Server root for the non-``/v1`` routes (``/health``, ``/tokenize``), e.g. ``http://127.0.0.1:8765``."""
    api_key: str
    model: str
    max_model_len: int
    log_path: Path | None
    """The server's log file, when the server was started by scripts/vllm-test-server."""

    @property
    def headers(self) -> dict[str, str]:
        """Return the Authorization header for this server."""
        return {"Authorization": f"Bearer {self.api_key}"}


class _Unavailable(Exception):
    """No server could be had; args are (reason, log tail)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under this directory `vllm`.

    With pytest-timeout, the timeout then covers only the test function: the session fixture may
    spend minutes starting the server inside the first test's setup.
    """
    with_timeout = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.vllm)
            if with_timeout:
                item.add_marker(pytest.mark.timeout(func_only=True))


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _get_json(url: str, api_key: str, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _describe(base_url: str, api_key: str, model: str | None, log_path: Path | None) -> VLLMServer:
    """Ask ``/v1/models`` for the served model and its context length."""
    base_url = base_url.rstrip("/")
    try:
        models = _get_json(f"{base_url}/models", api_key)["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise _Unavailable(f"GET {base_url}/models failed: {exc}", "") from exc
    entry = next((m for m in models if model in (None, m["id"])), None)
    if entry is None:
        raise _Unavailable(f"{base_url} does not serve model {model!r}", "")
    root_url = base_url.removesuffix("/v1")
    return VLLMServer(base_url, root_url, api_key, entry["id"], int(entry["max_model_len"]), log_path)


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _recorded_server(*flags: str) -> VLLMServer | None:
    """Return the healthy server recorded by scripts/vllm-test-server, if any."""
    result = _script("status", *flags, timeout=STATUS_TIMEOUT_S)
    if result.returncode != 0:
        return None
    state = json.loads(result.stdout)
    return _describe(state["base_url"], state["api_key"], state["model"], Path(state["log_path"]))


def _start_server(request: pytest.FixtureRequest, *flags: str) -> None:
    """Run ``scripts/vllm-test-server start``, echoing its progress lines past pytest's capture."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(SCRIPT), "start", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if capture is not None:
                with capture.global_and_fixture_disabled():
                    sys.stderr.write(line)
        code = proc.wait(timeout=START_TIMEOUT_S)
    if code != 0:
        output = "".join(lines[-START_OUTPUT_LINES:])
        raise _Unavailable(f"`scripts/vllm-test-server start` exited {code}", f"its output:\n{output}")


def _unavailable(reason: str, details: str) -> NoReturn:
    if _truthy("CI") or _truthy("TURNOUT_REQUIRE_VLLM"):
        pytest.fail(f"real vLLM server required but unavailable: {reason}\n{details}", pytrace=False)
    pytest.skip(f"real vLLM server unavailable ({reason}); set TURNOUT_REQUIRE_VLLM=1 to fail instead")


def _find_or_start(request: pytest.FixtureRequest, *flags: str) -> tuple[VLLMServer, bool]:
    """Return the server to use and whether this session started it (``--embed``: the embedding one)."""
    prefix, model = ("TURNOUT_VLLM_EMBED_", DEFAULT_EMBED_MODEL) if flags else ("TURNOUT_VLLM_", DEFAULT_MODEL)
    if base_url := os.environ.get(f"{prefix}BASE_URL"):
        api_key = os.environ.get(f"{prefix}API_KEY") or DEFAULT_API_KEY
        return _describe(base_url, api_key, os.environ.get(f"{prefix}MODEL") or model, None), False
    recorded = _recorded_server(*flags)
    if recorded is not None:
        return recorded, False
    _start_server(request, *flags)
    try:
        recorded = _recorded_server(*flags)
        if recorded is None:
            raise _Unavailable("`scripts/vllm-test-server start` succeeded but `status` reports no healthy server", "")
    except BaseException:
        _stop_unless_kept(*flags)
        raise
    return recorded, True


def _stop_unless_kept(*flags: str) -> None:
    if not _truthy("TURNOUT_VLLM_KEEP"):
        _script("stop", *flags, timeout=60.0)


@pytest.fixture(scope="session")
def vllm_server(request: pytest.FixtureRequest) -> Iterator[VLLMServer]:
    """Yield the real vLLM test server, starting it when none is running (see the module docstring)."""
    try:
        server, started = _find_or_start(request)
    except _Unavailable as exc:
        _unavailable(*exc.args)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        _unavailable(f"{type(exc).__name__}: {exc}", "")
    yield server
    if started:
        _stop_unless_kept()


@pytest.fixture(scope="session")
def vllm_embed_server(request: pytest.FixtureRequest) -> Iterator[VLLMServer]:
    """Yield the real vLLM embedding server (``scripts/vllm-test-server start --embed``), as `vllm_server`."""
    try:
        server, started = _find_or_start(request, "--embed")
    except _Unavailable as exc:
        _unavailable(*exc.args)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        _unavailable(f"{type(exc).__name__}: {exc}", "")
    yield server
    if started:
        _stop_unless_kept("--embed")
