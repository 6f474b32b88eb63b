"""The spend ledger on PostgreSQL (``[ledger] url``): the same rows, a spool for when it is down.

The rows are the SQLite ledger's, written by the same background `Writer` thread (a call only
queues its row). Each row carries a ``call_id`` (a UUID made when it is queued) with a unique
index, and every insert is ``ON CONFLICT (call_id) DO NOTHING``
(https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT), so a row written
twice is stored once. When PostgreSQL cannot be reached, the batch goes to a local SQLite
spool (at most ``MAX_SPOOL`` rows; the oldest beyond that are dropped with a warning); the
next write that reaches PostgreSQL (or `Ledger.close`) first replays the spool, oldest first;
while the spool holds rows, the idle writer thread also tries to replay it every
``replay_interval`` seconds (``[ledger] replay_interval``, default `REPLAY_INTERVAL`), so spooled
rows arrive without a new call.
The schema is created and migrated by turnout itself (table ``turnout_schema``, the same
versions as the SQLite ``PRAGMA user_version``), under an advisory lock.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from .._secrets import mask_url
from ._ledger_writer import _COLUMNS, _TABLE_V0, MIGRATIONS, SCHEMA_VERSION, UNLABELLED, WIDTH, Writer, stored
from .spend_ledger import is_url  # where the ledger decides, without loading this module

__all__ = ["MAX_SPOOL", "REPLAY_INTERVAL", "PostgresWriter", "is_url", "pg_rows"]

logger = logging.getLogger("turnout")

MAX_SPOOL = 1_000_000
REPLAY_INTERVAL = 30.0
"""Seconds between background tries to replay a spool that holds rows (``[ledger] replay_interval``)."""
CONNECT_TIMEOUT = 2  # seconds (libpq's connect_timeout is whole seconds)
_LOCK_ID = 0x7475726E  # "turn": the advisory lock that serialises migrations
_CALL_ID = _COLUMNS.split(", ").index("call_id")  # the position of the idempotency key in a queued row
_INSERT = f"INSERT INTO calls ({_COLUMNS}) VALUES ({', '.join(['%s'] * WIDTH)}) ON CONFLICT (call_id) DO NOTHING"  # noqa: S608


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - import guard
        raise RuntimeError("a PostgreSQL ledger needs psycopg: pip install 'turnout[postgres]'") from None
    return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=False)


def migrate(db: Any) -> int:
    """Create or bring the ``calls`` table to `SCHEMA_VERSION` in one transaction; return the version."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        db.execute("CREATE TABLE IF NOT EXISTS turnout_schema (version INTEGER NOT NULL)")
        found = db.execute("SELECT version FROM turnout_schema").fetchone()
        version = 0 if found is None else int(found[0])
        if version >= SCHEMA_VERSION:
            return version
        if version == 0:
            db.execute(_TABLE_V0)
        for step in MIGRATIONS[version:]:
            for statement in step:
                db.execute(statement)
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS calls_call_id ON calls (call_id)")
        db.execute("DELETE FROM turnout_schema")
        db.execute("INSERT INTO turnout_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
    return SCHEMA_VERSION


def pg_rows(url: str, query: str, params: list[str]) -> list[tuple[Any, ...]]:
    """Run a read query (``?`` placeholders, as for SQLite) on the PostgreSQL ledger.

    Raises:
        TurnoutError: PostgreSQL cannot be reached or read (the URL's password masked).
    """
    from ..errors import TurnoutError

    try:
        with _connect(url) as db:
            return list(db.execute(query.replace("?", "%s"), params).fetchall())
    except Exception as exc:  # psycopg.Error, OSError
        raise TurnoutError(f"cannot read the spend ledger {mask_url(url)}: {type(exc).__name__}") from None


class PostgresWriter(Writer):
    """`Writer` for PostgreSQL: batches insert idempotently; a batch that cannot be sent is spooled."""

    def __init__(self, url: str, spool: Path, replay_interval: float = REPLAY_INTERVAL) -> None:
        """Write to ``url``; keep unsent rows in the SQLite file ``spool``, replayed every ``replay_interval`` s."""
        self.url, self.spool, self.replay_interval = url, spool, replay_interval
        super().__init__(spool)
        self.path = mask_url(url)  # type: ignore[assignment]  # names the ledger in messages, password masked
        self.pg: Any = None
        if spool.is_file():  # an earlier run may have left rows: replay them on the timer too
            self.idle_wait = replay_interval

    def _reset(self) -> None:
        super()._reset()
        if getattr(self, "spool", None) is not None and self.spool.is_file():  # a forked child: the timer too
            self.idle_wait = self.replay_interval

    def add(self, row: tuple[object, ...]) -> None:
        """Queue one row with all its columns (the labels' defaults where it has none) and a ``call_id``."""
        if len(row) < WIDTH:
            row = (*row, *UNLABELLED)
        if row[_CALL_ID] is None:
            row = (*row[:_CALL_ID], uuid.uuid4().hex, *row[_CALL_ID + 1 :])
        super().add(row)

    def _take(self) -> list[tuple[object, ...]] | None:
        rows = super()._take()
        if rows is None and self.pg is not None:  # the thread ends: close the connection too
            self.pg.close()
            self.pg = None
        return rows

    def _write(self, rows: list[tuple[object, ...]]) -> Any:
        every = [stored(row) for row in rows]  # PostgreSQL and the spool bind all the columns, the time as text
        try:
            self._send(every)
        except Exception as exc:  # psycopg.Error, OSError, or psycopg missing: spool the rows
            if self.pg is not None:
                self.pg.close()
                self.pg = None
            if not every:  # the timer's replay found PostgreSQL still down: try again later
                return None
            try:
                self._spool(every)
            except (sqlite3.Error, OSError) as spool_error:
                self._failed(spool_error, len(rows))  # the rows stay in memory and are retried
                return spool_error
            self.idle_wait = self.replay_interval  # replay them on the timer too, not only on the next write
            if self.failing is None:
                self.failing = str(exc)
                logger.warning(
                    "turnout: cannot reach the spend ledger %s (%s); rows are spooled to %s and replayed later",
                    self.path,
                    type(exc).__name__,
                    self.spool,
                )
            return None
        if self.failing is not None:
            self.failing = None
            logger.warning("turnout: the spend ledger %s is reachable again; spooled rows were replayed", self.path)
        return None

    def _send(self, stored: list[tuple[object, ...]]) -> None:
        if self.pg is None:
            self.pg = _connect(self.url)
            migrate(self.pg)
        self._replay(self.pg)
        self.idle_wait = None  # the spool is empty
        if stored:
            with self.pg.transaction(), self.pg.cursor() as cursor:
                cursor.executemany(_INSERT, stored)

    def replay(self) -> None:
        """Send the spooled rows (on a connection of its own), oldest first, and delete them from the spool."""
        if not self.spool.is_file():
            return
        with _connect(self.url) as db:
            migrate(db)
            self._replay(db)

    def _replay(self, db: Any) -> None:
        if not self.spool.is_file():
            return
        with closing(sqlite3.connect(self.spool, timeout=5, isolation_level=None)) as spool:
            _make_spool(spool)
            while True:
                found = spool.execute(f"SELECT rowid, {_COLUMNS} FROM calls ORDER BY rowid LIMIT 500").fetchall()  # noqa: S608
                if not found:
                    return
                with db.transaction(), db.cursor() as cursor:
                    cursor.executemany(_INSERT, [row[1:] for row in found])
                spool.execute("DELETE FROM calls WHERE rowid <= ?", (found[-1][0],))

    def _spool(self, stored: list[tuple[object, ...]]) -> None:
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.spool, timeout=5, isolation_level=None)) as spool:
            _make_spool(spool)
            spool.execute("BEGIN IMMEDIATE")
            spool.executemany(f"INSERT INTO calls ({_COLUMNS}) VALUES ({', '.join('?' * WIDTH)})", stored)  # noqa: S608
            excess = int(spool.execute("SELECT count(*) FROM calls").fetchone()[0]) - MAX_SPOOL
            if excess > 0:
                spool.execute(
                    "DELETE FROM calls WHERE rowid IN (SELECT rowid FROM calls ORDER BY rowid LIMIT ?)", (excess,)
                )
                logger.warning("turnout: the ledger spool %s is full; dropped its %d oldest rows", self.spool, excess)
            spool.execute("COMMIT")


def _make_spool(spool: sqlite3.Connection) -> None:
    from ._ledger_writer import migrate as migrate_sqlite

    migrate_sqlite(spool)
