"""Soak test of the reliability policies (issue 4): many calls, injected faults, nothing lost.

10,000 async calls at concurrency 64 along a route whose first target fails 20 % of its
requests (429 with a short Retry-After, 500, 503, dropped connections, truncated bodies) and
whose second target is healthy. The fake servers run in a separate process, so the figures
(file descriptors, RSS) are the client's own. Reports: calls lost, attempts against the retry
budget, descriptors and memory before/after.

    python benchmarks/soak.py [--calls 10000] [--concurrency 64] [--fault-rate 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import turnout
from turnout.testing import FakeServer, Fault, Reply

FAULTS: list[Callable[[], Fault]] = [
    lambda: Fault.rate_limit(retry_after_ms=20),
    lambda: Fault.server_error(500),
    lambda: Fault.server_error(503),
    Fault.drop,
    lambda: Fault.truncate_stream(after_chunks=1),
]


def serve(calls: int, fault_rate: float, seed: int) -> None:
    """Child process: run the two fake servers until stdin closes."""
    rng = random.Random(seed)
    with FakeServer(flavor="openai") as flaky, FakeServer(flavor="vllm") as healthy:
        # every request to the flaky target draws from this script (3x the calls covers retries)
        flaky.enqueue(*[rng.choice(FAULTS)() if rng.random() < fault_rate else Reply("ok") for _ in range(calls * 3)])
        print(json.dumps({"flaky": flaky.base_url, "healthy": healthy.base_url}), flush=True)
        sys.stdin.read()
        print(
            json.dumps({"flaky_requests": len(flaky.chat_requests), "healthy_requests": len(healthy.chat_requests)}),
            flush=True,
        )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def soak(urls: dict[str, str], calls: int, concurrency: int) -> dict[str, Any]:
    config = {
        "providers": {
            "flaky": {"type": "openai-compatible", "base_url": urls["flaky"]},
            "healthy": {"type": "vllm", "base_url": urls["healthy"]},
        },
        "models": {"m": {"targets": ["flaky:gpt-4o-mini", "healthy:llama"], "deadline": 30}},
        "prices": {
            "flaky:gpt-4o-mini": {"input_per_million": 1, "output_per_million": 1},
            "healthy:llama": {"input_per_million": 1, "output_per_million": 1},
        },
    }
    outcomes: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    lost: list[str] = []
    rss: list[float] = []
    fds_before = open_fds()
    gate = asyncio.Semaphore(concurrency)
    async with turnout.AsyncClient(config) as client:

        async def one(i: int) -> None:
            async with gate:
                try:
                    reply = await client.chat("m", f"call {i}")
                except turnout.TurnoutError as exc:
                    lost.append(f"{type(exc).__name__}: {exc}")
                    return
                answered[reply.provider] += 1
                outcomes.update(a.outcome for a in reply.attempts)
                if i % 1000 == 0:
                    rss.append(round(rss_mib(), 1))

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - started
        fds_during = open_fds()
        budget = {
            h: client._state.budget(h, client.config.policy("m")).tokens  # noqa: SLF001
            for h in ("flaky:gpt-4o-mini", "healthy:llama")
        }
        health = [h.model_dump() for h in client.health()]
    return {
        "calls": calls,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(calls / elapsed),
        "lost": len(lost),
        "lost_examples": lost[:3],
        "answered_by": dict(answered),
        "attempt_outcomes": dict(outcomes),
        "retry_tokens_left": budget,
        "fds_before": fds_before,
        "fds_with_client_open": fds_during,
        "fds_after_close": open_fds(),
        "rss_mib_every_1000_calls": rss,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "health": health,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.calls, args.fault_rate, args.seed)
        return 0
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--calls",
            str(args.calls),
            "--fault-rate",
            str(args.fault_rate),
            "--seed",
            str(args.seed),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    urls = json.loads(child.stdout.readline())
    report = asyncio.run(soak(urls, args.calls, args.concurrency))
    child.stdin.close()
    report["server_side"] = json.loads(child.stdout.readline())
    child.wait(timeout=30)
    calls, flaky = args.calls, report["server_side"]["flaky_requests"]
    # every call's first attempt at the flaky target, plus retries bounded by the budget
    report["flaky_retries"] = flaky - calls
    report["retry_budget_bound"] = 10 + 0.1 * calls
    report["retries_within_budget"] = flaky - calls <= report["retry_budget_bound"]
    print(json.dumps(report, indent=2))
    ok = report["lost"] == 0 and report["retries_within_budget"] and report["fds_after_close"] <= report["fds_before"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
