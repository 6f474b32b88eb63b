"""The spend ledger: every call appended to SQLite, and `turnout usage` summing it exactly."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import multiprocessing
import os
import re
import sqlite3
import sys
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests import _ledger_workers
from tests.conftest import LLAMA, Runner
from turnout import AsyncClient, BadRequestError, Client
from turnout.cli import main
from turnout.config import load_config
from turnout.cost import _ledger_writer
from turnout.cost.spend_ledger import Entry, Ledger, LedgerConfig, default_ledger_path, ledger_path, totals
from turnout.testing import FakeServer, Fault, Reply
from turnout.types import Cost, Usage


def _config(server: FakeServer, path: Path) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {"llama": {"targets": [f"local:{LLAMA}"], "retry": {"max_attempts": 1}}},
        "prices": {f"local:{LLAMA}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "ledger": {"path": str(path)},
    }


@pytest.mark.parametrize("streamed", [False, True])
def test_every_call_is_recorded_with_its_exact_cost(
    runner: Runner, fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER")
    path = tmp_path / "spend.sqlite3"
    fake_vllm.enqueue(Reply("a", prompt_tokens=7, completion_tokens=3), Fault.status(400))
    reply = runner.call(streamed, _config(fake_vllm, path), "llama", "Hi", max_tokens=5)
    with pytest.raises(BadRequestError):
        runner.call(streamed, _config(fake_vllm, path), "llama", "Hi", max_tokens=5)
    (total,) = totals(path)
    assert reply.cost is not None
    assert (total.provider, total.model, total.calls, total.failed) == ("local", LLAMA, 2, 1)
    assert (total.prompt_tokens, total.completion_tokens, total.cost) == (7, 3, reply.cost.total)
    assert total.cost == Decimal("0.0000013")
    assert total.day == datetime.now(UTC).date().isoformat()


def test_ledger_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TURNOUT_LEDGER", "off")
    assert ledger_path(LedgerConfig(path="x.db")) is None
    monkeypatch.setenv("TURNOUT_LEDGER", str(tmp_path / "env.db"))
    assert ledger_path(None) == tmp_path / "env.db"
    monkeypatch.delenv("TURNOUT_LEDGER")
    assert ledger_path(LedgerConfig(enabled=False)) is None
    assert ledger_path(LedgerConfig(path="x.db")) == Path("x.db")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert ledger_path(None) == default_ledger_path() == tmp_path / "turnout" / "ledger.sqlite3"


def test_an_unwritable_ledger_never_fails_the_call(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TURNOUT_LEDGER", str(blocker / "ledger.sqlite3"))
    fake_vllm.enqueue(Reply("a"), Reply("b"))
    with Client(config=_config(fake_vllm, tmp_path / "unused")) as client:
        assert client.chat("llama", "Hi").text == "a"
        assert client.chat("llama", "Hi").text == "b"
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "cannot write the spend ledger" in r.message)
    ) == 1


def _fill(path: Path) -> None:
    ledger = Ledger(path)
    day1, day2 = datetime(2026, 11, 26, 10, tzinfo=UTC), datetime(2026, 11, 27, 9, tzinfo=UTC)
    for ts, model, cost in [(day1, "a", "0.1"), (day1, "a", "0.2"), (day2, "b", None), (day2, "a", "0.0000001")]:
        ledger.append(
            Entry(
                "fast", "p", model, 10, 5, None, None, None if cost is None else Decimal(cost), None, 0.1, "ok", 1, ts
            )
        )


def test_usage_prints_a_table_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    _fill(path)
    assert main(["usage", "--ledger", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "day",
        "provider",
        "model",
        "calls",
        "failed",
        "prompt",
        "completion",
        "cost_usd",
        "unpriced",
        "cache_hits",
        "saved_usd",
    ]
    assert table[2].split() == ["2026-11-26", "p", "a", "2", "0", "20", "10", "0.3", "0", "0", "0"]
    assert table[-1].split() == ["total", "4", "0", "40", "20", "0.3000001", "1", "0", "0"]
    assert main(["usage", "--ledger", str(path), "--json", "--since", "2026-11-27"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["day"], d["model"], d["cost"], d["unpriced"]) for d in data] == [
        ("2026-11-27", "a", "0.0000001", 0),
        ("2026-11-27", "b", "0", 1),
    ]
    assert main(["usage", "--ledger", str(path), "--csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][0] == "day" and len(rows) == 4


def test_usage_without_a_ledger_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--ledger", str(tmp_path / "none.sqlite3")]) == 1
    assert "no spend ledger at" in capsys.readouterr().err
    config = tmp_path / "turnout.toml"
    config.write_text("[ledger]\nenabled = false\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TURNOUT_LEDGER")
        assert main(["usage", "--config", str(config)]) == 1
    assert "ledger is off" in capsys.readouterr().err


def test_rows_still_queued_at_exit_are_written(tmp_path: Path) -> None:
    """The interpreter's exit writes what the background writer has not written yet."""
    import subprocess
    import sys

    path = tmp_path / "exit.sqlite3"
    script = (
        "from turnout.cost.spend_ledger import Entry, Ledger\n"
        f"ledger = Ledger({str(path)!r})\n"
        "for i in range(5):\n"
        "    ledger.append(Entry('fast', 'p', 'm', 1, 1, None, None, None, None, 0.1, 'ok', 1))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert sum(t.calls for t in totals(path)) == 5


def test_usage_rich_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    _fill(path)
    assert main(["usage", "--ledger", str(path), "--rich"]) == 0
    out = capsys.readouterr().out
    assert "turnout spend" in out and "│" in out  # a rich table, with box drawing
    assert "0.3000001" in out and "2026-11-26" in out  # exact cost in the footer, every day listed


# -- issue 13.2: no lost rows ---------------------------------------------------------------------


def _calls(path: Path) -> int:
    return sum(t.calls for t in totals(path))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_row_is_on_disk_within_half_a_second_while_the_client_stays_open(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    path = tmp_path / "spend.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    config = _config(fake_vllm, path)
    if mode == "sync":
        client = Client(config=config)
        client.chat("llama", "Hi")
        client.chat("llama", "Hi")
        time.sleep(0.5)  # no later call, no close: only a background write can put them there
        assert _calls(path) == 2
        client.close()
        return

    async def go() -> None:
        async with AsyncClient(config=config) as client:
            await client.chat("llama", "Hi")
            await client.chat("llama", "Hi")
            await asyncio.sleep(0.5)
            assert _calls(path) == 2

    asyncio.run(go())


_FORK_IN_THREADS = "ignore:This process .* is multi-threaded:DeprecationWarning"  # Python >= 3.12 (the fakes' threads)


@pytest.mark.filterwarnings(_FORK_IN_THREADS)
@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_every_row_of_a_pool_is_recorded(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    """Pool workers end with os._exit (no atexit): their rows are written when each worker exits."""
    path = tmp_path / "pool.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    pool = multiprocessing.get_context(start).Pool(4, _ledger_workers.start, (_config(fake_vllm, path),))
    try:
        assert pool.map(_ledger_workers.call, range(40)) == [f"Hi {i}" for i in range(40)]
    finally:
        pool.close()
        pool.join()
    assert _calls(path) == 40


@pytest.mark.filterwarnings(_FORK_IN_THREADS)
def test_a_client_used_before_fork_works_in_the_children(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Children get their own connections and ledger writer; the parent's pending rows are not copied."""
    path = tmp_path / "fork.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    client = Client(config=_config(fake_vllm, path))
    for _ in range(3):  # a pooled keep-alive connection, and three rows not yet written at the fork
        client.chat("llama", "parent")

    def child() -> None:
        for i in range(10):
            assert client.chat("llama", f"child {i}").text == f"child {i}"

    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=child) for _ in range(3)]
    for process in children:
        process.start()
    for i in range(10):
        assert client.chat("llama", f"parent {i}").text == f"parent {i}"
    for process in children:
        process.join(30)
    assert [p.exitcode for p in children] == [0, 0, 0]
    client.close()
    assert _calls(path) == 3 + 3 * 10 + 10
    (total,) = totals(path)
    assert total.failed == 0


# -- issue 13.3: a locked ledger never blocks a call ----------------------------------------------


def _entry() -> Entry:
    return Entry("fast", "p", "m", 1, 1, None, None, None, None, 0.1, "ok", 1)


def _wait_for(path: Path, calls: int, within: float = 5.0) -> int:
    deadline = time.monotonic() + within
    while (found := _calls(path)) < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_locked_ledger_never_blocks_a_call_and_is_written_once_free(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    path = tmp_path / "locked.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    existing = Ledger(path)
    existing.append(_entry())
    existing.close()
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    locked_at = time.monotonic()
    durations: list[float] = []

    def release() -> None:
        time.sleep(max(0.0, 2.0 - (time.monotonic() - locked_at)))
        locker.execute("COMMIT")
        locker.close()

    config = _config(fake_vllm, path)
    if mode == "sync":
        client = Client(config=config)
        time.sleep(0.6)  # past the old 0.5 s batch window: the next call used to write (and wait 10 s)
        for _ in range(3):
            start = time.monotonic()
            client.chat("llama", "Hi")
            durations.append(time.monotonic() - start)
        release()
        assert _wait_for(path, 4) == 4  # the rows waited in memory, and are written now
        client.chat("llama", "Hi")  # and the ledger did not turn itself off
        assert _wait_for(path, 5) == 5
        client.close()
    else:
        gaps: list[float] = []

        async def ticker() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.01)
                gaps.append(time.monotonic() - before)

        async def go() -> None:
            async with AsyncClient(config=config) as client:
                tick = asyncio.create_task(ticker())
                await asyncio.sleep(0.6)
                for _ in range(3):
                    start = time.monotonic()
                    await client.chat("llama", "Hi")
                    durations.append(time.monotonic() - start)
                await asyncio.to_thread(release)
                assert await asyncio.to_thread(_wait_for, path, 4) == 4
                await client.chat("llama", "Hi")
                assert await asyncio.to_thread(_wait_for, path, 5) == 5
                tick.cancel()
            assert max(gaps) < 0.5  # the event loop was never held

        asyncio.run(go())
    assert max(durations) < 1.0  # the busy timeout is 10 s; a call never waits on the ledger


def test_rows_beyond_the_memory_bound_are_dropped_with_a_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_ledger_writer, "MAX_PENDING", 3)
    path = tmp_path / "bound.sqlite3"
    ledger = Ledger(path)
    ledger.append(_entry())
    assert ledger.flush()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for _ in range(10):
        ledger.append(_entry())

    def dropped() -> int:
        counts = (re.search(r"dropped the (\d+) oldest unwritten rows", r.getMessage()) for r in caplog.records)
        return sum(int(found[1]) for found in counts if found)

    deadline = time.monotonic() + 5
    while dropped() < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dropped() == 7
    locker.execute("COMMIT")
    locker.close()
    assert ledger.flush(5.0)
    ledger.close()
    assert _calls(path) == 1 + 3


# -- issue 13.4: `turnout usage` reads the app's ledger -------------------------------------------


def test_usage_reads_the_ledger_of_turnout_toml_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER")
    monkeypatch.delenv("TURNOUT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))  # not the default ledger
    monkeypatch.chdir(tmp_path)
    (tmp_path / "turnout.toml").write_text('[ledger]\npath = "spend.sqlite3"\n')
    _fill(tmp_path / "spend.sqlite3")
    assert main(["usage", "--json"]) == 0
    assert sum(row["calls"] for row in json.loads(capsys.readouterr().out)) == 4


def test_a_relative_ledger_path_is_from_the_config_files_folder_for_client_and_usage(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER")
    folder, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = folder / "turnout.toml"
    config.write_text(f"""
[providers.local]
type = "vllm"
base_url = "{fake_vllm.base_url}"

[models.llama]
targets = ["local:{LLAMA}"]

[prices."local:{LLAMA}"]
input_per_million = 0.1
output_per_million = 0.2

[ledger]
path = "data/spend.sqlite3"
""")
    monkeypatch.setenv("TURNOUT_CONFIG", str(config))
    with Client() as client:
        client.chat("llama", "Hi")
    assert _calls(folder / "data" / "spend.sqlite3") == 1
    assert not (elsewhere / "data").exists()
    assert main(["usage", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[:4] == [
        datetime.now(UTC).date().isoformat(),
        "local",
        LLAMA,
        "1",
    ]


def test_a_tilde_in_the_ledger_path_expands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "turnout.toml"
    config.write_text('[ledger]\npath = "~/spend.sqlite3"\n')
    monkeypatch.delenv("TURNOUT_LEDGER")
    assert ledger_path(load_config(config).ledger) == tmp_path / "spend.sqlite3"
    assert ledger_path(LedgerConfig(path="~/a.db")) == tmp_path / "a.db"
    monkeypatch.setenv("TURNOUT_LEDGER", "~/env.db")
    assert ledger_path(None) == tmp_path / "env.db"


@pytest.mark.parametrize("bad", ["2026-12-5", "12/01/2026", "yesterday", "2026-13-01"])
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_usage_rejects_what_is_not_a_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str, option: str
) -> None:
    path = tmp_path / "l.sqlite3"
    _fill(path)
    with pytest.raises(SystemExit) as exit_:
        main(["usage", "--ledger", str(path), option, bad])
    assert exit_.value.code == 2
    assert f"{bad!r} is not a date: give YYYY-MM-DD" in capsys.readouterr().err


def test_usage_until_and_datetimes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    _fill(path)  # two calls on 2026-11-26 10:00, two on 2026-11-27 09:00 (UTC)

    def calls(*options: str) -> int:
        assert main(["usage", "--ledger", str(path), "--json", *options]) == 0
        return sum(row["calls"] for row in json.loads(capsys.readouterr().out))

    assert calls("--until", "2026-11-26") == 2  # all of that day
    assert calls("--since", "2026-11-27") == 2
    assert calls("--since", "2026-11-26", "--until", "2026-11-27") == 4
    assert calls("--until", "2026-11-25") == 0
    assert calls("--since", "2026-11-26T10:00:00Z", "--until", "2026-11-26T10:00:00+00:00") == 2
    assert calls("--since", "2026-11-27T10:00:00+02:00") == 2  # 08:00 UTC
    assert calls("--until", "2026-11-27T08:59") == 2  # naive: UTC


def test_usage_groups_by_alias(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    for alias, cost in [("fast", "0.1"), ("fast", "0.2"), ("smart", "1.5")]:
        ledger.append(Entry(alias, "p", "m", 10, 5, None, None, Decimal(cost), None, 0.1, "ok", 1))
    ledger.close()
    assert main(["usage", "--ledger", str(path), "--by", "alias", "--plain"]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert table[0] == [
        *("alias", "calls", "failed", "prompt", "completion", "cost_usd", "unpriced", "cache_hits", "saved_usd"),
    ]
    assert table[2:] == [
        ["fast", "2", "0", "20", "10", "0.3", "0", "0", "0"],
        ["smart", "1", "0", "10", "5", "1.5", "0", "0", "0"],
        ["total", "3", "0", "30", "15", "1.8", "0", "0", "0"],
    ]
    assert main(["usage", "--ledger", str(path), "--by", "day,alias", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["alias"], r["calls"], r["cost"]) for r in rows] == [("fast", 2, "0.3"), ("smart", 1, "1.5")]
    assert set(rows[0]) == {
        *("day", "alias", "calls", "failed", "prompt_tokens", "completion_tokens", "cost", "unpriced"),
        *("cache_hits", "saved"),
    }
    with pytest.raises(SystemExit) as exit_:
        main(["usage", "--ledger", str(path), "--by", "colour"])
    assert exit_.value.code == 2


def test_usage_on_a_file_that_is_not_a_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not SQLite\n" * 100)
    other = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE t (x)")
    for path in (text, other):
        assert main(["usage", "--ledger", str(path)]) == 1
        assert f"turnout: {path} is not a turnout spend ledger" in capsys.readouterr().err


def test_usage_help_states_the_true_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["usage", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "The file is --ledger FILE, else $TURNOUT_LEDGER, else [ledger] path of --config FILE "
        "(else $TURNOUT_CONFIG, else ./turnout.toml), else the default" in text
    )


# -- issue 12.7: a versioned schema ---------------------------------------------------------------

_SCHEMA_V0 = """
CREATE TABLE IF NOT EXISTS calls (
    ts TEXT NOT NULL, alias TEXT NOT NULL, provider TEXT, model TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER,
    cost TEXT, cost_source TEXT, latency REAL NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL
)
"""


def test_a_version_0_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v0.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(_SCHEMA_V0)
        db.execute(
            "INSERT INTO calls VALUES ('2026-11-26T10:00:00.000+00:00', 'fast', 'p', 'm', 7, 3, NULL, NULL, "
            "'0.0000013', 'config', 0.2, 'ok', 1)"
        )
    ledger = Ledger(path)
    ledger.record("fast", [], None, TimeoutError(), 0.5, cache_hit=True, tags={"team": "a"}, run_id="r1", call_id="c1")
    ledger.close()
    assert [(t.day, t.calls, t.failed, t.cost) for t in totals(path)] == [
        ("2026-11-26", 1, 0, Decimal("0.0000013")),
        (datetime.now(UTC).date().isoformat(), 1, 1, Decimal(0)),
    ]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        columns = [row[1] for row in db.execute("PRAGMA table_info(calls)")]
        rows = db.execute("SELECT estimated, cache_hit, tags, run_id, call_id FROM calls ORDER BY ts").fetchall()
    assert columns[-6:] == ["estimated", "cache_hit", "tags", "run_id", "call_id", "saved"]
    assert rows == [(0, 0, None, None, None), (0, 1, '{"team": "a"}', "r1", "c1")]


def test_estimated_is_read_from_the_paid_cost(tmp_path: Path) -> None:
    path = tmp_path / "est.sqlite3"
    ledger = Ledger(path)
    cost = SimpleNamespace(total=Decimal("0.5"), source="estimate", estimated=True)
    usage = Usage(prompt_tokens=10, completion_tokens=1500)
    ledger.record("fast", [], None, KeyboardInterrupt(), 1.0, paid=(usage, cast(Cost, cost)))
    ledger.record("fast", [], None, KeyboardInterrupt(), 1.0, estimated=True)
    ledger.record("fast", [], None, KeyboardInterrupt(), 1.0)
    ledger.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT estimated, cost FROM calls ORDER BY rowid").fetchall() == [
            (1, "0.5"),
            (1, None),
            (0, None),
        ]


def test_a_large_batch_is_written_whole_and_in_order(tmp_path: Path) -> None:
    # A batch holds more rows than one INSERT statement may bind (SQLite's variable limit, lowered
    # here to 60): the statements must split them without losing or reordering any, plain rows and
    # labelled rows (more columns) alike.
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    ledger.append(Entry("warm", None, None, None, None, None, None, None, None, 0.0, "ok", 0))
    assert ledger.flush(5.0)
    writer = ledger._writer
    assert writer.db is not None
    writer.db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 60)
    start = datetime(2026, 11, 27, 9, tzinfo=UTC)

    def at(i: int) -> datetime:  # stored to the millisecond, the microseconds cut off
        return start + timedelta(seconds=i, microseconds=i * 7919 % 1_000_000)

    for i in range(123):
        ledger.append(
            Entry(
                *("fast", "p", f"m{i}", i, 2 * i, None if i % 2 else i, None, Decimal(i) / 1000, "config"),
                *(0.5 + i, "ok" if i % 3 else "RateLimitError", 1 + i % 2, at(i)),
                estimated=i % 5 == 0,
                tags={"n": str(i)} if i % 4 == 0 else None,
                saved=Decimal(i) if i % 7 == 0 else None,
            )
        )
    assert ledger.flush(5.0)
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT ts, model, prompt_tokens, completion_tokens, cached_tokens, cost, latency, outcome, attempts,"
            " estimated, tags, saved FROM calls WHERE alias = 'fast' ORDER BY rowid"
        ).fetchall()
    assert len(rows) == 123
    for i, row in enumerate(rows):
        when = (at(i)).isoformat(timespec="milliseconds")
        assert row == (
            *(when, f"m{i}", i, 2 * i, None if i % 2 else i, str(Decimal(i) / 1000), 0.5 + i),
            *("ok" if i % 3 else "RateLimitError", 1 + i % 2, int(i % 5 == 0)),
            json.dumps({"n": str(i)}) if i % 4 == 0 else None,
            str(i) if i % 7 == 0 else None,
        )
    ledger.close()


def test_batches_of_any_size_use_a_handful_of_statements(tmp_path: Path) -> None:
    # Each statement size is prepared once and kept (sqlite3's statement cache holds 128): batches
    # of 1 to 200 rows, plain and labelled, must need only power-of-two sizes up to MOST_ROWS.
    ledger = Ledger(tmp_path / "l.sqlite3")
    writer = ledger._writer
    _ledger_writer._insert.cache_clear()
    written = labelled = 0
    for size in (1, 3, 63, 64, 65, 100, 127, 200):
        rows: list[tuple[object, ...]] = [
            (i, "fast", "p", "m", 1, 2, 0, 0, "0.1", "config", 0.5, "ok", 1) for i in range(size)
        ]
        rows += [(*row, 1, 0, None, "run", None, None) for row in rows[: size // 2]]
        assert writer._write(rows) is None
        written, labelled = written + len(rows), labelled + size // 2
    sizes = 1 + _ledger_writer.MOST_ROWS.bit_length() - 1  # 1, 2, 4, ..., MOST_ROWS
    assert _ledger_writer._insert.cache_info().currsize <= 2 * sizes
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("SELECT count(*), count(run_id) FROM calls").fetchone() == (written, labelled)
    ledger.close()


def test_a_rows_own_labels_win_each_on_its_own(tmp_path: Path) -> None:
    # ledger_labels gives the run id and tags; a row's own run_id or tags replace only that one.
    from turnout.cost.spend_ledger import ledger_labels

    ledger = Ledger(tmp_path / "l.sqlite3")
    with ledger_labels("run-2", {"suite": "s"}):
        ledger.record("fast", [], None, KeyboardInterrupt(), 1.0)
        ledger.record("fast", [], None, KeyboardInterrupt(), 1.0, tags={"a": "1"})
        ledger.record("fast", [], None, KeyboardInterrupt(), 1.0, run_id="own")
    ledger.record("fast", [], None, KeyboardInterrupt(), 1.0)
    ledger.close()
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("SELECT run_id, tags FROM calls ORDER BY rowid").fetchall() == [
            ("run-2", '{"suite": "s"}'),
            ("run-2", '{"a": "1"}'),
            ("own", '{"suite": "s"}'),
            (None, None),
        ]


_GIVEN = Entry("given", "p", "m", 11, 7, 5, 3, Decimal("0.0042"), "config", 0.5, "ok", 1)
_MISSING = Entry("missing", "p", "m", 11, 7, None, None, None, None, 0.5, "ok", 1)
_COUNTS = "SELECT alias, cached_tokens, reasoning_tokens, cost, cost_source FROM calls ORDER BY alias"


def test_missing_counts_and_costs_are_null_and_given_ones_kept(tmp_path: Path) -> None:
    # Rows are queued with stand-ins for the values calls often lack (cached and reasoning
    # tokens, the cost and its source): the ledger must still hold NULL for them, never the
    # stand-in, and every value given as it was, in a plain row and in a labelled one.
    ledger = Ledger(tmp_path / "l.sqlite3")
    for entry in (_GIVEN, _MISSING):
        ledger.append(entry)
        ledger.append(dataclasses.replace(entry, alias=entry.alias + "+run", run_id="r1"))
    ledger.close()
    with closing(sqlite3.connect(ledger.path)) as db:
        rows = db.execute(_COUNTS).fetchall()
    assert rows == [
        ("given", 5, 3, "0.0042", "config"),
        ("given+run", 5, 3, "0.0042", "config"),
        ("missing", None, None, None, None),
        ("missing+run", None, None, None, None),
    ]


def test_iso_time_is_the_utc_millisecond_of_any_time() -> None:
    # The second's text is kept between calls: the milliseconds around second (and day and
    # year) boundaries, in any order, must each read as Python's own formatting says.
    start = int(datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC).timestamp() * 1000)
    times = [start + step for step in range(0, 4000, 37)] + [start + 3999, start, 0, start + 1000, 1_700_000_000_999]
    for ms in times:
        expected = datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        assert _ledger_writer.iso_time(ms) == expected.isoformat(timespec="milliseconds"), ms


_linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the nice value is per thread on Linux")


def _writer_thread(ledger: Ledger) -> int:
    """The native id of ``ledger``'s writer thread, started by a first row."""
    ledger.append(_entry())
    assert ledger.flush(5.0)
    thread = ledger._writer.thread
    assert thread is not None and thread.native_id is not None
    return thread.native_id


@_linux_only
def test_the_writer_thread_runs_nicer_than_the_caller_and_the_caller_keeps_its_priority(tmp_path: Path) -> None:
    # The calls' thread (here the test's) must keep its nice value: renicing the process (pid
    # instead of the thread's id) would slow the application itself.
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ledger = Ledger(tmp_path / "l.sqlite3")
    writer = _writer_thread(ledger)
    assert os.getpriority(os.PRIO_PROCESS, writer) == min(19, caller + 15)  # the documented value
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == caller
    ledger.close()


@_linux_only
def test_a_writer_told_nice_0_keeps_the_callers_priority(tmp_path: Path) -> None:
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger._writer.nice = 0
    assert os.getpriority(os.PRIO_PROCESS, _writer_thread(ledger)) == caller
    ledger.close()


def _nice_after_lowering(nice: int) -> tuple[int, int]:
    """A fresh thread's nice value before and after `_lower_priority(nice)` (never the test's own thread)."""
    seen: list[int] = []

    def run() -> None:
        me = threading.get_native_id()
        seen.append(os.getpriority(os.PRIO_PROCESS, me))
        _ledger_writer._lower_priority(nice)
        seen.append(os.getpriority(os.PRIO_PROCESS, me))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0], seen[1]


@_linux_only
def test_elsewhere_than_linux_the_priority_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before, after = _nice_after_lowering(5)
    assert after == min(19, before + 5)
    monkeypatch.setattr(sys, "platform", "darwin")  # setpriority there takes a process, not a thread
    before, after = _nice_after_lowering(5)
    assert after == before


@_linux_only
def test_a_refused_priority_change_leaves_the_writer_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)  # as a seccomp sandbox answers
    ledger = Ledger(tmp_path / "l.sqlite3")
    _writer_thread(ledger)
    ledger.close()
    assert [t.calls for t in totals(tmp_path / "l.sqlite3")] == [1]
