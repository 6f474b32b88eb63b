"""The drivers: perform a flow's steps, blocking (`drive`, `drive_stream`) or with asyncio (`adrive`, ...).

Each driver sends a step's outcome back into the flow, or throws its error in, until the flow
returns. This is the only place turnout does a call's I/O; every decision is the flow's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from .hedge import SIDE, Hedge
from .steps import FELL_THROUGH, CacheGet, CachePut, Count, Flow, Gather, Race, Send, Sleep, Store, Stream, Window
from .watch import WATCH, Watch, watchdog

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

    from ..policies.clock import Clock
    from ..types import ChatChunk

__all__ = ["adrive", "adrive_stream", "drive", "drive_stream"]


# -- sync ---------------------------------------------------------------------------------------


def drive(flow: Flow[Any], clock: Clock) -> Any:
    """Run ``flow`` to its end on this thread; return its result or raise its error."""
    try:
        step = next(flow)
        while True:
            try:
                outcome = _perform(step, clock)
            except BaseException as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(outcome)
    except StopIteration as stop:
        return stop.value


def drive_stream(flow: Flow[Any], clock: Clock) -> Generator[ChatChunk, None, None]:
    """Run a streaming flow, yielding each chunk to the caller as it arrives."""
    try:
        step = next(flow)
        while True:
            try:
                if type(step) is Stream:
                    chunks = step.provider.stream(step.model, step.request)
                    try:
                        if step.first is None and step.stall is None:
                            yield from map(step.acc.add, chunks)  # C resumes the loop: no bytecode per chunk
                        else:
                            yield from _watched(step, chunks)
                    finally:
                        chunks.close()  # type: ignore[attr-defined]
                    outcome = None
                else:
                    outcome = _perform(step, clock)
            except BaseException as exc:  # a provider error, or the caller leaving (GeneratorExit)
                step = flow.throw(exc)
            else:
                step = flow.send(outcome)
    except StopIteration:
        return


def _watched(step: Stream, chunks: Iterator[ChatChunk]) -> Generator[ChatChunk, None, None]:
    """`drive_stream`'s loop under the route's stream timeouts: the watchdog shuts a late stream's socket."""
    watch = Watch(step.first, step.stall)
    watchdog.add(watch)
    try:
        token = WATCH.set(watch)  # HTTPProvider.post_stream attaches its response while sending
        try:
            chunk = _next_watched(step, chunks, watch)
        finally:
            WATCH.reset(token)
        while chunk is not None:
            if watch.late():  # a provider without a socket to shut (huggingface_hub) is checked here
                raise watch.error(step.provider, step.model)
            out = step.acc.add(chunk)
            watch.saw(out)
            watch.pause()
            yield out
            watch.go()
            chunk = _next_watched(step, chunks, watch)
    finally:
        watchdog.finished(watch)


def _next_watched(step: Stream, chunks: Iterator[ChatChunk], watch: Watch) -> ChatChunk | None:
    """The next chunk (None at the end); a read the watchdog cut short is the watch's timeout error."""
    try:
        return next(chunks)
    except StopIteration:
        return None
    except ProviderError as exc:
        if watch.late():
            raise watch.error(step.provider, step.model) from exc
        raise


def _perform(step: Any, clock: Clock) -> Any:
    kind = type(step)
    if kind is Send:
        if step.embed:
            return step.provider.embed(step.model, step.request)
        return step.provider.chat(step.model, step.request)
    if kind is Sleep:
        clock.sleep(step.seconds)
        return None
    if kind is Window:
        return step.provider.context_window(step.model)
    if kind is Count:
        return step.provider.count_tokens(step.model, step.request)
    if kind is Gather:
        return [drive(flow, clock) for flow in step.flows]
    if kind is Race:
        return _race(step, clock)
    return _stores(step)


def _stores(step: Any) -> Any:
    """The steps that talk to a store: shared state ([state]), or the response cache (look up, keep)."""
    kind = type(step)
    if kind is Store:
        return step.run()
    if kind is CacheGet:
        return step.slot.get()
    if kind is CachePut:
        return step.slot.put(step.reply)
    raise AssertionError(f"unknown step {step!r}")


def _race(step: Race, clock: Clock) -> Any:
    """Hedge on threads: a blocking read cannot be interrupted, so the loser's reply is dropped when it comes."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait  # not loaded for a sync client's chat

    hedge = Hedge()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="turnout-hedge")
    try:
        futures: list[Future[Any]] = [pool.submit(_side, step.first, clock, hedge, 0)]
        waited = wait(futures, timeout=step.delay)
        if not waited.done or futures[0].result() is FELL_THROUGH:
            futures.append(pool.submit(_side, step.rest, clock, hedge, 1))
        # Past this point the rest runs, or the first side answered (or raised) within the delay.
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.index):
                if future.exception() is None and future.result() is not FELL_THROUGH:
                    return future.result()  # the winner: it recorded the other side's request still out
        return futures[-1].result()  # no side answered: raise the route's last error
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _side(flow: Flow[Any], clock: Clock, hedge: Hedge, index: int) -> Any:
    """Drive one side of a hedge on a worker thread, with `SIDE` set for its attempts (`engine.hedge`)."""
    token = SIDE.set((hedge, index))
    try:
        return drive(flow, clock)
    finally:
        SIDE.reset(token)


# -- async --------------------------------------------------------------------------------------


async def adrive(flow: Flow[Any], clock: Clock) -> Any:
    """Async twin of `drive`."""
    try:
        step = next(flow)
        while True:
            try:
                if type(step) is Send and not step.embed:  # the request awaited here: one coroutine
                    outcome = await step.provider.achat(step.model, step.request)  # less to resume per read
                else:
                    outcome = await _aperform(step, clock)
            except BaseException as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(outcome)
    except StopIteration as stop:
        return stop.value


async def adrive_stream(flow: Flow[Any], clock: Clock) -> AsyncGenerator[ChatChunk, None]:
    """Async twin of `drive_stream`."""
    try:
        step = next(flow)
        while True:
            try:
                if type(step) is Stream:
                    chunks = step.provider.astream(step.model, step.request)
                    try:
                        if step.first is None and step.stall is None:
                            add = step.acc.add
                            async for chunk in chunks:
                                yield add(chunk)
                        else:
                            watch = Watch(step.first, step.stall)
                            while (piece := await _anext(step, chunks, watch)) is not None:
                                out = step.acc.add(piece)
                                watch.saw(out)
                                watch.pause()
                                yield out
                                watch.go()
                    finally:
                        await chunks.aclose()  # type: ignore[attr-defined]
                    outcome = None
                else:
                    outcome = await _aperform(step, clock)
            except BaseException as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(outcome)
    except StopIteration:
        return


async def _anext(step: Stream, chunks: AsyncIterator[ChatChunk], watch: Watch) -> ChatChunk | None:
    """The stream's next chunk (None at its end) within the watch's deadline, else `StreamTimeoutError`."""
    import asyncio  # here, not at the top: a sync client never loads asyncio

    try:
        async with asyncio.timeout(watch.left()):
            return await anext(chunks)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise watch.error(step.provider, step.model) from None


async def _aperform(step: Any, clock: Clock) -> Any:
    kind = type(step)
    if kind is Send:  # an embedding batch (`adrive` awaits a chat request itself)
        return await step.provider.aembed(step.model, step.request)
    if kind is Sleep:
        await clock.asleep(step.seconds)
        return None
    if kind is Window:
        return await step.provider.acontext_window(step.model)
    if kind is Count:
        return await step.provider.acount_tokens(step.model, step.request)
    if kind is Gather:
        return await _agather(step, clock)
    if kind is Race:
        return await _arace(step, clock)
    return await _astores(step)


async def _astores(step: Any) -> Any:
    """Async twin of `_stores`."""
    kind = type(step)
    if kind is Store:
        return await step.arun()
    if kind is CacheGet:
        return await step.slot.aget()
    if kind is CachePut:
        return await step.slot.aput(step.reply)
    raise AssertionError(f"unknown step {step!r}")


async def _agather(step: Gather, clock: Clock) -> list[Any]:
    """Every flow's result in order, at most ``step.limit`` at once; the first failure cancels the rest."""
    import asyncio

    limit = asyncio.Semaphore(step.limit)

    async def one(flow: Flow[Any]) -> Any:
        async with limit:
            return await adrive(flow, clock)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(flow)) for flow in step.flows]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _arace(step: Race, clock: Clock) -> Any:
    """Hedge with tasks: the loser is cancelled."""
    import asyncio

    hedge = Hedge()
    tasks: list[asyncio.Task[Any]] = [asyncio.ensure_future(_aside(step.first, clock, hedge, 0))]
    try:
        done, _ = await asyncio.wait(tasks, timeout=step.delay)
        if not done or (tasks[0].exception() is None and tasks[0].result() is FELL_THROUGH):
            tasks.append(asyncio.ensure_future(_aside(step.rest, clock, hedge, 1)))
        pending: set[asyncio.Task[Any]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=tasks.index):
                if task.exception() is None and task.result() is not FELL_THROUGH:
                    return task.result()
        return tasks[-1].result()
    finally:
        for task in tasks:
            task.cancel()


async def _aside(flow: Flow[Any], clock: Clock, hedge: Hedge, index: int) -> Any:
    """Async twin of `_side` (a task runs in its own copy of the context: `SIDE` is this side's only)."""
    SIDE.set((hedge, index))
    return await adrive(flow, clock)
