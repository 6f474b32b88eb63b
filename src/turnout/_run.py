"""Running a `Call` along its route: the sync loop and its async twin, side by side.

All decisions (gates, retries, fallback, what to raise) belong to `Call`; this module only
does the I/O in the order it says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._hedge import ahedge, hedge
from ._structured import OutputCheck
from .errors import ProviderError, TurnoutError

if TYPE_CHECKING:
    from ._routing import Call
    from .provider import Provider
    from .types import ChatResponse

__all__ = ["achat", "chat"]


def chat(call: Call) -> ChatResponse:
    """Reserve the call's budget, run it, then settle the budget and write the ledger.

    Raises:
        BudgetExceededError: before anything is sent, when the call could overspend a budget.
    """
    call.reserve()
    response = error = None
    try:
        response = _chat(call)
        return response
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.finish(response, error)


async def achat(call: Call) -> ChatResponse:
    """Async twin of `chat`."""
    call.reserve()
    response = error = None
    try:
        response = await _achat(call)
        return response
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.finish(response, error)


def _chat(call: Call) -> ChatResponse:
    """Try the route's targets in order until one answers; wait for a circuit if the policy says so."""
    if call.policy.hedge_after is not None and len(call.targets) > 1:
        provider, model = call.targets[0]
        return hedge(call, lambda: _send(call, provider, model), lambda: _route(call, start=1), call.policy.hedge_after)
    while True:
        try:
            return _route(call)
        except TurnoutError:
            wait = call.recovery_wait()
            if wait is None:
                raise
            call.clock.sleep(wait)


async def _achat(call: Call) -> ChatResponse:
    if call.policy.hedge_after is not None and len(call.targets) > 1:
        provider, model = call.targets[0]
        return await ahedge(
            call, lambda: _asend(call, provider, model), lambda: _aroute(call, start=1), call.policy.hedge_after
        )
    while True:
        try:
            return await _aroute(call)
        except TurnoutError:
            wait = call.recovery_wait()
            if wait is None:
                raise
            await call.clock.asleep(wait)


def _route(call: Call, start: int = 0) -> ChatResponse:
    last = len(call.targets) - 1
    for position, (provider, model) in enumerate(call.targets[start:], start):
        blocked = call.gate(provider, model) or precheck(call, provider, model)
        try:
            if blocked is not None:
                raise blocked
            return _send(call, provider, model)
        except ProviderError as exc:
            more = position < last
            error = call.skipped(provider, model, exc, more) if exc is blocked else call.target_failed(exc, more)
            if error is None:
                continue
            if error is exc:
                raise
            raise error from None
    raise AssertionError("unreachable: a route has at least one target")


async def _aroute(call: Call, start: int = 0) -> ChatResponse:
    last = len(call.targets) - 1
    for position, (provider, model) in enumerate(call.targets[start:], start):
        blocked = call.gate(provider, model) or await aprecheck(call, provider, model)
        try:
            if blocked is not None:
                raise blocked
            return await _asend(call, provider, model)
        except ProviderError as exc:
            more = position < last
            error = call.skipped(provider, model, exc, more) if exc is blocked else call.target_failed(exc, more)
            if error is None:
                continue
            if error is exc:
                raise
            raise error from None
    raise AssertionError("unreachable: a route has at least one target")


def _send(call: Call, provider: Provider, model: str) -> ChatResponse:
    retries = None
    check = None if call.output is None else OutputCheck(call, provider, model)  # response_model
    while True:
        started = call.clock.now()
        try:
            response = provider.chat(model, call.request_for_attempt() if check is None else check.request())
        except ProviderError as exc:
            call.attempt_failed(provider, model, exc, started)
            retries = retries or call.retries(provider, model)
            call.clock.sleep(retries.after(exc))  # re-raises exc when no retry is due
            continue
        if check is not None:
            checked = check.verify(response, started)  # raises OutputValidationError when no re-ask is left
            if checked is None:
                continue  # re-ask: the next request carries the rejected reply and its errors
            response = checked
        return call.succeeded(provider, model, started, response)


async def _asend(call: Call, provider: Provider, model: str) -> ChatResponse:
    retries = None
    check = None if call.output is None else OutputCheck(call, provider, model)
    while True:
        started = call.clock.now()
        try:
            response = await provider.achat(model, call.request_for_attempt() if check is None else check.request())
        except ProviderError as exc:
            call.attempt_failed(provider, model, exc, started)
            retries = retries or call.retries(provider, model)
            await call.clock.asleep(retries.after(exc))
            continue
        if check is not None:
            checked = check.verify(response, started)
            if checked is None:
                continue
            response = checked
        return call.succeeded(provider, model, started, response)


def precheck(call: Call, provider: Provider, model: str) -> ProviderError | None:
    """A reason to skip this target before sending because the call cannot fit its window, or None."""
    window = provider.context_window(model) if call.policy.precheck_context else None
    if window is None or not call.needs_token_count(window):
        return None
    return call.context_problem(provider, model, window, provider.count_tokens(model, call.request))


async def aprecheck(call: Call, provider: Provider, model: str) -> ProviderError | None:
    """Async twin of `precheck`."""
    window = await provider.acontext_window(model) if call.policy.precheck_context else None
    if window is None or not call.needs_token_count(window):
        return None
    return call.context_problem(provider, model, window, await provider.acount_tokens(model, call.request))
