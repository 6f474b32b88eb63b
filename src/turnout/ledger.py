"""The spend ledger: one SQLite row per call, and the totals ``turnout usage`` prints.

Every call (success or failure) is appended with its time, alias, provider, model, tokens,
exact cost (as text, so no float rounding), latency, outcome and number of attempts. The file is
``$TURNOUT_LEDGER`` if set, else ``[ledger] path``, else ``turnout/ledger.sqlite3`` under the
user's data directory. ``[ledger] enabled = false`` (or ``TURNOUT_LEDGER=off``) turns it off. A
ledger that cannot be written logs a warning and never fails the call.

Rows are written in batches (one transaction per ``_BATCH`` rows or ``_FLUSH_AFTER`` seconds,
and always when the client closes or the interpreter exits), which keeps the ledger's cost per
call to a few microseconds; a process killed outright can lose the rows of its last half second.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .embeddings import EmbeddingResponse
    from .types import Attempt, ChatResponse, Cost, Usage

__all__ = ["Entry", "Ledger", "LedgerConfig", "Total", "default_ledger_path", "ledger_path", "totals"]

logger = logging.getLogger("turnout")

_ENV = "TURNOUT_LEDGER"
_BATCH = 64
_FLUSH_AFTER = 0.5
_OFF = frozenset({"off", "0", "false", "no"})
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    ts TEXT NOT NULL, alias TEXT NOT NULL, provider TEXT, model TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER,
    cost TEXT, cost_source TEXT, latency REAL NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL
)
"""
_COLUMNS = (
    "ts, alias, provider, model, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, "
    "cost, cost_source, latency, outcome, attempts"
)


class LedgerConfig(BaseModel):
    """``[ledger]`` in turnout.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="append every call to the ledger")
    path: str | None = Field(default=None, description="the SQLite file (default: under the user's data dir)")


def default_ledger_path() -> Path:
    """``turnout/ledger.sqlite3`` in the user's data directory (XDG, macOS or Windows convention)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "turnout" / "ledger.sqlite3"


def ledger_path(config: LedgerConfig | None) -> Path | None:
    """The ledger file to use, or None when the ledger is off.

    ``$TURNOUT_LEDGER`` wins (a path, or ``off``); then ``[ledger]``; then the default path.
    """
    env = os.environ.get(_ENV)
    if env:
        return None if env.lower() in _OFF else Path(env)
    if config is not None and not config.enabled:
        return None
    return Path(config.path) if config is not None and config.path else default_ledger_path()


@dataclass(frozen=True)
class Entry:
    """One call, as the ledger records it."""

    alias: str
    provider: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost: Decimal | None
    cost_source: str | None
    latency: float
    outcome: str
    attempts: int
    ts: datetime | None = None


def _row(
    route: str,
    attempts: list[Attempt],
    response: ChatResponse | EmbeddingResponse | None,
    error: BaseException | None,
    latency: float,
    paid: tuple[Usage, Cost | None] | None,
) -> tuple[object, ...]:
    """A call's row as it waits to be written: the time as a POSIX timestamp, the cost as a Decimal."""
    last = attempts[-1] if attempts else None
    provider, model = (last.provider, last.model) if last else (None, None)
    if response is not None:
        usage, cost, outcome = response.usage, response.cost, "ok"
    else:
        outcome = type(error).__name__ if error is not None else "closed"
        if paid is None:
            nothing = (None,) * 6  # tokens and cost
            return (time.time(), route, provider, model, *nothing, latency, outcome, len(attempts))
        usage, cost = paid  # failed, but replies were received (and paid for) before it did
    return (
        *(time.time(), route, provider, model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens),
        *(usage.reasoning_tokens, None if cost is None else cost.total, None if cost is None else cost.source),
        *(latency, outcome, len(attempts)),
    )


def _stored(row: tuple[object, ...]) -> tuple[object, ...]:
    """A pending row as SQLite stores it: ISO time to the millisecond, the exact cost as text."""
    ts, *middle, cost, source, latency, outcome, attempts = row
    when = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")  # type: ignore[arg-type]
    return (when, *middle, None if cost is None else str(cost), source, latency, outcome, attempts)


class _Sink:
    """The SQLite file and the rows waiting for it (what the exit-time finalizer flushes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.pending: list[tuple[object, ...]] = []
        self.flushed_at = time.monotonic()
        self.broken = False

    def flush(self) -> None:
        rows, self.pending, self.flushed_at = self.pending, [], time.monotonic()
        if not rows or self.broken:
            return
        try:
            if self.db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)  # the Ledger's lock serializes
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")  # with WAL: no fsync per commit, still crash-safe
                db.execute(_SCHEMA)
                self.db = db
            with self.db:  # one transaction per batch
                self.db.executemany(
                    f"INSERT INTO calls ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", [_stored(row) for row in rows]
                )
        except (sqlite3.Error, OSError) as exc:
            self.broken = True
            logger.warning("turnout: cannot write the spend ledger %s (%s); calls are not recorded", self.path, exc)

    def close(self) -> None:
        self.flush()
        if self.db is not None:
            self.db.close()
            self.db = None


class Ledger:
    """Appends entries to one SQLite file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Use (and create on the first write) the ledger at ``path``."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._sink = _Sink(self.path)
        weakref.finalize(self, self._sink.close)  # at exit, or when the ledger is collected

    def append(self, entry: Entry) -> None:
        """Record one call (written within ``_FLUSH_AFTER`` s); a failure to write is logged once, never raised."""
        ts = (entry.ts or datetime.now(UTC)).timestamp()
        self._add(
            (
                *(ts, entry.alias, entry.provider, entry.model, entry.prompt_tokens, entry.completion_tokens),
                *(entry.cached_tokens, entry.reasoning_tokens, entry.cost, entry.cost_source, entry.latency),
                *(entry.outcome, entry.attempts),
            )
        )

    def record(
        self,
        route: str,
        attempts: list[Attempt],
        response: ChatResponse | EmbeddingResponse | None,
        error: BaseException | None,
        latency: float,
        *,
        paid: tuple[Usage, Cost | None] | None = None,
    ) -> None:
        """Record a call that ended with ``response`` (or ``error``) after ``attempts``.

        ``paid``: for a failed call, the tokens and cost of the replies it received and rejected.
        """
        self._add(_row(route, attempts, response, error, latency, paid))

    def _add(self, row: tuple[object, ...]) -> None:
        with self._lock:
            sink = self._sink
            if sink.broken:
                return
            sink.pending.append(row)
            if len(sink.pending) >= _BATCH or time.monotonic() - sink.flushed_at >= _FLUSH_AFTER:
                sink.flush()

    def flush(self) -> None:
        """Write the rows not yet written."""
        with self._lock:
            self._sink.flush()

    def close(self) -> None:
        """Write what is pending and close the file (a later append opens it again)."""
        with self._lock:
            self._sink.close()


@dataclass(frozen=True)
class Total:
    """Totals of one day, provider and model."""

    day: str
    provider: str
    model: str
    calls: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    unpriced: int


def totals(path: str | os.PathLike[str], since: str | None = None) -> list[Total]:
    """Sum the ledger by UTC day, provider and model (costs summed exactly, as ``Decimal``).

    Args:
        path: the ledger file.
        since: only days on or after this ``YYYY-MM-DD``.

    Raises:
        FileNotFoundError: there is no ledger at ``path``.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no spend ledger at {path}")
    query = "SELECT substr(ts, 1, 10), provider, model, prompt_tokens, completion_tokens, cost, outcome FROM calls"
    with closing(sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True)) as db:
        rows = db.execute(query + (" WHERE ts >= ?" if since else ""), (since,) if since else ()).fetchall()
    return _sum(rows)


def _sum(rows: Iterable[tuple[str, str | None, str | None, int | None, int | None, str | None, str]]) -> list[Total]:
    groups: dict[tuple[str, str, str], list[int | Decimal]] = {}
    for day, provider, model, prompt, completion, cost, outcome in rows:
        key = (day, provider or "-", model or "-")
        acc = groups.setdefault(key, [0, 0, 0, 0, Decimal(0), 0])
        acc[0] += 1
        acc[1] += outcome != "ok"
        acc[2] += prompt or 0
        acc[3] += completion or 0
        if cost is not None:
            acc[4] += Decimal(cost)
        elif outcome == "ok":
            acc[5] += 1
    return [
        Total(d, p, m, int(a[0]), int(a[1]), int(a[2]), int(a[3]), Decimal(a[4]), int(a[5]))
        for (d, p, m), a in sorted(groups.items())
    ]
