"""Send every prompt to every model, streamed, and collect the samples: `compare` and `acompare`.

The models run one after another (so each one's throughput is measured alone, at
``concurrency`` requests in flight); a model's requests run concurrently. Every request goes
through the client's routes and policies: retries, fallback, budgets, the ledger (whose rows
are labelled with the run's id, see `turnout.cost.spend_ledger.ledger_labels`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cost.spend_ledger import ledger_labels
from ..errors import BudgetExceededError, InvalidArgumentError, TurnoutError
from ..types import ChatResponse
from ._prompts import PromptItem, load_prompts
from ._result import CompareResult, JudgeSummary, ModelResult, Sample, summarise
from ._score import judge_messages, judge_verdict, score_answer

if TYPE_CHECKING:
    from ..client import AsyncClient, Client

__all__ = ["Progress", "acompare", "compare"]

#: Enough for a CORRECT/INCORRECT verdict.
_JUDGE_MAX_TOKENS = 8


@dataclass(frozen=True)
class Progress:
    """Where a comparison stands, passed to ``progress=`` after each request."""

    model: str
    done: int
    total: int
    samples: Sequence[Sample]
    elapsed: float


@dataclass
class _Plan:
    """One comparison's fixed inputs (checked once)."""

    items: list[PromptItem]
    models: list[str]
    repeat: int
    concurrency: int
    judge: str | None
    options: dict[str, Any]
    progress: Callable[[Progress], None] | None
    result_id: str

    def work(self) -> list[PromptItem]:
        return [item for _ in range(self.repeat) for item in self.items]

    def tags(self, model: str, role: str) -> dict[str, str]:
        return {"compare": self.result_id, "model": model, "role": role}


@dataclass
class _Judged:
    """The judge's requests so far."""

    requests: int = 0
    errors: int = 0
    unclear: int = 0
    replies: list[ChatResponse] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the sync driver's worker threads

    def summary(self, model: str) -> JudgeSummary:
        replies = self.replies
        prompt = [r.usage.prompt_tokens for r in replies]
        completion = [r.usage.completion_tokens for r in replies]
        costs = [r.cost for r in replies]
        return JudgeSummary(
            model=model,
            requests=self.requests,
            errors=self.errors,
            unclear=self.unclear,
            prompt_tokens=None if None in prompt else sum(p for p in prompt if p is not None),
            completion_tokens=None if None in completion else sum(c for c in completion if c is not None),
            cost=None if any(c is None for c in costs) else sum((c.total for c in costs if c is not None), Decimal(0)),
        )


def _plan(
    client: Client | AsyncClient,
    prompts: Sequence[PromptItem] | str | Path,
    models: Sequence[str],
    repeat: int,
    concurrency: int,
    judge: str | None,
    options: dict[str, Any],
    progress: Callable[[Progress], None] | None,
) -> _Plan:
    items = load_prompts(prompts) if isinstance(prompts, str | Path) else list(prompts)
    if not items:
        raise InvalidArgumentError("no prompts to compare: give at least one line")
    if isinstance(models, str) or not models or len(set(models)) != len(models):
        raise InvalidArgumentError(
            'models must be a list of distinct aliases or targets, e.g. ["gpt35", "local:llama"]'
        )
    if repeat < 1 or concurrency < 1:
        raise InvalidArgumentError(f"repeat and concurrency must be at least 1 (got {repeat} and {concurrency})")
    for model in [*models, *([judge] if judge else [])]:
        client.targets(model)  # a model that cannot be routed fails before anything is sent
    options = {k: v for k, v in options.items() if v is not None}
    started = datetime.now(UTC)
    return _Plan(items, list(models), repeat, concurrency, judge, options, progress, _run_id(started))


def _run_id(started: datetime) -> str:
    import uuid

    return f"compare-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _answered(item: PromptItem, reply: ChatResponse, start: float, first: float | None, end: float) -> Sample:
    last = reply.attempts[-1] if reply.attempts else None
    return Sample(
        id=item.id,
        ok=True,
        target=f"{last.provider}:{last.model}" if last else f"{reply.provider}:{reply.model}",
        answer=reply.text,
        score=score_answer(item, reply.text),
        latency=end - start,
        ttft=None if first is None else first - start,
        prompt_tokens=reply.usage.prompt_tokens,
        completion_tokens=reply.usage.completion_tokens,
        cost=None if reply.cost is None else reply.cost.total,
    )


def _failed(item: PromptItem, exc: TurnoutError, start: float) -> Sample:
    return Sample(id=item.id, ok=False, latency=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")


def _needs_judge(plan: _Plan, item: PromptItem, sample: Sample) -> bool:
    return plan.judge is not None and sample.ok and item.expected is not None and item.choices is None


def _graded(sample: Sample, reply: ChatResponse | None, judged: _Judged) -> Sample:
    verdict = None if reply is None else judge_verdict(reply.text)
    with judged.lock:
        judged.requests += 1
        if reply is None:
            judged.errors += 1
        else:
            judged.replies.append(reply)
            judged.unclear += verdict is None
    return sample.model_copy(update={"score": verdict})


def _result(plan: _Plan, started: datetime, results: list[ModelResult], judged: _Judged) -> CompareResult:
    return CompareResult(
        run_id=plan.result_id,
        started_at=started,
        prompts=len(plan.items),
        repeat=plan.repeat,
        concurrency=plan.concurrency,
        models=results,
        judge=None if plan.judge is None else judged.summary(plan.judge),
    )


# --- async ----------------------------------------------------------------------------------------


async def _astream(client: AsyncClient, plan: _Plan, model: str, item: PromptItem, judged: _Judged) -> Sample:
    start, first = time.perf_counter(), None
    with ledger_labels(plan.result_id, plan.tags(model, "candidate")):
        try:
            async with client.stream(model, item.chat_messages(), **plan.options) as stream:
                async for chunk in stream:
                    if first is None and chunk.text:
                        first = time.perf_counter()
                sample = _answered(item, stream.response, start, first, time.perf_counter())
        except TurnoutError as exc:
            return _failed(item, exc, start)
    if not _needs_judge(plan, item, sample):
        return sample
    assert plan.judge is not None
    with ledger_labels(plan.result_id, plan.tags(model, "judge")):
        try:
            reply = await client.chat(
                plan.judge, judge_messages(item, sample.answer or ""), max_tokens=_JUDGE_MAX_TOKENS, temperature=0
            )
        except TurnoutError:
            reply = None
    return _graded(sample, reply, judged)


async def _amodel(client: AsyncClient, plan: _Plan, model: str, judged: _Judged) -> ModelResult:
    work = plan.work()
    samples: list[Sample | None] = [None] * len(work)
    pending: Iterator[int] = iter(range(len(work)))
    done: list[Sample] = []  # in the order they finished
    stop = False
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal stop
        for index in pending:
            if stop:
                return
            sample = await _astream(client, plan, model, work[index], judged)
            samples[index] = sample
            done.append(sample)
            stop = stop or (sample.error or "").startswith(BudgetExceededError.__name__)
            if plan.progress is not None:
                plan.progress(Progress(model, len(done), len(work), done, time.perf_counter() - start))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(plan.concurrency, len(work))):
            group.create_task(worker())
    sent = [s for s in samples if s is not None]
    return summarise(model, sent, time.perf_counter() - start, client.config.prices, len(work) - len(sent))


async def acompare(
    client: AsyncClient,
    prompts: Sequence[PromptItem] | str | Path,
    *,
    models: Sequence[str],
    repeat: int = 1,
    concurrency: int = 8,
    judge: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> CompareResult:
    """Async twin of `compare`: the requests of a model run as up to ``concurrency`` tasks."""
    plan = _plan(client, prompts, models, repeat, concurrency, judge, _options(max_tokens, temperature), progress)
    started, judged = datetime.now(UTC), _Judged()
    results = [await _amodel(client, plan, model, judged) for model in plan.models]
    return _result(plan, started, results, judged)


# --- sync -----------------------------------------------------------------------------------------


def _stream(client: Client, plan: _Plan, model: str, item: PromptItem, judged: _Judged) -> Sample:
    start, first = time.perf_counter(), None
    with ledger_labels(plan.result_id, plan.tags(model, "candidate")):
        try:
            with client.stream(model, item.chat_messages(), **plan.options) as stream:
                for chunk in stream:
                    if first is None and chunk.text:
                        first = time.perf_counter()
                sample = _answered(item, stream.response, start, first, time.perf_counter())
        except TurnoutError as exc:
            return _failed(item, exc, start)
    if not _needs_judge(plan, item, sample):
        return sample
    assert plan.judge is not None
    with ledger_labels(plan.result_id, plan.tags(model, "judge")):
        try:
            reply = client.chat(
                plan.judge, judge_messages(item, sample.answer or ""), max_tokens=_JUDGE_MAX_TOKENS, temperature=0
            )
        except TurnoutError:
            reply = None
    return _graded(sample, reply, judged)


def _model(client: Client, plan: _Plan, model: str, judged: _Judged, pool: ThreadPoolExecutor) -> ModelResult:
    work = plan.work()
    samples: list[Sample | None] = [None] * len(work)
    lock, stop = threading.Lock(), threading.Event()
    done: list[Sample] = []  # in the order they finished
    start = time.perf_counter()

    def one(index: int) -> None:
        if stop.is_set():
            return
        sample = _stream(client, plan, model, work[index], judged)
        with lock:
            samples[index] = sample
            done.append(sample)
            if (sample.error or "").startswith(BudgetExceededError.__name__):
                stop.set()
            if plan.progress is not None:
                plan.progress(Progress(model, len(done), len(work), done, time.perf_counter() - start))

    for future in [pool.submit(one, i) for i in range(len(work))]:
        future.result()
    sent = [s for s in samples if s is not None]
    return summarise(model, sent, time.perf_counter() - start, client.config.prices, len(work) - len(sent))


def compare(
    client: Client,
    prompts: Sequence[PromptItem] | str | Path,
    *,
    models: Sequence[str],
    repeat: int = 1,
    concurrency: int = 8,
    judge: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> CompareResult:
    """Compare models on your prompts: score, latency, throughput and exact cost, side by side.

    Every prompt is streamed to every model (``repeat`` times), ``concurrency`` requests at a
    time, one model after another, through ``client``'s routes, retries and budgets.

    Example:
        ```python
        result = turnout.compare(client, "prompts.jsonl", models=["gpt35", "llama2-13b"])
        for m in result.models:
            print(m.model, m.score, m.latency_p50, m.cost_per_1k)
        ```

    Args:
        client: the client whose routes, policies and budgets the requests use.
        prompts: `PromptItem` values, or the path of a JSON-lines prompt file.
        models: aliases or ``"provider:model"`` targets.
        repeat: how many times each prompt is sent to each model.
        concurrency: requests in flight at once, per model (the throughput is measured at it).
        judge: a model that grades free-form answers (lines with ``expected`` and no ``choices``);
            without it those are scored by normalised exact match.
        max_tokens: the completion limit of each request.
        temperature: the sampling temperature of each request.
        progress: called after each request (from a worker thread; keep it quick).

    Returns:
        A `CompareResult`: one `ModelResult` per model, in ``models`` order.

    Raises:
        InvalidArgumentError: the prompts or the arguments are invalid (nothing was sent).
        ConfigError: a model cannot be routed.
    """
    plan = _plan(client, prompts, models, repeat, concurrency, judge, _options(max_tokens, temperature), progress)
    started, judged = datetime.now(UTC), _Judged()
    with ThreadPoolExecutor(plan.concurrency, thread_name_prefix="turnout-compare") as pool:
        results = [_model(client, plan, model, judged, pool) for model in plan.models]
    return _result(plan, started, results, judged)


def _options(max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "temperature": temperature}
