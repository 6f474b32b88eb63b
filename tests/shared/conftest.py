"""`redis_url` and `postgres_url`: the real servers of ``scripts/services`` for the shared-state tests.

The URLs come from ``TURNOUT_TEST_REDIS_URL`` / ``TURNOUT_TEST_POSTGRES_URL`` (``make test`` sets
them from ``scripts/services env``), else from a running ``scripts/services`` (``status``). When
neither gives a server that answers, the tests are skipped, or fail when
``TURNOUT_REQUIRE_SERVICES=1`` (as ``make test`` and CI set it).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import LLAMA
from turnout.testing import FakeServer, Reply

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


class OwnPostgres:
    """A PostgreSQL server of one test's own (so the test may stop and start it), on a free port."""

    def __init__(self, folder: Path) -> None:
        import glob

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.fail("PostgreSQL is not installed: run scripts/services start")
        self.bin = Path(found[-1]).parent
        folder.chmod(0o755)
        self.folder = folder / "pg"
        self.folder.mkdir()
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.folder, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        initdb = [str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres"]
        self._run([*initdb, "--no-sync", "-E", "UTF8", "--locale=C"])
        self.start()

    def _run(self, cmd: list[str]) -> None:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        """Start (or restart) the server."""
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
            "-c fsync=off"  # synchronous_commit stays on: a commit it acknowledged survives `stop -m immediate`
        )
        log = self.folder / "server.log"
        self._run(
            [str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(log), "-w", "-o", opts, "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w", "stop"])


@pytest.fixture
def own_postgres(postgres_url: str) -> Iterator[OwnPostgres]:
    """A PostgreSQL server this test may stop and start (needs what scripts/services installs)."""
    import shutil
    import tempfile

    del postgres_url  # required: skipped (or failed) the same way when the services are missing
    folder = Path(tempfile.mkdtemp(prefix="turnout-test-pg-"))  # not under pytest's 0700 folders: postgres enters it
    server = OwnPostgres(folder)
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


class OwnRedis:
    """A redis-server of one test's own (so the test may pause it), on a free port, without persistence."""

    def __init__(self) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run scripts/services start")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import time

        deadline = time.monotonic() + 10
        while not _answers(self.url):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                pytest.fail("the test's own redis-server did not start")
            time.sleep(0.02)

    def pause(self, seconds: float) -> None:
        """Hold every write (and script) for ``seconds``, as a stalled or unreachable Redis would."""
        import redis

        with redis.Redis.from_url(self.url) as admin:
            admin.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")

    def stop(self) -> None:
        """Stop the server."""
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def own_redis(redis_url: str) -> Iterator[OwnRedis]:
    """A redis-server this test may pause (needs what scripts/services installs)."""
    del redis_url  # required: skipped (or failed) the same way when the services are missing
    server = OwnRedis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh database of this test's own on the shared test PostgreSQL; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


PRICE = {"input_per_million": "1", "output_per_million": "1"}  # a call's cost in millionths = its tokens
OTHER = "other-model"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A vLLM fake serving two models; every reply is 20 prompt + 5 completion tokens."""
    with FakeServer(flavor="vllm", models=[OTHER, LLAMA], max_model_len=4096) as fake:
        fake.default_reply = Reply("ok", prompt_tokens=20, completion_tokens=5)
        yield fake


def shared_config(server: FakeServer, url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    """A config with ``[state]`` on ``url``: route ``llama`` (one target) and ``pair`` (falls back, breaks at 1)."""
    config: dict[str, Any] = {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {
            "llama": {"targets": [f"local:{LLAMA}"], "retry": {"max_attempts": 1}},
            "pair": {
                "targets": [f"local:{OTHER}", f"local:{LLAMA}"],
                "retry": {"max_attempts": 1},
                "breaker": {"failure_threshold": 1, "cooldown": 30},
            },
        },
        "prices": {f"local:{LLAMA}": PRICE, f"local:{OTHER}": PRICE},
        "state": {"url": url, "prefix": prefix},
    }
    config.update(extra)
    return config
