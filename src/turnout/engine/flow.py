"""Every decision of a call, written once, as flows of steps (no I/O here).

A flow yields `steps` (send, stream, sleep, ask for a context window, hedge, gather batches) and
receives their outcomes; `turnout.engine.drive` performs them, synchronously or with asyncio.
chat, stream, embed and hedging all run through `call_flow`, so each gate, retry, fallback and
piece of bookkeeping exists once:

    call_flow        reserve the budget; recover (wait_for_recovery); publish CallFinished
      route          each target in order: gate (circuit, deadline), context pre-check, fallback
        attempts     one target: send, check the reply, retry per the policy
        stream_attempts / embed_target   the same for a stream, or for the batches of an embedding
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from .._defaults import TIMEOUT
from ..errors import ProviderError, TurnoutError
from .accumulate import Accumulator
from .steps import FELL_THROUGH, CacheGet, CachePut, Count, Flow, Gather, Race, Send, Sleep, Stream, Window

if TYPE_CHECKING:
    from ..embeddings import EmbeddingResponse
    from ..events import Operation
    from ..limits import Permit
    from ..provider import Provider
    from ..types import ChatRequest, ChatResponse
    from .call import Call
    from .chat_call import ChatCall
    from .embed_call import EmbedCall
    from .hooks import ReplyStore
    from .state import Retries

__all__ = ["EMBED_CONCURRENCY", "call_flow"]

#: The most embedding batches the async driver has in flight at once.
EMBED_CONCURRENCY = 4


def call_flow(call: Call[Any, Any], target: Any) -> Flow[Any]:
    """The whole call: hold its budget, run ``target`` along the route, then settle and record it.

    ``target(call, provider, model)`` is the flow for one target: `attempts`, `stream_attempts`
    or `embed_target`. With a response cache, a hit is served instead and nothing is held or sent.
    """
    slot = call.cache_slot() if call.hooks else None
    stored = None if slot is None else (yield CacheGet(slot))
    if stored is None:
        store = call.reserve()
        if store is not None:  # [state] on Redis: one round trip (budget hold, open circuits) before sending
            call.stored((yield store))
    call.begin(_OPERATIONS.get(target, "chat"))
    response = error = None
    try:
        if slot is not None and stored is not None:
            response = yield from _cached(call, target, slot, stored)
            return response
        response = yield from _recovering(call, target)
        if slot is not None:
            yield CachePut(slot, response)  # only a complete, accepted reply gets here
        return response
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.finish(response, error)


def _cached(call: Call[Any, Any], target: Any, slot: ReplyStore, stored: ChatResponse) -> Flow[Any]:
    """A cache hit: a stream replays the stored reply chunk by chunk."""
    reply, saved = slot.served(stored)
    if target is stream_attempts:
        yield Stream(slot.replayer(stored), stored.model, call.request, Accumulator())
    return call.from_cache(reply, saved)


def _recovering(call: Call[Any, Any], target: Any) -> Flow[Any]:
    """Run the route; with ``wait_for_recovery``, wait for the first circuit to half-open and run it again."""
    while True:
        try:
            if call.policy.hedge_after is not None and len(call.targets) > 1 and target is attempts:
                return (yield from _hedged(call, call.policy.hedge_after))
            return (yield from route(call, target))
        except TurnoutError:
            wait = call.recovery_wait()
            if wait is None:
                raise
            yield Sleep(wait)


def _hedged(call: Call[Any, Any], delay: float) -> Flow[Any]:
    """The first target, and after ``delay`` seconds without its reply the rest of the route beside it."""
    return (yield Race(route(call, attempts, 0, 1), route(call, attempts, 1), delay))


def route(call: Call[Any, Any], target: Any, start: int = 0, stop: int | None = None) -> Flow[Any]:
    """Try targets ``start``..``stop`` in order until one answers; return `FELL_THROUGH` when the slice falls back."""
    targets = call.targets
    last = len(targets) - 1
    for position in range(start, len(targets) if stop is None else stop):
        provider, model = targets[position]
        blocked: ProviderError | None = call.gate(provider, model)
        if blocked is None and call.needs_precheck():
            blocked = yield from _precheck(cast("ChatCall", call), provider, model)
        try:
            if blocked is not None:
                raise blocked
            return (yield from target(call, provider, model))
        except ProviderError as exc:
            more = position < last
            error = call.skipped(provider, model, exc, more) if exc is blocked else call.target_failed(exc, more)
            if error is None:
                continue
            if error is exc:
                raise
            raise error from None
    return FELL_THROUGH


def _precheck(call: ChatCall, provider: Provider, model: str) -> Flow[ProviderError | None]:
    """A reason to skip this target before sending because the call cannot fit its window, or None."""
    window = yield Window(provider, model)
    if window is None or not call.needs_token_count(window):
        return None
    counted = yield Count(provider, model, call.request)
    return call.context_problem(provider, model, window, counted)


def attempts(call: Call[Any, Any], provider: Provider, model: str, request: Any = None) -> Flow[Any]:
    """One target: send, check the reply (re-ask when a hook says so), retry failures per the policy."""
    retries = None
    check = None if request is not None else call.check(provider, model)
    base = call.request if request is None else request
    while True:
        sent = call.in_time(base if check is None else check.request(base))
        permit = (yield from admit(call, provider, model, sent)) if call.state.limits else None
        started = call.starting(provider, model, sent)
        try:
            reply = yield Send(provider, model, sent, call.embeds)
            if permit is not None:
                permit.done(reply.usage.total_tokens)
                call.provider_limits(provider, model, reply)
            call.validate(provider, model, sent, reply)
        except ProviderError as exc:
            if permit is not None:
                permit.done(None)
            call.attempt_failed(provider, model, exc, started)
            retries = retries or call.retries(provider, model)
            yield Sleep(retries.after(exc))  # re-raises exc when no retry is due
            continue
        finally:
            if permit is not None:
                permit.done(None)  # the caller left (cancelled) while the request was out
        if check is not None:
            reply = check.verify(reply, started)  # raises when no re-ask is left
            if reply is None:
                continue  # re-ask: the next request carries the rejected reply and what was wrong
        return call.accepted(provider, model, started, reply)


def stream_attempts(call: ChatCall, provider: Provider, model: str) -> Flow[ChatResponse]:
    """One target, streamed: before content a failure is retried; after it, the stream is interrupted.

    With the route's ``resume = "continue"``, a stream cut after content is finished by a
    continuation request instead (`_resume`), into the same accumulator.
    """
    retries = None
    while True:
        acc = Accumulator(call.clock, call.deadline)
        sent = call.in_time(call.stream_request(provider, model, call.request))
        permit = (yield from admit(call, provider, model, sent)) if call.state.limits else None
        try:
            started = yield from _piece(call, provider, model, sent, acc, permit)
        except ProviderError as exc:
            if acc.has_content:
                if call.policy.resume == "off":
                    call.stream_cut(provider, model, acc)
                    raise call.interrupted(exc, acc.text())  # noqa: B904 - has its cause; never retried
                return (yield from _resume(call, provider, model, acc, exc, sent, retries))
            retries = retries or call.retries(provider, model)
            yield Sleep(retries.after(exc))
            continue
        return _streamed(call, provider, model, acc, started)


def _piece(
    call: ChatCall, provider: Provider, model: str, sent: ChatRequest, acc: Accumulator, permit: Permit | None
) -> Flow[float]:
    """Stream ``sent`` into ``acc`` (a whole answer, or a continuation's piece); return when it started.

    A failure is recorded as the target's and raised; the caller leaving (break, close(),
    cancellation) is recorded as abandoned. ``permit`` (``[limits]``) is settled with the tokens
    the stream reported.
    """
    policy = call.policy
    started = call.starting(provider, model, sent)
    try:
        yield Stream(provider, model, sent, acc, policy.first_token_timeout, policy.stall_timeout)
        if permit is not None:
            permit.done(None if acc.usage is None else acc.usage.total_tokens)
    except ProviderError as exc:
        call.attempt_failed(provider, model, exc, started)
        raise
    except BaseException:
        call.abandoned(provider, model, acc, started)
        raise
    finally:
        if permit is not None:
            permit.done(None)
    return started


def _streamed(call: ChatCall, provider: Provider, model: str, acc: Accumulator, started: float) -> ChatResponse:
    response = acc.response(provider.name, model)
    call.provider_limits(provider, model, response)  # the stream's x-ratelimit-* headers, as for a plain reply
    check = call.check(provider, model)
    if check is not None:  # response_model: validate the whole reply (a stream is never re-asked)
        response = check.verify_streamed(response, started)
    first = None if acc.first is None or acc.first < started else acc.first - started  # a resumed piece: None
    return call.accepted(provider, model, started, response, first)


def _resume(
    call: ChatCall,
    provider: Provider,
    model: str,
    acc: Accumulator,
    exc: ProviderError,
    sent: ChatRequest,
    retries: Retries | None,
) -> Flow[ChatResponse]:
    """Finish a cut answer with continuation requests, else raise `StreamInterruptedError`.

    The same target goes first, while its retries allow; then, with ``resume_across_targets``,
    later targets that can continue.
    """
    call.piece_cut(provider, model, acc, sent)  # the piece that was cut is paid for
    for target, name in call.continuers(provider, model):
        elsewhere = target is not provider or name != model
        if elsewhere and call.gate(target, name) is not None:
            continue
        tries = None if elsewhere else retries
        while (request := call.continuation(target, name, acc)) is not None:
            if elsewhere:  # the first continuation on another target goes at once
                elsewhere = False
            else:
                tries = tries or call.retries(target, name)
                try:
                    wait = tries.after(exc)
                except ProviderError:
                    break  # not retryable, or this target's retries are spent
                yield Sleep(wait)
            acc.restart()
            sent = call.in_time(call.stream_request(target, name, request))
            try:  # a continuation waits for room under [limits] like any request
                permit = (yield from admit(call, target, name, sent)) if call.state.limits else None
            except ProviderError as refused:  # no room in time: nothing was sent, try the next target
                exc = refused
                break
            try:
                started = yield from _piece(call, target, name, sent, acc, permit)
            except ProviderError as failed:
                call.piece_cut(target, name, acc, sent)
                exc = failed
                continue
            return _streamed(call, target, name, acc, started)
    raise call.interrupted(exc, acc.text())


def admit(call: Call[Any, Any], provider: Provider, model: str, request: Any) -> Flow[Permit | None]:
    """Room for one request under the target's rate limit (``[limits]``), waiting for it if need be.

    Raises:
        LocalRateLimitError: no room within the call's deadline (else the limit's ``max_wait``).
    """
    limiter = call.state.limiter(provider, model)
    if limiter is None:
        return None
    tokens = call.request_tokens(request)
    give_up = call.clock.now() + call.wait_limit(limiter)
    hold = min(call.remaining(), request.timeout or TIMEOUT) + 1.0  # a dead worker's slot frees after this
    while True:
        now = call.clock.now()
        permit, wait = None, limiter.paused_for(now)
        if wait <= 0 and limiter.shared is None:
            permit, wait = limiter.try_local(now, tokens)
        elif wait <= 0:
            step, read = limiter.step(tokens, hold)
            permit, wait = read((yield step), call.clock.now())
        if permit is not None:
            return permit
        if now + wait > give_up:
            raise call.rate_limited(provider, model, limiter, wait)
        yield Sleep(wait)


def embed_target(call: EmbedCall, provider: Provider, model: str) -> Flow[EmbeddingResponse]:
    """Every batch on one target (each with its retries); a batch that fails gives up the target."""
    batches = call.batches(provider)
    if len(batches) == 1:
        parts = [(yield from attempts(call, provider, model, batches[0]))]
    else:
        parts = yield Gather([attempts(call, provider, model, b) for b in batches], EMBED_CONCURRENCY)
    return call.done(provider, model, parts)


_OPERATIONS: dict[Any, Operation] = {attempts: "chat", stream_attempts: "stream", embed_target: "embed"}
