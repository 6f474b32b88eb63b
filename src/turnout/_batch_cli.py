"""``turnout batch``: a JSONL file of requests through a route, resumable, within a budget, with progress.

Each result is written as one whole line (one ``write`` of the line and its newline, on a file
opened for appending, unbuffered), so a run killed at any moment leaves whole lines, and at most a
cut last line, which the next run removes before it goes on. The next run with the same arguments
skips every ``custom_id`` already in the output and reads back what they cost, so ``--max-usd``
holds across restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .cost._usage_cli import wants_rich
from .errors import BudgetExceededError, TurnoutError

if TYPE_CHECKING:
    from .batch import BatchRequest, BatchResult, Estimate

__all__ = ["add_parser", "batch"]

EXIT_FAILED = 1
EXIT_BUDGET = 3


def add_parser(commands: Any) -> None:
    """Register ``turnout batch`` on the ``turnout`` command's subparsers."""
    batch = commands.add_parser(
        "batch",
        help="run a JSONL file of chat requests (OpenAI Batch API format): resumable, budgeted",
        description="Run every request of INPUT along a route and write one result line per custom_id to "
        "OUTPUT. Run it again with the same arguments after a crash: it goes on where it stopped.",
    )
    batch.add_argument("input", help="the requests: one JSON object a line (Batch API shape or short form)")
    batch.add_argument("-o", "--output", required=True, help="the results file (appended to; read back on resume)")
    batch.add_argument("--model", help="alias or target for every request (default: each request's body.model)")
    batch.add_argument("--config", help="config file (default: ./turnout.toml or $TURNOUT_CONFIG)")
    batch.add_argument("--concurrency", type=int, default=16, help="requests in flight at most (default 16)")
    batch.add_argument("--max-usd", type=_usd, help="stop before the run's spend (all runs on OUTPUT) passes this")
    batch.add_argument("--dry-run", action="store_true", help="print the estimated cost and stop")
    batch.add_argument(
        "--provider-batch",
        action="store_true",
        help="send the file to the provider's Batch API (OpenAI) at its discount",
    )
    batch.add_argument("--poll", type=float, default=30.0, help="with --provider-batch: seconds between status checks")
    form = batch.add_mutually_exclusive_group()
    form.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    form.add_argument("--rich", action="store_true", help="a progress bar even when not on a terminal")


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount of dollars (e.g. 20 or 0.50)") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give a positive amount of dollars")
    return amount


def _money(amount: Decimal | None) -> str:
    return "unbounded" if amount is None else f"${amount:.6f}"


def batch(args: argparse.Namespace) -> int:
    """Run ``turnout batch``; return the exit status (0: every request answered)."""
    from .batch import read_finished, read_requests

    if args.concurrency < 1:
        raise TurnoutError(f"--concurrency must be at least 1, not {args.concurrency}")
    try:
        requests, problems = read_requests(args.input)
    except FileNotFoundError:
        raise TurnoutError(f"no input file {args.input}") from None
    for problem in problems:
        print(f"turnout batch: {args.input} {problem}; skipped", file=sys.stderr)
    finished = read_finished(args.output)
    todo = [r for r in requests if r.custom_id not in finished.ids]
    if args.provider_batch:
        from ._provider_batch import provider_batch

        return provider_batch(args, todo, finished, problems)
    return asyncio.run(_run(args, todo, finished.spent, finished.failed, len(requests), len(problems)))


def _client(args: argparse.Namespace, spent: Decimal) -> Any:
    from .client import AsyncClient
    from .cost.budgets import Budget

    budget = None if args.max_usd is None else Budget(max_usd=max(args.max_usd - spent, Decimal(0)))
    return AsyncClient(config=args.config, budget=budget)


def print_estimate(found: Estimate, done: int, spent: Decimal, max_usd: Decimal | None) -> None:
    """The line printed before anything is sent."""
    unbounded = f" ({found.unbounded} without max_tokens or a price)" if found.unbounded else ""
    print(
        f"turnout batch: {found.requests} requests to send ({done} already in the output); "
        f"estimated {_money(found.low)} to {_money(found.high)}{unbounded}",
        file=sys.stderr,
    )
    if max_usd is not None:
        print(f"turnout batch: budget {_money(max_usd)}, spent so far {_money(spent)}", file=sys.stderr)


async def _run(
    args: argparse.Namespace, todo: list[BatchRequest], spent: Decimal, failed_before: int, total: int, bad: int
) -> int:
    from .batch import arun, estimate

    async with _client(args, spent) as client:
        found = estimate(client, todo, args.model)
        print_estimate(found, total - len(todo), spent, args.max_usd)
        if args.dry_run:
            return 0
        progress = Progress(len(todo), wants_rich(args, sys.stderr))
        refused = 0
        with open(args.output, "ab", buffering=0) as out, progress:
            async for result in arun(client, todo, model=args.model, concurrency=args.concurrency):
                if isinstance(result.error, BudgetExceededError):
                    refused += 1  # not written: a later run with a larger budget sends it
                    continue
                write_line(out, result)
                progress.update(result)
        spent += progress.spent
    left = len(todo) - progress.done - progress.failed
    return summary(progress, failed_before, bad, left if refused else 0, spent, args.max_usd)


def write_line(out: Any, result: BatchResult, batch_cost: Decimal | None = None) -> None:
    """Append one result as one whole line, in one unbuffered write."""
    data = json.dumps(result.to_json(batch_cost), ensure_ascii=False, separators=(",", ":")) + "\n"
    out.write(data.encode())


def summary(
    progress: Progress, failed_before: int, bad: int, refused: int, spent: Decimal, max_usd: Decimal | None
) -> int:
    """Print the run's outcome; return the exit status."""
    failed = progress.failed + failed_before
    parts = [f"{progress.done} answered", f"{progress.failed} failed"]
    if failed_before:
        parts.append(f"{failed_before} failed in earlier runs")
    if bad:
        parts.append(f"{bad} bad input lines skipped")
    print(f"turnout batch: {', '.join(parts)}; spent {_money(spent)} in all", file=sys.stderr)
    if refused:
        print(
            f"turnout batch: stopped by --max-usd {_money(max_usd)}: {refused} requests not sent; "
            "rerun with a larger --max-usd to send them",
            file=sys.stderr,
        )
        return EXIT_BUDGET
    return EXIT_FAILED if failed or bad else 0


class Progress:
    """Done and failed counts, rate, ETA and dollars: a rich bar on a terminal, else a line every 2 s."""

    PLAIN_EVERY = 2.0

    def __init__(self, total: int, rich: bool) -> None:
        self.total, self.done, self.failed, self.spent = total, 0, 0, Decimal(0)
        self._started = self._said = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if rich:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}  {task.fields[rate]}/s  ${task.fields[usd]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True, force_terminal=True),
                transient=False,
            )
            self._task = self._bar.add_task("batch", total=total, failed=0, rate="0.0", usd="0")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.total:
            self._line()

    def update(self, result: BatchResult) -> None:
        """Count one written result."""
        if result.ok:
            self.done += 1
        else:
            self.failed += 1
        self.spent += result.cost or 0
        if self._bar is not None:
            fields = {"failed": self.failed, "rate": f"{self._rate():.1f}", "usd": f"{self.spent:.6f}"}
            self._bar.update(self._task, completed=self.done + self.failed, **fields)
        elif time.monotonic() - self._said >= self.PLAIN_EVERY:
            self._line()

    def _rate(self) -> float:
        return (self.done + self.failed) / max(time.monotonic() - self._started, 1e-9)

    def _line(self) -> None:
        self._said = time.monotonic()
        count = self.done + self.failed
        rate = self._rate()
        eta = (self.total - count) / rate if rate > 0 else float("inf")
        print(
            f"batch: {count}/{self.total} ({self.done} ok, {self.failed} failed), {rate:.1f}/s, "
            f"ETA {eta:.0f}s, ${self.spent:.6f}",
            file=sys.stderr,
            flush=True,
        )
