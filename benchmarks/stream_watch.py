"""What the stream timeouts cost per chunk: the same long stream with and without them.

    python benchmarks/stream_watch.py              # 2000-chunk stream, 7 rounds of each
    python benchmarks/stream_watch.py --chunks 500 --rounds 3

A `FakeServer` (vLLM flavour) on 127.0.0.1 streams one word per chunk. Each round reads the
whole stream through a route without timeouts, then through one with ``first_token_timeout``
and ``stall_timeout`` (sync: the watchdog thread; async: ``asyncio.timeout`` per read). Prints
the median time per chunk of each and the difference. Rounds alternate, so machine drift
cancels in the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import warnings
from typing import Any

import turnout
from turnout.testing import FakeServer, Reply


def _config(server: FakeServer) -> dict[str, Any]:
    route = {"targets": ["v:llama"]}
    return {
        "providers": {"v": {"type": "vllm", "base_url": server.base_url}},
        "models": {"plain": route, "timed": {**route, "first_token_timeout": 30, "stall_timeout": 30}},
        "ledger": {"enabled": False},
    }


def _sync(client: turnout.Client, alias: str) -> float:
    started = time.perf_counter()
    with client.stream(alias, "Hi") as stream:
        for _ in stream:
            pass
    return time.perf_counter() - started


async def _async(client: turnout.AsyncClient, alias: str) -> float:
    started = time.perf_counter()
    async with client.stream(alias, "Hi") as stream:
        async for _ in stream:
            pass
    return time.perf_counter() - started


def main() -> None:
    """Run the rounds and print the per-chunk medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # no prices: cost None
    text = " ".join(f"w{i}" for i in range(args.chunks))
    with FakeServer(flavor="vllm", models=["llama"], default_reply=Reply(text)) as server:
        cfg = _config(server)
        times: dict[str, list[float]] = {}
        with turnout.Client(cfg) as client:
            for _ in range(args.rounds):
                for alias in ("plain", "timed"):
                    times.setdefault(f"sync {alias}", []).append(_sync(client, alias))

        async def arounds() -> None:
            async with turnout.AsyncClient(cfg) as client:
                for _ in range(args.rounds):
                    for alias in ("plain", "timed"):
                        times.setdefault(f"async {alias}", []).append(await _async(client, alias))

        asyncio.run(arounds())
    for mode in ("sync", "async"):
        plain, timed = (statistics.median(times[f"{mode} {a}"]) / args.chunks * 1e6 for a in ("plain", "timed"))
        print(
            f"{mode:5}  no timeouts {plain:6.1f} µs/chunk   with timeouts {timed:6.1f} µs/chunk   +{timed - plain:.1f}"
        )


if __name__ == "__main__":
    main()
