"""``turnout usage``: the spend ledger's totals as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from ..errors import TurnoutError
from .spend_ledger import Total, ledger_path, totals

__all__ = ["format_table", "usage"]

_METRICS = ("calls", "failed", "prompt", "completion", "cost_usd", "unpriced", "cache_hits", "saved_usd")
_JSON_METRICS = (  # `Total`'s names
    *("calls", "failed", "prompt_tokens", "completion_tokens", "cost", "unpriced", "cache_hits", "saved"),
)
_DEFAULT_BY = ("day", "provider", "model")


def _path(args: argparse.Namespace) -> Path | str:
    """The ledger the app uses: --ledger, else $TURNOUT_LEDGER, else the config's [ledger], else the default."""
    from ._ledger_pg import is_url

    if args.ledger:
        return args.ledger if is_url(args.ledger) else Path(args.ledger).expanduser()
    ledger_config = None
    if not os.environ.get("TURNOUT_LEDGER"):
        from ..config import find_config_file, load_config

        config_file = args.config or find_config_file()
        if config_file is not None:
            ledger_config = load_config(config_file).ledger
    found = ledger_path(ledger_config)
    if found is None:
        raise TurnoutError("the spend ledger is off ([ledger] enabled = false or TURNOUT_LEDGER=off)")
    return found


def _row(total: Total, by: tuple[str, ...] = _DEFAULT_BY) -> list[str]:
    metrics = (total.calls, total.failed, total.prompt_tokens, total.completion_tokens)
    return [
        *(str(total.get(key)) for key in by),
        *(str(m) for m in metrics),
        format(total.cost, "f"),
        str(total.unpriced),
        str(total.cache_hits),
        format(total.saved, "f"),
    ]


def _total_row(rows: list[Total], by: tuple[str, ...] = _DEFAULT_BY) -> list[str]:
    return [
        "total",
        *([""] * (len(by) - 1)),
        *(str(sum(getattr(t, n) for t in rows)) for n in ("calls", "failed", "prompt_tokens", "completion_tokens")),
        format(sum((t.cost for t in rows), Decimal(0)), "f"),
        str(sum(t.unpriced for t in rows)),
        str(sum(t.cache_hits for t in rows)),
        format(sum((t.saved for t in rows), Decimal(0)), "f"),
    ]


def format_table(rows: list[Total], by: tuple[str, ...] = _DEFAULT_BY) -> str:
    """Plain-text columns with a total line; costs in full, exact digits."""
    headers = [*by, *_METRICS]
    table = [headers, *(_row(t, by) for t in rows), _total_row(rows, by)]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(w) if i >= len(by) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def usage(args: argparse.Namespace) -> int:
    """Print the ledger's totals by day, provider and model (or ``--by``); return the exit status."""
    path = _path(args)
    by = tuple(args.by)
    try:
        rows = totals(path, args.since, args.until, by=by)
    except FileNotFoundError as exc:
        raise TurnoutError(f"{exc}: no call has been recorded yet (or pass --ledger FILE)") from None
    if args.json:
        print(json.dumps([dict(zip([*by, *_JSON_METRICS], _json_row(t, by), strict=True)) for t in rows], indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*by, *_METRICS])
        writer.writerows(_row(t, by) for t in rows)
    elif not rows:
        print(f"{path}: no calls recorded")
    elif wants_rich(args):
        print_rich_table(rows, by)
    else:
        print(format_table(rows, by))
    return 0


def _json_row(total: Total, by: tuple[str, ...]) -> list[object]:
    metrics = (total.calls, total.failed, total.prompt_tokens, total.completion_tokens)
    return [
        *(total.get(key) for key in by),
        *metrics,
        format(total.cost, "f"),
        total.unpriced,
        total.cache_hits,
        format(total.saved, "f"),
    ]


def wants_rich(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """Rich output on ``stream`` when it is a terminal and `rich` is installed (``turnout[cli]``), or asked for.

    Raises:
        TurnoutError: ``--rich`` without the rich package.
    """
    if args.plain:
        return False
    if not (args.rich or (stream or sys.stdout).isatty()):  # stdout as it is now, not at import
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        if args.rich:
            raise TurnoutError("--rich needs the rich package: pip install 'turnout[cli]'") from None
        return False
    return True


def print_rich_table(rows: list[Total], by: tuple[str, ...] = _DEFAULT_BY) -> None:
    """The totals as a rich table (exact costs, a total row)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="turnout spend", show_footer=True)
    footer = _total_row(rows, by)
    for index, header in enumerate([*by, *_METRICS]):
        table.add_column(header, footer=footer[index], justify="right" if index >= len(by) else "left")
    for total in rows:
        table.add_row(*_row(total, by))
    Console(width=200).print(table)
