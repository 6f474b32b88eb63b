"""The spend ledger's writer thread at its lower priority and at the caller's, interleaved in one process.

    python benchmarks/ledger_priority.py                  # 16 rounds of 1,000 calls
    python benchmarks/ledger_priority.py --stream --chunks 4 --calls 200

The fake server of `make bench` runs in another process, pinned to one core; this process is
pinned to another, so the writer thread shares its core with the calls, as in `make bench`'s workers.
Each round makes ``--calls`` sequential calls (or streams) with each client, in turn: raw httpx2,
turnout (ledger on, its writer thread ``WRITER_NICE`` nicer: the default), the same with the
writer at the caller's priority, and turnout without a ledger. Printed per client, medians over
the rounds: CPU per call (the whole process, writer included), the calling thread's CPU and
involuntary context switches per call (the scheduler taking the core from it), and the p99
latency as a ratio to raw httpx2's p99 of the same round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _clients import setup  # noqa: E402
from _wire import MESSAGES, MODEL  # noqa: E402
from bench import Server  # noqa: E402


def _preempted() -> int:
    """Involuntary context switches of the calling thread so far (Linux)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as status:
        for line in status:
            if line.startswith("nonvoluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def _turnout(url: str, ledger: dict[str, Any], nice: int | None, stream: bool) -> tuple[Callable[[], str], Any]:
    import turnout

    config = {"providers": {"bench": {"type": "openai", "base_url": url, "api_key": "sk-bench"}}, "ledger": ledger}
    client = turnout.Client(config=config)
    if nice is not None:
        made = client._state.ledger  # noqa: SLF001 - the knob this benchmark compares
        assert made is not None
        made._writer.nice = nice  # noqa: SLF001
    target = "bench:" + MODEL

    def call() -> str:
        if not stream:
            return client.chat(model=target, messages=MESSAGES).text
        with client.stream(model=target, messages=MESSAGES) as chunks:
            return "".join(c.text or "" for c in chunks)

    return call, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--calls", type=int, default=1000, help="per client and round")
    parser.add_argument("--stream", action="store_true", help="streamed calls instead of plain ones")
    parser.add_argument("--chunks", type=int, default=64, help="content chunks per stream")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="turnout-ledger-priority-")
    venvs = os.environ.get("TURNOUT_BENCH_VENVS", "/tmp/benchvenvs")  # make bench's: a uvloop server
    python = os.path.join(venvs, "server", "bin", "python")
    cores = sorted(os.sched_getaffinity(0))
    pin = ["taskset", "-c", str(cores[0])] if len(cores) > 1 else []
    with Server(python if os.path.exists(python) else sys.executable, args.chunks, pin) as server:
        if pin:
            os.sched_setaffinity(0, {cores[1]})
        raw = setup("httpx2", server.url)
        clients = {
            "httpx2": (raw[2] if args.stream else raw[0], None),
            "turnout": _turnout(server.url, {"path": f"{folder}/a.sqlite3"}, None, args.stream),
            "writer not niced": _turnout(server.url, {"path": f"{folder}/b.sqlite3"}, 0, args.stream),
            "no ledger": _turnout(server.url, {"enabled": False}, None, args.stream),
        }
        for call, _ in clients.values():
            for _ in range(200):
                call()
        found: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "main": [], "pre": [], "p99": []} for n in clients}
        for _ in range(args.rounds):
            for name, (call, client) in clients.items():
                latencies = []
                cpu, main_cpu, preempted = time.process_time(), time.thread_time(), _preempted()
                for _ in range(args.calls):
                    start = time.perf_counter_ns()
                    call()
                    latencies.append(time.perf_counter_ns() - start)
                if client is not None and client._state.ledger is not None:  # noqa: SLF001
                    client._state.ledger.flush()  # noqa: SLF001 - the round's rows are written in the round
                row = found[name]
                row["cpu"].append((time.process_time() - cpu) / args.calls * 1e6)
                row["main"].append((time.thread_time() - main_cpu) / args.calls * 1e6)
                row["pre"].append((_preempted() - preempted) / args.calls)
                row["p99"].append(sorted(latencies)[int(0.99 * (args.calls - 1))] / 1e3)
    floor = found["httpx2"]
    print(f"{args.rounds} rounds of {args.calls} {'streams' if args.stream else 'calls'}; medians over the rounds")
    print(f"{'client':>17} | CPU µs/call | ÷ httpx2 | calling thread µs | preempted/call | p99 µs | p99 ÷ httpx2")
    for name, row in found.items():
        cpu_ratio = statistics.median(a / b for a, b in zip(row["cpu"], floor["cpu"], strict=True))
        p99_ratio = statistics.median(a / b for a, b in zip(row["p99"], floor["p99"], strict=True))
        print(
            f"{name:>17} | {statistics.median(row['cpu']):11.1f} | {cpu_ratio:7.3f}× | "
            f"{statistics.median(row['main']):17.1f} | {statistics.median(row['pre']):14.3f} | "
            f"{statistics.median(row['p99']):6.0f} | {p99_ratio:11.3f}×"
        )


if __name__ == "__main__":
    main()
