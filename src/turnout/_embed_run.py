"""Running an embeddings call along its route: the sync loop and its async twin.

The route's decisions (circuit gates, retries, fallback, what to raise) are `Call`'s, as for
chat. What differs: one call may need several requests (batches), all sent to the same target;
a target that fails on any batch is given up as a whole and the next one starts from the first
batch. The async loop sends up to `CONCURRENCY` batches at once; the sync loop sends them in order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from ._routing import Call, RouteState, Target, _label
from .embeddings import EmbeddingRequest, EmbeddingResponse, combine, split
from .errors import ProviderError, ResponseValidationError, TurnoutError

if TYPE_CHECKING:
    from .policies.route import RoutePolicy
    from .provider import Provider
    from .types import ChatRequest

__all__ = ["CONCURRENCY", "EmbedCall", "aembed", "embed"]

#: The most batches the async client has in flight at once.
CONCURRENCY = 4


class EmbedCall(Call):
    """A `Call` whose request is an `EmbeddingRequest`, split into batches.

    `Call`'s chat-only parts (the context pre-check, hedging) are not used; the budget hold and
    the request sent on each attempt are computed from the texts here.
    """

    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        request: EmbeddingRequest,
        targets: list[Target],
        state: RouteState,
        batch_size: int | None = None,
    ) -> None:
        # Call only stores the request; every method of Call that reads it is replaced here.
        super().__init__(route, policy, cast("ChatRequest", request), targets, state)
        self.embedding = request
        self.batch_size = batch_size

    def batches(self, provider: Provider) -> list[EmbeddingRequest]:
        """The request split for ``provider`` (``batch_size``, else the provider's own limit)."""
        return split(self.embedding, self.batch_size or provider.embed_batch_size)

    def reserve(self) -> None:
        """Hold the most the texts could cost (tokens never outnumber UTF-8 bytes) against the budgets."""
        budgets = self.state.budgets
        if budgets is None or not budgets.applies(self.route):
            return
        ceiling = sum(len(text.encode()) + 1 for text in self.embedding.input)
        highs = []
        for provider, model in self.targets:
            _, high = self.state.pricing.bounds(provider, model, ceiling, 0)
            if high is None:
                raise budgets.unbounded(self.route, f"no price is known for {_label(provider, model)}; add [prices]")
            highs.append(high.total)
        self._reservation = budgets.reserve(self.route, max(highs))

    def done(self, provider: Provider, model: str, parts: list[EmbeddingResponse]) -> EmbeddingResponse:
        """The whole reply: batches joined, priced once on the summed usage, attempts filled in."""
        joined = combine(parts, provider.name, model)
        usage = joined.usage
        priced = usage if usage.completion_tokens is not None else usage.model_copy(update={"completion_tokens": 0})
        cost = self.state.pricing.cost(provider, model, priced) if usage.prompt_tokens is not None else None
        if self._reservation is not None:
            self._reservation.commit(None if cost is None else cost.total)
        return joined.model_copy(update={"cost": cost, "attempts": list(self.attempts)})


def embed(call: EmbedCall) -> EmbeddingResponse:
    """Reserve the budget, embed every batch on the first target that can, then settle.

    Raises:
        BudgetExceededError: before anything is sent, when the call could overspend a budget.
    """
    call.reserve()
    response = error = None
    try:
        while True:
            try:
                response = _route(call)
                return response
            except TurnoutError:
                wait = call.recovery_wait()
                if wait is None:
                    raise
                call.clock.sleep(wait)
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.finish(response, error)


async def aembed(call: EmbedCall) -> EmbeddingResponse:
    """Async twin of `embed` (batches sent concurrently, at most `CONCURRENCY` at a time)."""
    call.reserve()
    response = error = None
    try:
        while True:
            try:
                response = await _aroute(call)
                return response
            except TurnoutError:
                wait = call.recovery_wait()
                if wait is None:
                    raise
                await call.clock.asleep(wait)
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.finish(response, error)


def _failed(call: EmbedCall, provider: Provider, model: str, exc: ProviderError, position: int, blocked: bool) -> None:
    """Decide after a target failed: return to try the next one, or raise."""
    more = position < len(call.targets) - 1
    error = call.skipped(provider, model, exc, more) if blocked else call.target_failed(exc, more)
    if error is None:
        return
    if error is exc:
        raise exc
    raise error from None


def _route(call: EmbedCall) -> EmbeddingResponse:
    for position, (provider, model) in enumerate(call.targets):
        blocked = call.gate(provider, model)
        try:
            if blocked is not None:
                raise blocked
            parts = [_send(call, provider, model, batch) for batch in call.batches(provider)]
            return call.done(provider, model, parts)
        except ProviderError as exc:
            _failed(call, provider, model, exc, position, exc is blocked)
    raise AssertionError("unreachable: a route has at least one target")


async def _aroute(call: EmbedCall) -> EmbeddingResponse:
    for position, (provider, model) in enumerate(call.targets):
        blocked = call.gate(provider, model)
        try:
            if blocked is not None:
                raise blocked
            parts = await _asend_all(call, provider, model, call.batches(provider))
            return call.done(provider, model, parts)
        except ProviderError as exc:
            _failed(call, provider, model, exc, position, exc is blocked)
    raise AssertionError("unreachable: a route has at least one target")


def _send(call: EmbedCall, provider: Provider, model: str, batch: EmbeddingRequest) -> EmbeddingResponse:
    retries = None
    while True:
        started = call.clock.now()
        try:
            response = provider.embed(model, call.in_time(batch))
            _check_count(provider, model, batch, response)
        except ProviderError as exc:
            call.attempt_failed(provider, model, exc, started)
            retries = retries or call.retries(provider, model)
            call.clock.sleep(retries.after(exc))  # re-raises exc when no retry is due
            continue
        call.record_success(provider, model, started)
        return response


async def _asend(call: EmbedCall, provider: Provider, model: str, batch: EmbeddingRequest) -> EmbeddingResponse:
    retries = None
    while True:
        started = call.clock.now()
        try:
            response = await provider.aembed(model, call.in_time(batch))
            _check_count(provider, model, batch, response)
        except ProviderError as exc:
            call.attempt_failed(provider, model, exc, started)
            retries = retries or call.retries(provider, model)
            await call.clock.asleep(retries.after(exc))
            continue
        call.record_success(provider, model, started)
        return response


async def _asend_all(
    call: EmbedCall, provider: Provider, model: str, batches: list[EmbeddingRequest]
) -> list[EmbeddingResponse]:
    """Every batch's reply, in order; the first failure cancels the batches still in flight."""
    if len(batches) == 1:
        return [await _asend(call, provider, model, batches[0])]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(batch: EmbeddingRequest) -> EmbeddingResponse:
        async with limit:
            return await _asend(call, provider, model, batch)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(batch)) for batch in batches]
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


def _check_count(provider: Provider, model: str, batch: EmbeddingRequest, response: EmbeddingResponse) -> None:
    if len(response.vectors) != len(batch.input):
        raise ResponseValidationError(
            f"sent {len(batch.input)} inputs but got {len(response.vectors)} vectors back",
            provider=provider.name,
            model=model,
        )
