"""``turnout compare``: the command line over `acompare` (a live table, ``--json``, ``--html``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError
from ..money import USD
from ._result import CompareResult, ModelResult, summarise

if TYPE_CHECKING:
    from ..config import Price
    from ._run import Progress

__all__ = ["add_parser", "format_table", "run", "table_rows"]

HEADERS = (
    "model",
    "requests",
    "errors",
    "score",
    "p50 s",
    "p95 s",
    "TTFT p50 s",
    "out tok/s",
    "prompt tok",
    "compl. tok",
    "cost $",
    "$ / 1k req",
    "$ / 1M req",
)
_REFRESH_S = 0.2
_MIN_WIDTH = 160


def add_parser(commands: Any, config_help: str) -> None:
    """Register ``compare`` on the ``turnout`` command's subparsers."""
    parser = commands.add_parser(
        "compare",
        help="quality, speed and cost of models on your prompts, side by side",
        description="Send every prompt of a JSON-lines file (or the shipped --sample) to each model, streamed, "
        "and report score, latency, throughput and exact cost per model (docs/compare.md).",
    )
    parser.add_argument(
        "prompts", nargs="?", help='JSON lines: {"id", "messages" or "prompt", "expected"?, "choices"?}'
    )
    parser.add_argument(
        "--sample", action="store_true", help="use the 50 multiple-choice questions shipped with turnout"
    )
    parser.add_argument(
        "--models", required=True, type=_models, help="comma-separated aliases or provider:model targets"
    )
    parser.add_argument("--repeat", type=int, default=1, help="send each prompt this many times (default 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per model (default 8)")
    parser.add_argument("--judge", metavar="MODEL", help="grade free-form answers with this model (cost kept apart)")
    parser.add_argument("--max-usd", type=_usd, metavar="N", help="stop sending once N dollars could be overspent")
    parser.add_argument("--max-tokens", type=int, default=None, help="completion limit per request")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (with every request)")
    parser.add_argument("--config", help=config_help)


def _models(value: str) -> list[str]:
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models or len(set(models)) != len(models):
        raise argparse.ArgumentTypeError(f"{value!r}: give distinct comma-separated models, e.g. gpt35,local:llama")
    return models


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount of dollars, e.g. 2.50") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give a non-negative amount of dollars")
    return amount


def run(args: argparse.Namespace) -> int:
    """Run ``turnout compare``; return the exit status."""
    from ._prompts import load_prompts, sample_prompts

    if (args.prompts is None) == (not args.sample):
        raise InvalidArgumentError("give a prompt file or --sample (one of them)")
    items = sample_prompts() if args.sample else load_prompts(args.prompts)
    if args.html:
        from ._report import check_plotly

        check_plotly()  # before spending anything
    result = asyncio.run(_compare(args, items))
    if args.json:
        print(result.to_json())
    else:
        print_table(result)
    if args.html:
        from ._report import write_html

        write_html(result, args.html)
        print(f"turnout: wrote {args.html}", file=sys.stderr)
    skipped = sum(m.skipped for m in result.models)
    if skipped:
        print(f"turnout: the --max-usd budget ran out: {skipped} requests were not sent", file=sys.stderr)
    return 0


async def _compare(args: argparse.Namespace, items: list[Any]) -> CompareResult:
    from ..client import AsyncClient
    from ..cost.budgets import Budget
    from ._run import acompare

    budget = None if args.max_usd is None else Budget(max_usd=args.max_usd)
    async with AsyncClient(config=args.config, budget=budget) as client:
        with _live(client.config.prices, len(args.models)) as progress:
            return await acompare(
                client,
                items,
                models=args.models,
                repeat=args.repeat,
                concurrency=args.concurrency,
                judge=args.judge,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                progress=progress,
            )


class _live:  # noqa: N801 - used as a context manager, like a function
    """A rich progress bar and table on a terminal's standard error while the comparison runs."""

    def __init__(self, prices: dict[str, Price], models: int) -> None:
        self._prices, self._models = prices, models
        self._live: Any = None
        self._done: dict[str, ModelResult] = {}
        self._last = 0.0

    def __enter__(self) -> Callable[[Progress], None] | None:
        if not sys.stderr.isatty():
            return None
        try:
            from rich.console import Console, Group
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            return None
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self._task = self._bar.add_task("comparing", total=None)
        self._group = Group
        self._live = Live(
            Group(self._bar), console=_console(Console, stderr=True), refresh_per_second=5, transient=True
        )
        self._live.__enter__()
        return self._update

    def _update(self, progress: Progress) -> None:
        now = time.monotonic()
        finished = progress.done == progress.total
        if not finished and now - self._last < _REFRESH_S:
            return
        self._last = now
        current = summarise(progress.model, progress.samples, progress.elapsed, self._prices)
        if finished:
            self._done[progress.model] = current
        rows = {**self._done, progress.model: current}
        self._bar.update(self._task, description=progress.model, completed=progress.done, total=progress.total)
        self._live.update(self._group(self._bar, rich_table(list(rows.values()))))

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)


def _console(console: Any, *, stderr: bool = False) -> Any:
    """A rich console at least `_MIN_WIDTH` wide: 13 columns do not fit 80 (as `turnout usage`)."""
    found = console(stderr=stderr)
    return found if found.width >= _MIN_WIDTH else console(stderr=stderr, width=_MIN_WIDTH)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _money(value: Decimal | None) -> str:
    return "unknown" if value is None else USD(value).display(6 if value >= 1 else 10)


def table_rows(models: list[ModelResult]) -> list[list[str]]:
    """Each model's row of the table, formatted for reading (``--json`` has the exact numbers)."""
    return [
        [
            m.model,
            str(m.requests),
            str(m.errors),
            "-" if m.score is None else f"{m.score:.3f}",
            _seconds(m.latency_p50),
            _seconds(m.latency_p95),
            _seconds(m.ttft_p50),
            "-" if m.output_tokens_per_second is None else f"{m.output_tokens_per_second:.1f}",
            "?" if m.prompt_tokens is None else str(m.prompt_tokens),
            "?" if m.completion_tokens is None else str(m.completion_tokens),
            _money(m.cost),
            _money(m.cost_per_1k),
            _money(m.cost_per_1m) + (" (GPU-h)" if m.cost_basis == "gpu-hour" else ""),
        ]
        for m in models
    ]


def format_table(result: CompareResult) -> str:
    """The result as plain-text columns (what a pipe or a file gets)."""
    rows = [list(HEADERS), *table_rows(result.models)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    if result.judge is not None:
        j = result.judge
        lines.append(
            f"judge {j.model}: {j.requests} requests, {j.errors} errors, {j.unclear} unclear, cost {_money(j.cost)}"
        )
    return "\n".join(lines)


def rich_table(models: list[ModelResult]) -> Any:
    """The models as a rich table."""
    from rich.table import Table

    table = Table(title="turnout compare")
    for index, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in table_rows(models):
        table.add_row(*row)
    return table


def print_table(result: CompareResult) -> None:
    """The final table: rich on a terminal (with ``turnout[cli]``), plain text otherwise."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console
        except ImportError:
            pass
        else:
            _console(Console).print(rich_table(result.models))
            if result.judge is not None:
                print(format_table(result).splitlines()[-1])
            return
    print(format_table(result))
