"""turnout reading bodies straight from the transport, against httpx2's readers, interleaved in one process.

    python benchmarks/reader_ab.py                      # replies read whole, sync: 14 rounds of 1,000 calls
    python benchmarks/reader_ab.py --async              # the same from 64 tasks (500 calls a round)
    python benchmarks/reader_ab.py --stream             # streams of 64 chunks (100 a round)
    python benchmarks/reader_ab.py --stream --async

The fake server of `make bench` runs in another process, pinned to one core; this process is
pinned to another. Each round runs raw httpx2, then one turnout client twice: reading as it does
(``_send.body_chunks`` reads a reply's body and a stream's from the transport's byte stream itself), then
with httpx2's readers swapped in for its block (``response.read()``; ``iter_raw``), in alternating
order. Prints the CPU per call (or per stream) and its ratio to raw httpx2's, medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _clients import setup  # noqa: E402
from _wire import MESSAGES, MODEL  # noqa: E402
from bench import Server  # noqa: E402
from stream_ab import _async_httpx2  # noqa: E402


@contextmanager
def httpx2_readers(stream: bool) -> Iterator[None]:
    """turnout reading through httpx2's own readers while inside."""
    import turnout.providers._send as send
    import turnout.providers.openai

    openai: Any = turnout.providers.openai  # the names it imported from _sse, swapped below
    saved = send._READ_INTO, openai.body_chunks, openai.abody_chunks  # noqa: SLF001
    if stream:
        openai.body_chunks = lambda r: r.iter_bytes() if "content-encoding" in r.headers else r.iter_raw()
        openai.abody_chunks = lambda r: r.aiter_bytes() if "content-encoding" in r.headers else r.aiter_raw()
    else:
        send._READ_INTO = False  # noqa: SLF001 - the switch this benchmark compares
    try:
        yield
    finally:
        send._READ_INTO, openai.body_chunks, openai.abody_chunks = saved  # noqa: SLF001


def _calls(url: str, args: argparse.Namespace) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Raw httpx2's call and turnout's (sync or async; plain or streamed)."""
    import turnout

    config: dict[str, Any] = {"providers": {"bench": {"type": "openai", "base_url": url, "api_key": "sk-bench"}}}
    config["ledger"] = {"path": os.path.join(tempfile.mkdtemp(prefix="turnout-reader-ab-"), "l.sqlite3")}
    chat, achat, stream = setup("httpx2", url)
    target = "bench:" + MODEL
    if not args.use_async:
        client = turnout.Client(config=config)
        if args.stream:

            def one() -> str:
                with client.stream(model=target, messages=MESSAGES) as chunks:
                    return "".join(c.text or "" for c in chunks)

            return stream, one
        return chat, lambda: client.chat(model=target, messages=MESSAGES).text
    aclient = turnout.AsyncClient(config=config)

    async def aone() -> str:
        if not args.stream:
            return (await aclient.chat(model=target, messages=MESSAGES)).text
        async with aclient.stream(model=target, messages=MESSAGES) as chunks:
            return "".join([c.text or "" async for c in chunks])

    return (_async_httpx2(url) if args.stream else achat), aone


def _block(call: Callable[[], Any], args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> float:
    """CPU µs per call of one block."""
    n = args.calls
    start = time.process_time()
    if not args.use_async:
        for _ in range(n):
            call()
    else:
        left = n

        async def task() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await call()

        async def tasks() -> None:
            await asyncio.gather(*(task() for _ in range(1 if args.stream else 64)))

        loop.run_until_complete(tasks())
    return float((time.process_time() - start) / n * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=14)
    parser.add_argument("--calls", type=int, help="per block (default 1,000 sync calls, 500 async, 100 streams)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args()
    args.calls = args.calls or (100 if args.stream else 500 if args.use_async else 1000)

    venvs = os.environ.get("TURNOUT_BENCH_VENVS", "/tmp/benchvenvs")  # make bench's: a uvloop server
    python = os.path.join(venvs, "server", "bin", "python")
    cores = sorted(os.sched_getaffinity(0))
    pin = ["taskset", "-c", str(cores[0])] if len(cores) > 1 else []
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with Server(python if os.path.exists(python) else sys.executable, 64, pin) as server:
        if pin:
            os.sched_setaffinity(0, {cores[1]})
        raw, turnout_call = _calls(server.url, args)
        found: dict[str, list[float]] = {"raw httpx2": [], "turnout": [], "turnout, httpx2's readers": []}
        for name in found:  # warm up
            with httpx2_readers(args.stream) if "readers" in name else _nothing():
                _block(raw if name == "raw httpx2" else turnout_call, args, loop)
        for i in range(args.rounds):
            names = list(found) if i % 2 else list(found)[::-1]
            for name in names:
                with httpx2_readers(args.stream) if "readers" in name else _nothing():
                    found[name].append(_block(raw if name == "raw httpx2" else turnout_call, args, loop))
    unit = "stream" if args.stream else "call"
    mode = " (async)" if args.use_async else ""
    print(f"{args.rounds} rounds of {args.calls} {unit}s{mode}; medians over the rounds")
    for name, values in found.items():
        ratio = statistics.median(a / b for a, b in zip(values, found["raw httpx2"], strict=True))
        print(f"{name:>26} | CPU µs a {unit} {statistics.median(values):8.1f} | ÷ raw httpx2 {ratio:.3f}×")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
