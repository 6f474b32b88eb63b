"""Bulk work: many chat requests along a route, at most ``concurrency`` in flight, results as they finish.

The files are those of OpenAI's Batch API (https://platform.openai.com/docs/guides/batch and
https://platform.openai.com/docs/api-reference/batch/request-input): one JSON object a line.

- Input: ``{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``,
  or the short form ``{"custom_id": "r1", "messages": [...], "max_tokens": 64, ...}``.
- Output: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``
  (https://platform.openai.com/docs/api-reference/batch/request-output), ``body`` a chat
  completion, plus turnout's own fields under ``"turnout"`` (target, attempts, cost).

`Client.batch` and `AsyncClient.batch` run requests and yield `BatchResult` objects;
``turnout batch`` (`turnout._batch_cli`) adds the files, resuming, the budget and a progress bar.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AllTargetsFailedError, BudgetExceededError, InvalidArgumentError, ProviderError, TurnoutError
from .types import answering_attempt

if TYPE_CHECKING:
    from ._client_base import BaseClient
    from .client import AsyncClient, Client
    from .types import ChatResponse

__all__ = [
    "BatchRequest",
    "BatchResult",
    "Estimate",
    "Finished",
    "RequestInput",
    "arun",
    "completion_body",
    "estimate",
    "read_finished",
    "read_requests",
    "run",
]

CHAT_PATH = "/v1/chat/completions"
_OPTIONS = frozenset(
    {
        *("temperature", "top_p", "max_tokens", "max_completion_tokens", "frequency_penalty", "presence_penalty"),
        *("logit_bias", "logprobs", "top_logprobs", "parallel_tool_calls", "reasoning_effort", "stop", "seed", "n"),
        *("response_format", "tools", "tool_choice", "user"),
    }
)
_IGNORED = frozenset({"custom_id", "messages", "model", "method", "url", "body"})


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch: its ``custom_id``, messages and chat options.

    ``model`` is the line's own (``body.model``), used when the run names none; ``line`` is
    its line number in the input file. Keys that are not chat options go in ``extra_body``.
    """

    custom_id: str
    messages: list[Any] | str
    options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    line: int | None = None

    @classmethod
    def from_json(cls, data: Any, line: int | None = None) -> BatchRequest:
        """Read one line's object, in the Batch API shape or the short form.

        Raises:
            InvalidArgumentError: it is neither (the message says what is wrong).
        """
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"a request is a JSON object, not {type(data).__name__}")
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise InvalidArgumentError('"custom_id" is missing (each request needs a unique string id)')
        body: Mapping[str, Any] = data
        if "body" in data:
            body = data["body"]
            if not isinstance(body, Mapping):
                raise InvalidArgumentError('"body" must be a JSON object (the chat completion request)')
            url = data.get("url", CHAT_PATH)
            if url != CHAT_PATH:
                raise InvalidArgumentError(f'"url" is {url!r}; turnout batch runs {CHAT_PATH!r} requests')
        messages = body.get("messages")
        if not isinstance(messages, list | str) or not messages:
            raise InvalidArgumentError(
                '"messages" is missing or empty (a list of {"role", "content"} objects, or one string)'
            )
        if body.get("stream"):
            raise InvalidArgumentError('"stream": true is not for batches (each result is written whole)')
        model = body.get("model")
        options = {k: v for k, v in body.items() if k in _OPTIONS}
        extra = {k: v for k, v in body.items() if k not in _OPTIONS and k not in _IGNORED and k != "stream"}
        if extra:
            options["extra_body"] = extra
        return cls(custom_id, messages, options, model if isinstance(model, str) else None, line)


RequestInput = BatchRequest | Mapping[str, Any]
"""A request as `Client.batch` takes it: a `BatchRequest`, or its JSON object."""


@dataclass(frozen=True)
class BatchResult:
    """One request's outcome: ``response`` on success, else ``error``."""

    custom_id: str
    response: ChatResponse | None = None
    error: TurnoutError | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the request got a reply."""
        return self.response is not None

    @property
    def cost(self) -> Decimal | None:
        """What the request cost (None when unknown or nothing was paid)."""
        if self.response is None or self.response.cost is None:
            return None
        return Decimal(self.response.cost.total)

    def to_json(self, batch_cost: Decimal | None = None) -> dict[str, Any]:
        """The result as a line of the OpenAI Batch output file, with turnout's fields under ``"turnout"``."""
        attempts = self.response.attempts if self.response is not None else getattr(self.error, "attempts", [])
        last = answering_attempt(attempts)  # not a hedge's loser, recorded after the reply
        cost = batch_cost if batch_cost is not None else self.cost
        extra: dict[str, Any] = {
            "target": None if last is None else f"{last.provider}:{last.model}",
            "attempts": len([a for a in attempts if not a.skipped]),
            "cost": None if cost is None else format(cost, "f"),
            "from_cache": bool(self.response is not None and self.response.from_cache),
        }
        line: dict[str, Any] = {"id": f"batch_req_{self.custom_id}", "custom_id": self.custom_id}
        if self.response is not None:
            request_id = self.response.request_id
            body = completion_body(self.response)
            line["response"] = {"status_code": 200, "request_id": request_id, "body": body}
            line["error"] = None
        else:
            line["response"] = _error_response(self.error)
            line["error"] = {"code": type(self.error).__name__, "message": str(self.error)}
        line["turnout"] = extra
        return line


def _error_response(error: TurnoutError | None) -> dict[str, Any] | None:
    """The failed request's HTTP answer, when a server gave one."""
    cause = error.exceptions[-1] if isinstance(error, AllTargetsFailedError) else error
    if not isinstance(cause, ProviderError) or cause.status_code is None:
        return None
    body = {"error": {"message": cause.message, "type": type(cause).__name__}}
    return {"status_code": cause.status_code, "request_id": cause.request_id, "body": body}


def completion_body(reply: ChatResponse) -> dict[str, Any]:
    """``reply`` as an OpenAI chat completion object (https://platform.openai.com/docs/api-reference/chat/object)."""
    choices = []
    for choice in reply.choices:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.text if choice.text or not choice.tool_calls else None,
        }
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in choice.tool_calls
            ]
        choices.append(
            {"index": choice.index, "message": message, "logprobs": None, "finish_reason": choice.finish_reason}
        )
    usage = reply.usage
    return {
        "id": reply.id or "chatcmpl-turnout",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


# -- files ----------------------------------------------------------------------------------------


def read_requests(path: str | os.PathLike[str]) -> tuple[list[BatchRequest], list[str]]:
    """The requests of a JSONL file, and one problem per bad line (``"line N: ..."``), which is skipped.

    A ``custom_id`` seen on an earlier line is a bad line too.

    Raises:
        FileNotFoundError: there is no such file.
    """
    requests: list[BatchRequest] = []
    problems: list[str] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                request = BatchRequest.from_json(json.loads(text), number)
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
                continue
            except InvalidArgumentError as exc:
                problems.append(f"line {number}: {exc}")
                continue
            if request.custom_id in seen:
                problems.append(f"line {number}: custom_id {request.custom_id!r} was already used on an earlier line")
                continue
            seen.add(request.custom_id)
            requests.append(request)
    return requests, problems


@dataclass
class Finished:
    """What an output file already holds: the ``custom_id`` of each line, what they cost, how many failed."""

    ids: set[str] = field(default_factory=set)
    spent: Decimal = Decimal(0)
    failed: int = 0


def read_finished(path: str | os.PathLike[str]) -> Finished:
    """Read an output file written by an earlier run, dropping a trailing partial line (a run killed mid-write).

    Returns an empty `Finished` when there is no file.
    """
    file = Path(path)
    found = Finished()
    if not file.exists():
        return found
    data = file.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the last line was cut: remove it, its request runs again
        with open(file, "r+b") as handle:
            handle.truncate(end)
    for text in data[:end].splitlines():
        if not text.strip():
            continue
        line = json.loads(text)
        found.ids.add(line["custom_id"])
        cost = (line.get("turnout") or {}).get("cost")
        if cost is not None:
            found.spent += Decimal(cost)
        if line.get("error") is not None:
            found.failed += 1
    return found


# -- running --------------------------------------------------------------------------------------


def _requests(requests: Iterable[RequestInput]) -> Iterator[BatchRequest]:
    for position, item in enumerate(requests):
        yield item if isinstance(item, BatchRequest) else BatchRequest.from_json(item, position + 1)


def _model(request: BatchRequest, model: str | None) -> str:
    chosen = model or request.model
    if not chosen:
        raise InvalidArgumentError(
            f'request {request.custom_id!r} names no model: give model=... (--model) or a "model" in its body'
        )
    return chosen


def _failed(request: BatchRequest, exc: TurnoutError) -> BatchResult:
    return BatchResult(request.custom_id, None, exc, request.line)


async def arun(
    client: AsyncClient, requests: Iterable[RequestInput], *, model: str | None = None, concurrency: int = 8
) -> AsyncIterator[BatchResult]:
    """Run each request along the route, at most ``concurrency`` at once; yield results as they finish.

    A request refused by a budget (`BudgetExceededError`) is yielded with that error, and no new
    request starts after it: those in flight finish, the rest are not sent (nor yielded).
    """
    if concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be at least 1, not {concurrency}")
    pending = _requests(requests)
    running: set[asyncio.Task[BatchResult]] = set()
    stopped = False

    async def one(request: BatchRequest) -> BatchResult:
        try:
            reply = await client.chat(_model(request, model), request.messages, **request.options)
        except TurnoutError as exc:
            return _failed(request, exc)
        return BatchResult(request.custom_id, reply, None, request.line)

    try:
        while True:
            while not stopped and len(running) < concurrency:
                request = next(pending, None)
                if request is None:
                    break
                running.add(asyncio.ensure_future(one(request)))
            if not running:
                return
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result = task.result()
                stopped = stopped or isinstance(result.error, BudgetExceededError)
                yield result
    finally:
        for task in running:
            task.cancel()


def run(
    client: Client, requests: Iterable[RequestInput], *, model: str | None = None, concurrency: int = 8
) -> Iterator[BatchResult]:
    """`arun` for the blocking client: ``concurrency`` worker threads share its connection pool."""
    if concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be at least 1, not {concurrency}")
    pending = _requests(requests)

    def one(request: BatchRequest) -> BatchResult:
        try:
            reply = client.chat(_model(request, model), request.messages, **request.options)
        except TurnoutError as exc:
            return _failed(request, exc)
        return BatchResult(request.custom_id, reply, None, request.line)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="turnout-batch")
    running: set[Future[BatchResult]] = set()
    stopped = False
    try:
        while True:
            while not stopped and len(running) < concurrency:
                request = next(pending, None)
                if request is None:
                    break
                running.add(pool.submit(one, request))
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                stopped = stopped or isinstance(result.error, BudgetExceededError)
                yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- estimates ------------------------------------------------------------------------------------


@dataclass
class Estimate:
    """The cost range of a batch, offline: the cheapest target at its low bound, the dearest at its worst case.

    ``high`` is None when some request cannot be bounded (no ``max_tokens``, or a target without a
    price); ``unbounded`` counts them.
    """

    requests: int = 0
    low: Decimal = Decimal(0)
    high: Decimal | None = Decimal(0)
    unbounded: int = 0


def estimate(
    client: BaseClient, requests: Iterable[BatchRequest], model: str | None, rate: Decimal = Decimal(1)
) -> Estimate:
    """The cost range of ``requests`` on their routes (no network I/O), each bound times ``rate``.

    A request that cannot be planned (no model, a bad option) counts as unbounded.
    """
    from .cost.estimate import heuristic_tokens, worst_case

    found = Estimate()
    for request in requests:
        found.requests += 1
        try:
            chat = client._request(request.messages, dict(request.options))
            targets, _ = client._route(_model(request, model))
        except TurnoutError:  # it fails when it runs, and says why there
            found.unbounded += 1
            found.high = None
            continue
        guess, _ = heuristic_tokens(chat)
        lows = [client._pricing.bounds(p, m, guess, 0)[0] for p, m in targets]
        found.low += min((c.total for c in lows if c is not None), default=Decimal(0)) * rate
        try:
            high = worst_case(client._pricing, targets, chat) * rate
        except ValueError:
            found.unbounded += 1
            found.high = None
            continue
        if found.high is not None:
            found.high += high
    return found
