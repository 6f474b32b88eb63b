"""turnout's streams against raw httpx2's, interleaved in one process: CPU per chunk and calls per chunk.

    python benchmarks/stream_ab.py                      # 15 rounds of 40 streams, sync and async
    python benchmarks/stream_ab.py --rounds 5 --no-async
    python benchmarks/stream_ab.py --profile             # Python function calls per chunk (cProfile)

The fake server of `make bench` (``_server.py``: a role chunk, 64 content chunks, a finish
chunk, a usage chunk, ``[DONE]``) runs in another process. Each round reads ``--streams``
streams with raw httpx2 (the driver of ``_clients.py``), then with turnout (spend ledger on, in a
scratch file), and compares the CPU time of this process per chunk; the rounds alternate which
goes first. Prints the median of the per-round ratios (turnout ÷ raw httpx2) with its quartiles:
single timings on a busy machine vary, ratios of neighbouring blocks much less. ``--profile``
counts the Python function calls per chunk (each stream's setup included), a figure the
machine's load does not change.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _clients import setup  # noqa: E402
from _wire import MESSAGES, MODEL, stream_pieces  # noqa: E402
from bench import Server  # noqa: E402


def _async_httpx2(base_url: str) -> Callable[[], Awaitable[str]]:
    """Raw httpx2's async stream, the twin of ``_clients``' sync one."""
    import json

    import httpx2

    body = {"model": MODEL, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    client = httpx2.AsyncClient(base_url=base_url, headers={"authorization": "Bearer sk-bench"})

    async def stream() -> str:
        parts = []
        async with client.stream("POST", "/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    parts.append(choices[0]["delta"]["content"])
        return "".join(parts)

    return stream


def _async_turnout(base_url: str) -> Callable[[], Awaitable[str]]:
    import turnout

    client = turnout.AsyncClient(
        config={"providers": {"bench": {"type": "openai", "base_url": base_url, "api_key": "sk-bench"}}}
    )

    async def stream() -> str:
        async with client.stream(model="bench:" + MODEL, messages=MESSAGES) as chunks:
            return "".join([c.text or "" async for c in chunks])

    return stream


def _block(run: Callable[[], str], n: int, expected: str) -> float:
    """CPU seconds of this process for ``n`` streams."""
    start = time.process_time()
    for _ in range(n):
        if run() != expected:
            raise SystemExit("a stream's text is not what the server sent")
    return time.process_time() - start


def _ablock(loop: asyncio.AbstractEventLoop, run: Callable[[], Awaitable[str]], n: int, expected: str) -> float:
    async def many() -> None:
        for _ in range(n):
            if await run() != expected:
                raise SystemExit("a stream's text is not what the server sent")

    start = time.process_time()
    loop.run_until_complete(many())
    return time.process_time() - start


def _report(label: str, base: list[float], ours: list[float], per: int) -> None:
    ratios = sorted(t / b for t, b in zip(ours, base, strict=True))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(
        f"{label}: CPU µs/chunk raw httpx2 {statistics.median(base) / per * 1e6:.2f}, "
        f"turnout {statistics.median(ours) / per * 1e6:.2f}; turnout ÷ raw httpx2 {q[1]:.3f}× "
        f"(quartiles {q[0]:.3f}–{q[2]:.3f}, {len(ratios)} rounds); as a rate: {1 / q[1]:.3f}×"
    )


def _profile(run: Callable[[], Any], n: int, per: int) -> None:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        run()
    profile.disable()
    stats = pstats.Stats(profile)
    calls: int = stats.total_calls  # type: ignore[attr-defined]
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    own = sum(row[1] for (path, _, _), row in table.items() if f"{os.sep}turnout{os.sep}" in path)
    print(
        f"    {calls / (n * per):.2f} Python function calls per chunk ({calls / n:.0f} per stream), "
        f"{own / (n * per):.2f} of them turnout's own ({own / n:.0f} per stream)"
    )
    if os.environ.get("STREAM_AB_TOP"):
        stats.sort_stats("ncalls").print_stats(int(os.environ["STREAM_AB_TOP"]))


class _Pair:
    """Raw httpx2 and turnout, sync and async, against one server."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.args, self.expected = args, "".join(stream_pieces(args.chunks))
        self.sync = (setup("httpx2", url)[2], setup("turnout", url)[2])
        self.async_ = (_async_httpx2(url), _async_turnout(url))
        self.loop = asyncio.new_event_loop()
        for run in self.sync:  # open the pools, fill the caches
            _block(run, 20, self.expected)
        for arun in self.async_ if not args.no_async else ():
            _ablock(self.loop, arun, 20, self.expected)

    def profile(self) -> None:
        n, per = self.args.streams, self.args.chunks + 3
        for name, run in zip(("raw httpx2", "turnout"), self.sync, strict=True):
            print(f"sync, {name}:")
            _profile(run, n, per)
        for name, arun in zip(("raw httpx2", "turnout"), self.async_ if not self.args.no_async else (), strict=False):
            print(f"async, {name}:")
            _profile(functools.partial(self._run_async, arun), n, per)

    def _run_async(self, run: Callable[[], Awaitable[str]]) -> str:
        return self.loop.run_until_complete(run())

    def rounds(self) -> None:
        n, per = self.args.streams, self.args.streams * (self.args.chunks + 3)
        sync: tuple[list[float], list[float]] = ([], [])
        async_: tuple[list[float], list[float]] = ([], [])
        for r in range(self.args.rounds):
            for side in (0, 1) if r % 2 == 0 else (1, 0):  # which goes first alternates
                sync[side].append(_block(self.sync[side], n, self.expected))
                if not self.args.no_async:
                    async_[side].append(_ablock(self.loop, self.async_[side], n, self.expected))
        _report("sync streams ", *sync, per)
        if not self.args.no_async:
            _report("async streams", *async_, per)


def main() -> None:
    """Run the rounds and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--streams", type=int, default=40, help="streams per block")
    parser.add_argument("--chunks", type=int, default=64, help="content chunks per stream")
    parser.add_argument("--no-async", action="store_true")
    parser.add_argument("--profile", action="store_true", help="count function calls per chunk instead")
    args = parser.parse_args()
    os.environ.setdefault("TURNOUT_LEDGER", os.path.join(tempfile.mkdtemp(), "ledger.sqlite3"))
    with Server(sys.executable, args.chunks, []) as server:
        pair = _Pair(server.url, args)
        if args.profile:
            pair.profile()
        else:
            pair.rounds()


if __name__ == "__main__":
    main()
