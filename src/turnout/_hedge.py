"""Hedged calls: if the first target has not answered after ``hedge_after`` seconds, also ask the rest.

The first reply wins. Async hedging cancels the loser; sync hedging cannot interrupt a blocking
read, so the loser finishes on its worker thread and its reply is dropped. Either way the loser
is recorded as a ``"cancelled"`` attempt; a provider may still bill a request turnout dropped.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from .types import Attempt

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from ._routing import Call
    from .types import ChatResponse

__all__ = ["ahedge", "hedge"]


def _with_loser(call: Call, reply: ChatResponse, loser: int, started: float) -> ChatResponse:
    """The reply with the losing side (0: the first target, 1: the rest of the route) recorded."""
    provider, model = call.targets[loser]
    cancelled = Attempt(
        provider=provider.name,
        model=model,
        outcome="cancelled",
        latency=call.clock.now() - started,
        error="lost the hedge: another target answered first",
    )
    return reply.model_copy(update={"attempts": [*reply.attempts, cancelled]})


def hedge(
    call: Call, first: Callable[[], ChatResponse], rest: Callable[[], ChatResponse], delay: float
) -> ChatResponse:
    """Run ``first``; after ``delay`` seconds without a reply, run ``rest`` beside it; return the first reply."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="turnout-hedge")
    try:
        started = call.clock.now()
        sides: list[Future[ChatResponse]] = [pool.submit(first)]
        if wait(sides, timeout=delay).done:
            return sides[0].result()
        sides.append(pool.submit(rest))
        pending = set(sides)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is None:
                    reply = future.result()
                    return _with_loser(call, reply, 1 - sides.index(future), started) if pending else reply
        return sides[1].result()  # both failed: raise the route's final error
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


async def ahedge(
    call: Call,
    first: Callable[[], Coroutine[Any, Any, ChatResponse]],
    rest: Callable[[], Coroutine[Any, Any, ChatResponse]],
    delay: float,
) -> ChatResponse:
    """Async twin of `hedge`; the loser is cancelled."""
    started = call.clock.now()
    sides: list[asyncio.Task[ChatResponse]] = [asyncio.ensure_future(first())]
    try:
        done, _ = await asyncio.wait(sides, timeout=delay)
        if done:
            return sides[0].result()
        sides.append(asyncio.ensure_future(rest()))
        pending: set[asyncio.Task[ChatResponse]] = set(sides)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    reply = task.result()
                    return _with_loser(call, reply, 1 - sides.index(task), started) if pending else reply
        return sides[1].result()
    finally:
        for task in sides:
            task.cancel()
