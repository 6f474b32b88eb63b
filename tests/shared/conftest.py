"""`redis_url` and `postgres_url`: the real servers of ``scripts/services`` for the shared-state tests.

The URLs come from ``TURNOUT_TEST_REDIS_URL`` / ``TURNOUT_TEST_POSTGRES_URL`` (``make test`` sets
them from ``scripts/services env``), else from a running ``scripts/services`` (``status``). When
neither gives a server that answers, the tests are skipped, or fail when
``TURNOUT_REQUIRE_SERVICES=1`` (as ``make test`` and CI set it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services"


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def _url(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        found = subprocess.run([sys.executable, str(SCRIPT), "status"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            url = json.loads(found.stdout).get(env)
    if url and _answers(url):
        return url
    why = f"no server: set {env} or run scripts/services start"
    if os.environ.get("TURNOUT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"TURNOUT_REQUIRE_SERVICES=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (``redis://127.0.0.1:<port>/0``)."""
    return _url("TURNOUT_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL (``postgresql://postgres@127.0.0.1:<port>/postgres``)."""
    return _url("TURNOUT_TEST_POSTGRES_URL")


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test, so tests never share state by accident."""
    return f"test-{uuid.uuid4().hex[:12]}"
