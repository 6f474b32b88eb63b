"""Close an async connection pool with the event loop it belongs to.

An async pool's connections live in one event loop. ``asyncio.run()`` (and pytest-asyncio's
loop per test, and ``anyio.run``) finalize the loop's unfinished async generators before
closing it (`asyncio.loop.shutdown_asyncgens`,
https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.shutdown_asyncgens).
`on_loop_shutdown` starts such a generator: when the loop shuts down, it runs a callback, in
that loop, while its sockets can still be closed cleanly. A provider then opens a new pool in
the next loop instead of reusing dead connections.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["on_loop_shutdown"]


def on_loop_shutdown(callback: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
    """Run ``callback`` in the running event loop when that loop shuts down.

    Keep the returned generator referenced; ``await guard.aclose()`` runs the callback now.
    """

    async def guard() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await callback()

    started = guard()
    try:  # run to the first yield now: this registers the generator with the running loop
        started.asend(None).send(None)
    except StopIteration:
        pass
    return started
