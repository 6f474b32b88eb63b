"""``turnout usage``: the spend ledger's totals as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

from .errors import TurnoutError
from .ledger import Total, ledger_path, totals

__all__ = ["format_table", "usage"]

_HEADERS = ("day", "provider", "model", "calls", "failed", "prompt", "completion", "cost_usd", "unpriced")


def _path(args: argparse.Namespace) -> Path:
    if args.ledger:
        return Path(args.ledger)
    ledger_config = None
    if args.config:
        from .config import load_config

        ledger_config = load_config(args.config).ledger
    found = ledger_path(ledger_config)
    if found is None:
        raise TurnoutError("the spend ledger is off ([ledger] enabled = false or TURNOUT_LEDGER=off)")
    return found


def _row(total: Total) -> list[str]:
    fields = asdict(total)
    return [format(v, "f") if k == "cost" else str(v) for k, v in fields.items()]


def _total_row(rows: list[Total]) -> list[str]:
    return [
        "total",
        "",
        "",
        *(str(sum(getattr(t, n) for t in rows)) for n in ("calls", "failed", "prompt_tokens", "completion_tokens")),
        format(sum((t.cost for t in rows), Decimal(0)), "f"),
        str(sum(t.unpriced for t in rows)),
    ]


def format_table(rows: list[Total]) -> str:
    """Plain-text columns with a total line; costs in full, exact digits."""
    table = [list(_HEADERS), *(_row(t) for t in rows), _total_row(rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(_HEADERS))]
    lines = [
        "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def usage(args: argparse.Namespace) -> int:
    """Print the ledger's totals by day, provider and model; return the exit status."""
    path = _path(args)
    try:
        rows = totals(path, args.since)
    except FileNotFoundError as exc:
        raise TurnoutError(f"{exc}: no call has been recorded yet (or pass --ledger FILE)") from None
    if args.json:
        print(json.dumps([{**asdict(t), "cost": format(t.cost, "f")} for t in rows], indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(_HEADERS)
        writer.writerows(_row(t) for t in rows)
    elif not rows:
        print(f"{path}: no calls recorded")
    elif _wants_rich(args):
        print_rich_table(rows)
    else:
        print(format_table(rows))
    return 0


def _wants_rich(args: argparse.Namespace) -> bool:
    """A rich table on a terminal when `rich` is installed (``turnout[cli]``), or when asked for."""
    if args.plain:
        return False
    if not (args.rich or sys.stdout.isatty()):
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        if args.rich:
            raise TurnoutError("--rich needs the rich package: pip install 'turnout[cli]'") from None
        return False
    return True


def print_rich_table(rows: list[Total]) -> None:
    """The totals as a rich table (exact costs, a total row)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="turnout spend", show_footer=True)
    footer = _total_row(rows)
    for index, header in enumerate(_HEADERS):
        table.add_column(header, footer=footer[index], justify="right" if index >= 3 else "left")
    for total in rows:
        table.add_row(*_row(total))
    Console(width=200).print(table)
