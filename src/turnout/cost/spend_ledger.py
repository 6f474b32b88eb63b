"""The spend ledger: one SQLite row per call, and the totals ``turnout usage`` prints.

Every call (success or failure) is appended with its time, alias, provider, model, tokens,
exact cost (as text, so no float rounding), latency, outcome and number of attempts. The file is
``$TURNOUT_LEDGER`` if set, else ``[ledger] path``, else ``turnout/ledger.sqlite3`` under the
user's data directory. ``[ledger] enabled = false`` (or ``TURNOUT_LEDGER=off``) turns it off. A
ledger that cannot be written logs a warning and never fails or slows the call.

A call only queues its row; a background thread writes it within half a second (see
`turnout.cost._ledger_writer`), and the rest is written when the client closes, at interpreter exit
and when a ``multiprocessing`` worker exits. The schema is versioned (``PRAGMA user_version``) and
migrated in place when a ledger is opened for writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import sys
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._lazy import lazy
from ..errors import InvalidArgumentError
from ..types import answering_attempt
from ._ledger_writer import CLOSE_WAIT, Writer, iso_time, queued

if TYPE_CHECKING:
    from ..embeddings import EmbeddingResponse
    from ..events import CallFinished
    from ..types import Attempt, ChatResponse, Cost, Usage
    from ._ledger_rows import Entry, Total

__all__ = [
    "GROUP_KEYS",
    "Entry",
    "Ledger",
    "LedgerConfig",
    "Total",
    "default_ledger_path",
    "ledger_labels",
    "ledger_path",
    "parse_bound",
    "totals",
]

_ENV = "TURNOUT_LEDGER"
#: The ``run_id`` and ``tags`` that rows recorded in this context get (set by `ledger_labels`).
_LABELS: ContextVar[tuple[str | None, Mapping[str, Any] | None]] = ContextVar("turnout_ledger", default=(None, None))
_OFF = frozenset({"off", "0", "false", "no"})
GroupKey = Literal["day", "alias", "provider", "model"]
GROUP_KEYS: tuple[GroupKey, ...] = ("day", "alias", "provider", "model")
"""What `totals` can group by."""


class LedgerConfig(BaseModel):
    """``[ledger]`` in turnout.toml."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="append every call to the ledger")
    path: str | None = Field(
        default=None,
        description="the SQLite file; relative to the config file's folder, ~ expands (default: the user's data dir)",
    )
    url: str | None = Field(
        default=None,
        description='PostgreSQL instead of SQLite, e.g. "postgresql://user:pass@host/db" (needs turnout[postgres])',
    )
    spool: str | None = Field(
        default=None,
        description="with url: the SQLite file rows wait in while PostgreSQL is unreachable (default: by the ledger)",
    )
    replay_interval: float = Field(
        default=30.0,
        gt=0,
        description="with url: seconds between background tries to replay the spool while it holds rows",
    )

    def relative_to(self, folder: str | os.PathLike[str]) -> LedgerConfig:
        """This config with ``path`` made absolute: ``~`` expanded, a relative path joined to ``folder``.

        `turnout.config.load_config` calls it with the config file's folder.
        """
        if self.path is None:
            return self
        path = Path(self.path).expanduser()
        return self.model_copy(update={"path": str(path if path.is_absolute() else Path(folder).absolute() / path)})


def default_ledger_path() -> Path:
    """``turnout/ledger.sqlite3`` in the user's data directory (XDG, macOS or Windows convention)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "turnout" / "ledger.sqlite3"


@contextmanager
def ledger_labels(run_id: str | None, tags: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Label the ledger rows of the calls made inside the block (in this thread or task) with ``run_id`` and ``tags``.

    The calls' events are published where they are made, so a row written by a call in the
    block gets the labels. A call's own ``tags=`` (or `Ledger.record`'s ``run_id``/``tags``) win
    where given, each on its own: a tagged call in the block keeps the block's run id.

    Example:
        ```python
        with ledger_labels("nightly-eval-7", {"suite": "mmlu-like"}):
            client.chat("fast", "Hi")
        ```
    """
    token = _LABELS.set((run_id, tags))
    try:
        yield
    finally:
        _LABELS.reset(token)


def ledger_path(config: LedgerConfig | None) -> Path | str | None:
    """The ledger to use: a file, a PostgreSQL URL (a ``str``), or None when the ledger is off.

    ``$TURNOUT_LEDGER`` wins (a path, a ``postgresql://`` URL, or ``off``); then ``[ledger] url``;
    then ``[ledger] path``; then the default path. ``~`` expands; a relative ``[ledger] path``
    read from a file was already joined to the file's folder.
    """
    env = os.environ.get(_ENV)
    if env:
        if env.lower() in _OFF:
            return None
        return env if is_url(env) else Path(env).expanduser()
    if config is not None and not config.enabled:
        return None
    if config is not None and config.url:
        return config.url
    return Path(config.path).expanduser() if config is not None and config.path else default_ledger_path()


def _labels(run_id: str | None, tags: Mapping[str, Any] | None) -> tuple[str | None, Mapping[str, Any] | None]:
    """The run id and tags of a row: each one given, else `ledger_labels`' (the call's tags replace its tags)."""
    outer_run, outer_tags = _LABELS.get()
    return (outer_run if run_id is None else run_id), (outer_tags if tags is None else tags)


def _row(
    ts: str,
    route: str,
    attempts: list[Attempt],
    response: ChatResponse | EmbeddingResponse | None,
    error: BaseException | None,
    latency: float,
    paid: tuple[Usage, Cost | None] | None,
    labels: tuple[bool, bool, Mapping[str, Any] | None, str | None, str | None, Decimal | None] | None,
) -> tuple[object, ...]:
    """A call's row as it is queued (`turnout.cost._ledger_writer.PLAIN`): values SQLite binds as they are.

    ``ts``: when the call ended (`iso_time`). ``labels`` are the row's last
    columns, when any is set: estimated, cache_hit, tags, run_id, call_id and saved; estimated is
    also set when the cost or usage says ``estimated``.
    """
    last = answering_attempt(attempts)  # not a hedge's loser, recorded after the reply
    provider, model = (last.provider, last.model) if last else (None, None)
    if response is not None:
        usage, cost, outcome = response.usage, response.cost, "ok"
    else:
        outcome = type(error).__name__ if error is not None else "closed"
        if paid is None:
            unpaid = queued(
                ts, route, provider, model, None, None, None, None, None, None, latency, outcome, len(attempts)
            )
            return _labelled(unpaid, labels)
        usage, cost = paid  # failed, but replies were received (and paid for) before it did
    if getattr(cost, "estimated", False) or getattr(usage, "estimated", False):
        labels = (True, *labels[1:]) if labels else (True, False, None, None, None, None)
    row = queued(
        ts,
        route,
        provider,
        model,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
        None if cost is None else str(cost.total),
        None if cost is None else cost.source,
        latency,
        outcome,
        len(attempts),
    )
    return row if labels is None else _labelled(row, labels)


def _labelled(
    row: tuple[object, ...],
    labels: tuple[bool, bool, Mapping[str, Any] | None, str | None, str | None, Decimal | None] | None,
) -> tuple[object, ...]:
    """``row`` with its labels' columns, when any is set (as SQLite binds them: 0/1, JSON text, exact text)."""
    if labels is None or labels == _NO_LABELS:
        return row
    estimated, cache_hit, tags, run_id, call_id, saved = labels
    text = None if tags is None else json.dumps(dict(tags), sort_keys=True, default=str)
    return (*row, int(estimated), int(cache_hit), text, run_id, call_id, None if saved is None else str(saved))


_NO_LABELS = (False, False, None, None, None, None)


def is_url(value: str) -> bool:
    """Whether a ledger setting is a PostgreSQL URL (else a file path); the PostgreSQL code loads only then."""
    return value.startswith(("postgresql://", "postgres://"))


class Ledger:
    """Appends entries to one SQLite file; safe to share between threads, and across ``fork``.

    Appending only queues the row; a background thread writes it within half a second.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        spool: str | os.PathLike[str] | None = None,
        replay_interval: float = 30.0,
    ) -> None:
        """Use (and create on the first write) the ledger at ``path``: a file, or a ``postgresql://`` URL.

        ``spool``: for a URL, the SQLite file rows wait in while PostgreSQL is unreachable
        (default: ``ledger-spool.sqlite3`` beside the default ledger); the background writer
        tries to replay it every ``replay_interval`` seconds while it holds rows.
        """
        self._writer: Writer
        if isinstance(path, str) and is_url(path):
            from ._ledger_pg import PostgresWriter

            where = Path(spool).expanduser() if spool else default_ledger_path().with_name("ledger-spool.sqlite3")
            self._writer = PostgresWriter(path, where, replay_interval)
        else:
            self._writer = Writer(Path(path))
        self.path = self._writer.path
        weakref.finalize(self, self._writer.flush, CLOSE_WAIT, stop=True)  # when collected or at exit: as close()

    def append(self, entry: Entry) -> None:
        """Record one call (written within half a second); a failure to write is logged, never raised."""
        ms = round((entry.ts or datetime.now(UTC)).timestamp() * 1e6) // 1000  # the microsecond, then its ms
        row = queued(
            iso_time(ms),
            entry.alias,
            entry.provider,
            entry.model,
            entry.prompt_tokens,
            entry.completion_tokens,
            entry.cached_tokens,
            entry.reasoning_tokens,
            None if entry.cost is None else str(entry.cost),
            entry.cost_source,
            entry.latency,
            entry.outcome,
            entry.attempts,
        )
        labels = (entry.estimated, entry.cache_hit, entry.tags, entry.run_id, entry.call_id, entry.saved)
        self._writer.add(_labelled(row, labels))

    def record(
        self,
        route: str,
        attempts: list[Attempt],
        response: ChatResponse | EmbeddingResponse | None,
        error: BaseException | None,
        latency: float,
        *,
        paid: tuple[Usage, Cost | None] | None = None,
        estimated: bool = False,
        cache_hit: bool = False,
        tags: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        call_id: str | None = None,
        saved: Decimal | None = None,
    ) -> None:
        """Record a call that ended with ``response`` (or ``error``) after ``attempts``.

        Args:
            route: the model argument (an alias, or ``provider:model``).
            attempts: the attempts made; the one that answered (else the last) names the provider and model.
            response: the reply, or None when the call failed.
            error: what ended a failed call.
            latency: seconds the call took.
            paid: for a failed call, the tokens and cost of the replies it received and rejected.
            estimated: the usage or cost was estimated rather than reported (also true when the
                cost or usage says ``estimated``).
            cache_hit: the reply came from a cache.
            tags: the caller's labels, stored as JSON.
            run_id: the run the call belongs to.
            call_id: the call's own id.
            saved: for a cache hit, what the reply cost when it was stored.
        """
        run_id, tags = _labels(run_id, tags)  # each one given wins over `ledger_labels`'
        labels = (estimated, cache_hit, tags, run_id, call_id, saved)
        ts = iso_time(time.time_ns() // 1_000_000)
        self._writer.add(_row(ts, route, attempts, response, error, latency, paid, labels))

    def call_finished(self, event: CallFinished) -> None:
        """The `CallFinished` subscriber: one row per call (a failed call keeps what it paid for)."""
        response, saved = event.response, event.saved
        run_id, tags = _labels(None, event.tags)
        paid = None if response is not None or event.usage is None else (event.usage, event.cost)
        labels: tuple[bool, bool, Mapping[str, Any] | None, str | None, str | None, Decimal | None] | None
        if saved is None and not getattr(response, "from_cache", False):
            labels = None if run_id is None and tags is None else (False, False, tags, run_id, None, None)
        else:
            labels = (False, True, tags, run_id, None, None if saved is None else saved.total)
        ts = iso_time(time.time_ns() // 1_000_000)
        self._writer.add(_row(ts, event.route, event.attempts, response, event.error, event.latency, paid, labels))

    def flush(self, timeout: float = CLOSE_WAIT) -> bool:
        """Write the rows not yet written, waiting up to ``timeout`` seconds; return whether all were."""
        return self._writer.flush(timeout) == 0

    def close(self) -> None:
        """Write what is pending and close the file (a later append opens it again).

        Waits at most a couple of seconds for a locked database; rows still unwritten then stay
        queued, and the background thread writes them when it can (or at exit).
        """
        self._writer.flush(CLOSE_WAIT, stop=True)
        replay = getattr(self._writer, "replay", None)
        if replay is not None:  # PostgreSQL: send what an earlier outage left in the spool, if it is back
            with contextlib.suppress(Exception):
                replay()

    async def aclose(self) -> None:
        """`close` on a worker thread, so a locked database never blocks the event loop."""
        import asyncio

        await asyncio.to_thread(self.close)


_DATE = r"\d{4}-\d{2}-\d{2}"  # compiled on first use (re's cache): a call never needs them
_DATETIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*"


def parse_bound(value: str, *, end: bool = False) -> str:
    """Turn a ``--since``/``--until`` value into the ISO text the ledger's times compare with.

    Args:
        value: ``YYYY-MM-DD`` (a UTC day) or a full ISO 8601 datetime (UTC unless it has an offset).
        end: the bound is an end: a day then includes all of it (the result is the next day, exclusive).

    Raises:
        InvalidArgumentError: ``value`` is neither.
    """
    try:
        if re.fullmatch(_DATE, value):
            day = date.fromisoformat(value)
            return (day + timedelta(days=1)).isoformat() if end else day.isoformat()
        if re.fullmatch(_DATETIME, value):
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            return (when + timedelta(milliseconds=1) if end else when).isoformat(timespec="milliseconds")
    except ValueError:
        pass
    raise InvalidArgumentError(
        f"{value!r} is not a date: give YYYY-MM-DD (e.g. 2026-12-05) or an ISO datetime (e.g. 2026-12-05T14:30:00Z)"
    )


def totals(
    path: str | os.PathLike[str],  # or a postgresql:// URL
    since: str | None = None,
    until: str | None = None,
    *,
    by: Sequence[str] = ("day", "provider", "model"),
) -> list[Total]:
    """Sum the ledger by group (costs summed exactly, as ``Decimal``), sorted by group.

    Args:
        path: the ledger file.
        since: only calls on or after this ``YYYY-MM-DD`` (UTC day) or ISO datetime.
        until: only calls on or before this day (all of it) or ISO datetime.
        by: the keys to group by, from `GROUP_KEYS` (``"day"`` is the UTC day), or
            ``"tag:NAME"``: the value of the call's tag ``NAME`` (``"-"`` without it).

    Raises:
        FileNotFoundError: there is no ledger at ``path``.
        InvalidArgumentError: ``since``/``until`` is not a date, ``by`` names an unknown key,
            or the file is not a turnout spend ledger.
    """
    unknown = [key for key in by if key not in GROUP_KEYS and not is_tag_key(key)]
    if unknown or not by:
        raise InvalidArgumentError(
            f"cannot group by {unknown or 'nothing'}: use some of {', '.join(GROUP_KEYS)}, or tag:NAME"
        )
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(parse_bound(since))
    if until is not None:
        where.append("ts < ?")
        params.append(parse_bound(until, end=True))
    query = "SELECT substr(ts, 1, 10), alias, provider, model, prompt_tokens, completion_tokens, cost, outcome, tags"
    condition = (" WHERE " + " AND ".join(where)) if where else ""
    from ._ledger_pg import pg_rows

    if isinstance(path, str) and is_url(path):  # written at the latest schema version
        return _sum(pg_rows(path, query + ", cache_hit, saved FROM calls" + condition, params), tuple(by))
    if not Path(path).is_file():
        raise FileNotFoundError(f"no spend ledger at {path}")
    try:
        with closing(sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True)) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
            query += ", cache_hit" if "cache_hit" in columns else ", 0"  # older ledgers: no cache columns yet
            query += ", saved" if "saved" in columns else ", NULL"
            query += " FROM calls" + condition
            rows = db.execute(query, params).fetchall()
    except sqlite3.DatabaseError as exc:
        raise InvalidArgumentError(f"{path} is not a turnout spend ledger ({exc})") from None
    return _sum(rows, tuple(by))


def is_tag_key(key: str) -> bool:
    """Whether a ``by`` key is ``tag:NAME``."""
    return key.startswith("tag:") and len(key) > len("tag:")


def _sum(
    rows: Iterable[
        tuple[str, str, str | None, str | None, int | None, int | None, str | None, str, str | None, int, str | None]
    ],
    by: tuple[str, ...],
) -> list[Total]:
    groups: dict[tuple[str, ...], list[int | Decimal]] = {}
    tagged = [key for key in by if is_tag_key(key)]
    for day, alias, provider, model, prompt, completion, cost, outcome, tags, hit, saved in rows:
        values = {"day": day, "alias": alias, "provider": provider or "-", "model": model or "-"}
        if tagged:
            labels = json.loads(tags) if tags else {}
            values |= {key: str(labels.get(key[len("tag:") :], "-")) for key in tagged}
        acc = groups.setdefault(tuple(values[k] for k in by), [0, 0, 0, 0, Decimal(0), 0, 0, Decimal(0)])
        if hit:
            acc[6] += 1
            acc[7] += Decimal(saved or 0)
        acc[0] += 1
        acc[1] += outcome != "ok"
        acc[2] += prompt or 0
        acc[3] += completion or 0
        if cost is not None:
            acc[4] += Decimal(cost)
        elif outcome == "ok":
            acc[5] += 1
    from ._ledger_rows import Total

    result = []
    for key, a in sorted(groups.items()):
        named = dict.fromkeys(GROUP_KEYS, "*") | dict(zip(by, key, strict=True))
        result.append(
            Total(
                *(named["day"], named["provider"], named["model"], int(a[0]), int(a[1]), int(a[2]), int(a[3])),
                *(Decimal(a[4]), int(a[5]), named["alias"], int(a[6]), Decimal(a[7])),
                tuple((k, named[k]) for k in tagged),
            )
        )
    return result


# `Entry` and `Total`, the rows read back, load on first use (writing a row needs neither).
__getattr__ = lazy(__name__, dict.fromkeys(("Entry", "Total"), "turnout.cost._ledger_rows"))
