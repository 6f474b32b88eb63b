"""The spend ledger's SQLite side: its versioned schema, and the thread that writes its rows.

A call only appends its row to a list in memory (a few µs). One daemon thread per ledger and
process writes the rows, at most ``WRITE_DELAY`` seconds after the first of them came, or as soon
as ``BATCH`` rows wait, in one transaction. A busy or locked database is retried later (bounded
backoff) and the rows stay in memory until written, at most ``MAX_PENDING`` of them (the oldest
beyond that are dropped, with a warning saying how many). Pending rows are written when the ledger
is closed, at interpreter exit and when a ``multiprocessing`` worker exits. On Linux the thread runs
at a lower CPU priority than the application's threads (`WRITER_NICE`), so that a call's thread,
woken by its reply, is not kept waiting for the CPU behind a batch. In a child made by
``fork`` every ledger starts over: its own writer thread, no pending rows (the parent writes its
own), and never the parent's SQLite connection (https://www.sqlite.org/howtocorrupt.html, 2.6).
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from functools import cache
from itertools import chain, groupby
from pathlib import Path

__all__ = [
    "MIGRATIONS",
    "NO_COUNT",
    "NO_TEXT",
    "PLAIN",
    "SCHEMA_VERSION",
    "UNLABELLED",
    "WIDTH",
    "Writer",
    "iso_time",
    "migrate",
    "queued",
    "stored",
]

logger = logging.getLogger("turnout")

BATCH = 64
WRITE_DELAY = 0.1  # seconds a row may wait for others to share its transaction (the docs promise 0.5)
MAX_PENDING = 100_000
BUSY_WAIT = 0.5  # SQLite's own busy wait per attempt, on the writer thread only
MAX_BACKOFF = 2.0
CLOSE_WAIT = 2.0  # how long close() waits for a locked database before leaving its rows to the writer
EXIT_WAIT = 5.0
#: How much nicer than the thread that starts it the writer thread runs (Linux, where the nice value
#: is per thread: https://man7.org/linux/man-pages/man2/setpriority.2.html, BUGS). At nice 15 a
#: thread weighs 36 against a normal thread's 1024 (the kernel's ``sched_prio_to_weight`` table,
#: kernel/sched/core.c): beside a thread that never sleeps it still gets about 3 % of a core, some
#: 10,000 rows a second at the writer's 2.5 µs a row (docs/performance.md, "Tail latency").
WRITER_NICE = 15

# Version 0: the table as turnout <= 0.x created it (no user_version). Never edit; add a migration.
_TABLE_V0 = """
CREATE TABLE IF NOT EXISTS calls (
    ts TEXT NOT NULL, alias TEXT NOT NULL, provider TEXT, model TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER,
    cost TEXT, cost_source TEXT, latency REAL NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL
)
"""
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: what budgets, caching, tags and runs record (estimated: usage or cost estimated, not reported)
    (
        "ALTER TABLE calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE calls ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE calls ADD COLUMN tags TEXT",
        "ALTER TABLE calls ADD COLUMN run_id TEXT",
        "ALTER TABLE calls ADD COLUMN call_id TEXT",
    ),
    # 2: what a reply served from the response cache would have cost (its stored cost, exact text)
    ("ALTER TABLE calls ADD COLUMN saved TEXT",),
)
SCHEMA_VERSION = len(MIGRATIONS)
_COLUMNS = (
    "ts, alias, provider, model, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, "
    "cost, cost_source, latency, outcome, attempts, estimated, cache_hit, tags, run_id, call_id, saved"
)
WIDTH = len(_COLUMNS.split(", "))
PLAIN = _COLUMNS.split(", ").index("estimated")
"""A queued row is its first ``PLAIN`` values (the time as ISO text, the cost as text) and, only
when one of them is set, the ``WIDTH - PLAIN`` labels after them (flags 0/1, tags as JSON text):
values SQLite binds as they are, so the writer converts nothing. The sqlite3 module binds
``None`` and ``bool`` through its adapter lookup (about 0.3 µs each, with the GIL held), so a row
without labels leaves those columns to their defaults, and a missing cached or reasoning token
count is queued as `NO_COUNT`, a missing cost or cost source as `NO_TEXT`: the statement stores
NULL for them (``NULLIF``)."""
UNLABELLED = (0, 0, None, None, None, None)
NO_COUNT = -1
NO_TEXT = ""
#: A queued row's values, the four often missing through NULLIF (https://www.sqlite.org/lang_corefunc.html#nullif).
_VALUES = "?, ?, ?, ?, ?, ?, NULLIF(?, -1), NULLIF(?, -1), NULLIF(?, ''), NULLIF(?, ''), ?, ?, ?"
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
MOST_ROWS = 64  # one statement inserts at most this many rows (and a power of two of them)


def _busy(exc: BaseException) -> bool:
    """Whether a write failed only because another connection holds the database (worth waiting for)."""
    return isinstance(exc, sqlite3.Error) and (exc.sqlite_errorcode or 0) & 0xFF in _BUSY


def migrate(db: sqlite3.Connection) -> int:
    """Bring the ledger to `SCHEMA_VERSION` in one transaction (``PRAGMA user_version``); return its version.

    A file from a newer turnout is left alone: migrations only add columns, so its rows still read
    and these columns still write.
    """
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version >= SCHEMA_VERSION:
        return version
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])  # another process may have migrated it
        if version == 0:
            db.execute(_TABLE_V0)
        for step in MIGRATIONS[version:]:
            for statement in step:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return max(version, SCHEMA_VERSION)


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_WAIT, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: no fsync per commit, still crash-safe
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def iso_time(ms: int) -> str:
    """``ms`` (since the epoch) as the ledger stores it: ISO 8601 in UTC, to the millisecond.

    The text of the whole second is kept between calls (calls come many a second), so a call
    pays for one division and one format.
    """
    global _second
    second, milli = divmod(ms, 1000)
    known = _second
    if known[0] != second:
        known = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{known[1]}.{milli:03d}+00:00"


def queued(
    ts: str,
    alias: str,
    provider: str | None,
    model: str | None,
    prompt: int | None,
    completion: int | None,
    cached: int | None,
    reasoning: int | None,
    cost: str | None,
    source: str | None,
    latency: float,
    outcome: str,
    attempts: int,
) -> tuple[object, ...]:
    """A row's first `PLAIN` values as they are queued: a missing count as `NO_COUNT`, cost or source as `NO_TEXT`."""
    return (
        *(ts, alias, provider, model, prompt, completion),
        *(NO_COUNT if cached is None else cached, NO_COUNT if reasoning is None else reasoning),
        *(NO_TEXT if cost is None else cost, source or NO_TEXT, latency, outcome, attempts),
    )


def stored(row: tuple[object, ...]) -> tuple[object, ...]:
    """A queued row of all `WIDTH` columns as plain values (`queued`'s stand-ins back to None) for PostgreSQL."""
    cached, reasoning, cost, source = row[6:10]
    missing = (
        None if cached == NO_COUNT else cached,
        None if reasoning == NO_COUNT else reasoning,
        cost or None,
        source or None,
    )
    return (*row[:6], *missing, *row[10:])


@cache
def _insert(width: int, rows: int) -> str:
    """The statement that inserts ``rows`` queued rows of ``width`` values (SQLite's statement cache keeps them)."""
    columns = ", ".join(_COLUMNS.split(", ")[:width])
    values = f"({_VALUES}{', ?' * (width - PLAIN)})"
    return f"INSERT INTO calls ({columns}) VALUES {', '.join([values] * rows)}"  # noqa: S608 - no user text


def _pieces(rows: list[tuple[object, ...]], most: int) -> Iterator[list[tuple[object, ...]]]:
    """``rows`` in pieces whose sizes are powers of two up to ``most``: a handful of statements, each prepared once."""
    size = 1 << (max(1, most).bit_length() - 1)
    start = 0
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start : start + size]
        start += size


class Writer:
    """The rows of one ledger waiting to be written, and the daemon thread that writes them."""

    nice = WRITER_NICE  # the writer thread's priority below its starter's (0: the same)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reset()
        _WRITERS.add(self)

    def _reset(self) -> None:
        """A fresh state (also in a forked child, where the parent's thread, lock and rows are not ours)."""
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.pending: list[tuple[object, ...]] = []
        self.first_at = 0.0  # when the oldest pending row came (monotonic)
        self.queued = 0  # rows ever appended
        self.done = 0  # rows written or dropped
        self.tries = 0  # write attempts that failed for a reason other than a lock
        self.waiters = 0  # flush() calls waiting
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.db: sqlite3.Connection | None = None
        self.failing: str | None = None  # the error of the current failure streak (logged once)
        self.idle_wait: float | None = None  # seconds the idle thread waits before an empty batch (None: no timer)

    def add(self, row: tuple[object, ...]) -> None:
        """Queue one row (the only part on a call's path)."""
        with self.lock:  # the condition's own lock, without its Python-level __enter__ and __exit__
            pending = self.pending
            pending.append(row)
            self.queued += 1
            if self.thread is None:
                self._start()
            if len(pending) == 1:
                self.first_at = time.monotonic()
                self.cond.notify()
            elif len(pending) == BATCH:
                self.cond.notify()

    def _start(self) -> None:
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="turnout-ledger", daemon=True)
        self.thread.start()
        _on_worker_exit()

    def flush(self, timeout: float, *, stop: bool = False) -> int:
        """Ask for the pending rows to be written now; wait up to ``timeout`` s; return how many are left.

        Returns early when a write fails for a reason other than a lock (it will not get better
        by waiting). ``stop``: the thread then exits and closes the file (a later row reopens it).
        """

        def finished() -> bool:
            if self.tries > tries:
                return True
            return self.done >= target and (not stop or self.thread is None or bool(self.pending))

        with self.cond:
            target, tries = self.queued, self.tries
            self.stopping = self.stopping or stop
            if self.thread is None:
                return self.queued - self.done
            self.waiters += 1
            self.cond.notify_all()
            try:
                self.cond.wait_for(finished, timeout)
            finally:
                self.waiters -= 1
            return max(0, target - self.done)

    def _run(self) -> None:
        _lower_priority(self.nice)
        backoff = 0.05
        while True:
            with self.cond:
                rows = self._take()
                if rows is None:
                    return
            error = self._write(rows)
            with self.cond:
                if error is None:
                    self.done += len(rows)
                    backoff = 0.05
                    self.cond.notify_all()
                    continue
                self.pending[:0] = rows
                self._trim()
                if not _busy(error):
                    self.tries += 1
                self.cond.notify_all()
                self.cond.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _take(self) -> list[tuple[object, ...]] | None:
        """Under the lock: the next rows to write, once their delay is up; None when the thread should end."""
        while not self.pending:
            if self.stopping:
                self.thread = None
                if self.db is not None:
                    self.db.close()
                    self.db = None
                self.cond.notify_all()
                return None
            if not self.cond.wait(self.idle_wait):
                return []  # the timer: an empty batch, for a subclass's periodic work (the spool's replay)
        while len(self.pending) < BATCH and not (self.waiters or self.stopping):
            left = self.first_at + WRITE_DELAY - time.monotonic()
            if left <= 0:
                break
            self.cond.wait(left)
        rows, self.pending = self.pending, []
        return rows

    def _write(self, rows: list[tuple[object, ...]]) -> sqlite3.Error | OSError | None:
        """Write ``rows`` in one transaction (on the writer thread); return the error, if any."""
        try:
            if self.db is None:
                self.db = _open(self.path)
            db = self.db
            # Many rows per statement, not one (executemany): each statement gives up the GIL and
            # takes it back, a thread switch when the caller's thread is busy.
            limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 999 before SQLite 3.32
            statements = [
                (_insert(width, len(piece)), list(chain.from_iterable(piece)))
                for width, same in groupby(rows, len)  # labelled rows bind more columns
                for piece in _pieces(list(same), min(MOST_ROWS, limit // width))
            ]
            if len(statements) == 1:
                db.execute(*statements[0])  # one statement is its own transaction
            elif statements:
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements:
                        db.execute(*statement)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc, len(rows))
            return exc
        if self.failing is not None:
            self.failing = None
            logger.warning("turnout: the spend ledger %s is writable again; its pending rows are written", self.path)
        return None

    def _failed(self, exc: sqlite3.Error | OSError, rows: int) -> None:
        if not _busy(exc) and self.db is not None:
            self.db.close()  # reopen next time (the file may have been replaced)
            self.db = None
        if self.failing is None:
            self.failing = str(exc)
            logger.warning(
                "turnout: cannot write the spend ledger %s (%s); %d rows are kept in memory and retried",
                self.path,
                exc,
                rows,
            )

    def _trim(self) -> None:
        excess = len(self.pending) - MAX_PENDING
        if excess > 0:
            del self.pending[:excess]
            self.done += excess
            logger.warning(
                "turnout: the spend ledger %s is still not writable; dropped the %d oldest unwritten rows "
                "(at most %d are kept in memory)",
                self.path,
                excess,
                MAX_PENDING,
            )


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` on Linux (which stops at 19); elsewhere do nothing.

    Other systems' ``setpriority`` takes a process, not a thread: there the writer keeps its priority.
    """
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + nice)
    except OSError:  # a sandbox that refuses it (seccomp): the writer keeps its priority
        pass


_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()
_abandoned: list[sqlite3.Connection] = []  # a forked child's copies of its parent's connections, never used
_mp_finalizer_pid = 0


def _drain_all() -> None:
    """At interpreter or worker exit: write what every ledger still holds."""
    for writer in list(_WRITERS):
        left = writer.flush(EXIT_WAIT, stop=True)
        if left:
            logger.warning("turnout: %d rows of the spend ledger %s could not be written", left, writer.path)


def _on_worker_exit() -> None:
    """In a ``multiprocessing`` child (which ends with ``os._exit``, skipping atexit): drain at its exit."""
    global _mp_finalizer_pid
    if _mp_finalizer_pid == os.getpid() or "multiprocessing" not in sys.modules:
        return
    import multiprocessing
    import multiprocessing.util

    if multiprocessing.parent_process() is not None:
        _mp_finalizer_pid = os.getpid()
        multiprocessing.util.Finalize(None, _drain_all, exitpriority=100)


def _after_fork_in_child() -> None:
    global _mp_finalizer_pid
    _mp_finalizer_pid = 0
    for writer in list(_WRITERS):
        if writer.db is not None:
            _abandoned.append(writer.db)  # closing it here could checkpoint the parent's WAL
        writer._reset()


atexit.register(_drain_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
