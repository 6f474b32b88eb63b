"""The spend ledger on a real PostgreSQL: same rows, migrations, spool while it is down, usage from it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import LLAMA
from tests.shared import _workers
from tests.shared.conftest import OwnPostgres
from turnout import AsyncClient, Client
from turnout.cli import main
from turnout.cost._ledger_writer import SCHEMA_VERSION
from turnout.cost.spend_ledger import Entry, Ledger, totals
from turnout.testing import FakeServer, Reply

PRICE = {"input_per_million": "1", "output_per_million": "1"}


@pytest.fixture(autouse=True)
def _config_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER", raising=False)  # the config's [ledger] url is used


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as fake:
        fake.default_reply = Reply("ok", prompt_tokens=20, completion_tokens=5)
        yield fake


def _config(server: FakeServer, url: str, spool: Path) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {"llama": {"targets": [f"local:{LLAMA}"], "retry": {"max_attempts": 1}}},
        "prices": {f"local:{LLAMA}": PRICE},
        "ledger": {"url": url, "spool": str(spool)},
    }


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return list(db.execute("SELECT alias, model, cost, outcome, tags, call_id FROM calls").fetchall())


def test_sync_and_async_calls_are_rows_in_postgres(
    server: FakeServer, pg_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(server, pg_database, tmp_path / "spool.sqlite3")
    with Client(config=config) as client:
        client.chat("llama", "Hi", tags={"tenant": "acme"})
        client.chat("llama", "Hi")

    async def go() -> None:
        async with AsyncClient(config=config) as client:
            await client.chat("llama", "Hi", tags={"tenant": "acme"})

    asyncio.run(go())
    rows = _rows(pg_database)
    assert len(rows) == 3 and len({r[-1] for r in rows}) == 3
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {("llama", LLAMA, "0.000025", "ok")}
    assert sorted(r[4] or "" for r in rows) == ["", '{"tenant": "acme"}', '{"tenant": "acme"}']
    (total,) = totals(pg_database)
    assert total.calls == 3
    assert main(["usage", "--ledger", pg_database, "--by", "tag:tenant", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["tag:tenant"], r["calls"]) for r in out] == [("-", 1), ("acme", 2)]


def test_the_schema_is_versioned(pg_database: str, tmp_path: Path) -> None:
    ledger = Ledger(pg_database, tmp_path / "spool.sqlite3")
    ledger.record("x", [], None, RuntimeError("boom"), 0.1)
    ledger.close()
    with psycopg.connect(pg_database) as db:
        assert db.execute("SELECT version FROM turnout_schema").fetchall() == [(SCHEMA_VERSION,)]
        (outcome,) = db.execute("SELECT outcome FROM calls").fetchone() or ("",)
    assert outcome == "RuntimeError"


def test_missing_counts_and_costs_are_null_in_postgres_and_given_ones_kept(pg_database: str, tmp_path: Path) -> None:
    # Rows are queued with stand-ins for missing cached/reasoning tokens, costs and cost sources
    # (what SQLite's statement turns into NULL): PostgreSQL must get NULL too, never the stand-in.
    given = Entry("given", "p", "m", 11, 7, 5, 3, Decimal("0.0042"), "config", 0.5, "ok", 1)
    missing = Entry("missing", "p", "m", 11, 7, None, None, None, None, 0.5, "ok", 1)
    ledger = Ledger(pg_database, tmp_path / "spool.sqlite3")
    for entry in (given, missing):
        ledger.append(dataclasses.replace(entry, call_id=entry.alias))
    ledger.close()
    with psycopg.connect(pg_database) as db:
        rows = db.execute(
            "SELECT alias, cached_tokens, reasoning_tokens, cost, cost_source FROM calls ORDER BY alias"
        ).fetchall()
    assert rows == [("given", 5, 3, "0.0042", "config"), ("missing", None, None, None, None)]


def test_rows_wait_in_the_spool_while_postgres_is_down(
    server: FakeServer, own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.sqlite3"
    config = _config(server, own_postgres.url, spool)
    with Client(config=config) as client:
        client.chat("llama", "Hi")
        assert client._ledger is not None and client._ledger.flush(5)
        own_postgres.stop()
        started = time.monotonic()
        for _ in range(3):
            client.chat("llama", "Hi")
        assert time.monotonic() - started < 2  # a call never waits for the ledger
        assert client._ledger.flush(10)  # written: to the spool
        assert spool.is_file()
        own_postgres.start()
    # closing replayed the spool, once
    rows = _rows(own_postgres.url)
    assert len(rows) == 4 and len({r[-1] for r in rows}) == 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_spool_is_replayed_on_a_timer_without_a_new_call(
    server: FakeServer, own_postgres: OwnPostgres, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool.sqlite3"
    config = _config(server, own_postgres.url, spool)
    config["ledger"]["replay_interval"] = 0.2
    own_postgres.stop()

    def in_sync() -> None:
        with Client(config=config) as client:
            for n in range(3):
                client.chat("llama", "Hi", tags={"n": str(n)})
            assert client._ledger is not None and client._ledger.flush(10)  # written: to the spool
            _replayed_while_open(own_postgres, spool)

    async def in_async() -> None:
        async with AsyncClient(config=config) as client:
            for n in range(3):
                await client.chat("llama", "Hi", tags={"n": str(n)})
            assert client._ledger is not None and await asyncio.to_thread(client._ledger.flush, 10)
            await asyncio.to_thread(_replayed_while_open, own_postgres, spool)

    in_sync() if mode == "sync" else asyncio.run(in_async())


def _rows_if_any(url: str) -> list[tuple[Any, ...]]:
    try:
        return _rows(url)
    except psycopg.errors.UndefinedTable:  # the writer has not created the table yet
        return []


def _replayed_while_open(own_postgres: OwnPostgres, spool: Path) -> None:
    import sqlite3

    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT count(*) FROM calls").fetchone() == (3,)
    own_postgres.start()  # and no call after it: the writer's timer replays the spool
    deadline = time.monotonic() + 15
    while len(rows := _rows_if_any(own_postgres.url)) < 3:
        assert time.monotonic() < deadline, "the spool was not replayed"
        time.sleep(0.1)
    time.sleep(0.5)  # a second replay, if there were one, would have added rows by now
    with psycopg.connect(own_postgres.url) as db:
        order = [r[0] for r in db.execute("SELECT tags FROM calls ORDER BY ctid").fetchall()]
    assert len(_rows(own_postgres.url)) == 3 and len({r[-1] for r in rows}) == 3
    assert order == [  # in the order they were inserted (a fresh heap: ctid)
        '{"n": "0"}',
        '{"n": "1"}',
        '{"n": "2"}',
    ]
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT count(*) FROM calls").fetchone() == (0,)


def test_every_call_of_four_processes_is_a_row_though_postgres_stopped(
    server: FakeServer, own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    config = _config(server, own_postgres.url, tmp_path / "spool.sqlite3")
    start, out = spawn.Barrier(5), spawn.Queue()
    workers = [spawn.Process(target=_workers.paced_calls, args=(config, start, out, 30, 0.05)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(0.4)
    own_postgres.stop("immediate")  # mid-run, as if it crashed
    time.sleep(0.8)
    own_postgres.start()
    made = sum(out.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(10)
    Ledger(own_postgres.url, tmp_path / "spool.sqlite3").close()  # anything a worker left in the spool
    rows = _rows(own_postgres.url)
    assert made == 120 == len(server.chat_requests)
    assert len(rows) == 120 and len({r[-1] for r in rows}) == 120
