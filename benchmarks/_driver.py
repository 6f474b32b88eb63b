"""Measure one client inside its own interpreter; print one JSON object on the last line.

Standard library only (plus the measured library), because it runs in each library's venv:

    /tmp/benchvenvs/openai/bin/python benchmarks/_driver.py openai --base-url http://127.0.0.1:PORT/v1

Phases: import time and import-to-first-reply in fresh interpreters; sequential sync calls
(wall latency and process CPU per call); async calls from ``--concurrency`` tasks; sequential
streams; peak RSS; for turnout, its own per-call layer cost without I/O (``_layer.py``).
Every reply's text is checked; mismatches are counted in ``bad_replies``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from _clients import ENV, IMPORTS, AsyncChat, Chat, setup
from _wire import REPLY, stream_pieces

HERE = os.path.dirname(os.path.abspath(__file__))
_PROBE = """
import sys, time
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
sys.path.insert(0, {here!r})
from _clients import setup
reply = setup({name!r}, {base_url!r})[0]()
t2 = time.perf_counter()
print((t1 - t0) * 1e3, (t2 - t0) * 1e3, reply == {reply!r})
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds that process ``pid`` has used (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase:
    """Wall time and this process's CPU time over a block, and the server's CPU share meanwhile."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.wall = self.cpu = self.server_pct = 0.0

    def __enter__(self) -> Phase:
        self._server = cpu_seconds(self.server_pid)
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.server_pct = 100 * (cpu_seconds(self.server_pid) - self._server) / self.wall


def probe_import(args: argparse.Namespace) -> dict[str, float]:
    """Median import time and import-to-first-reply time over fresh interpreters (first run dropped)."""
    code = _PROBE.format(
        statement=IMPORTS[args.client], here=HERE, name=args.client, base_url=args.base_url, reply=REPLY
    )
    imports, firsts = [], []
    for i in range(args.import_runs + 1):  # the first run may compile .pyc files
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{args.client}: the import probe failed:\n{proc.stderr[-2000:]}")
        out = proc.stdout.split()
        if out[2] != "True":
            raise SystemExit(f"{args.client}: the first call returned the wrong reply")
        if i:
            imports.append(float(out[0]))
            firsts.append(float(out[1]))
    return {"import_ms": statistics.median(imports), "first_call_ms": statistics.median(firsts)}


def sync_phase(chat: Chat, args: argparse.Namespace) -> dict[str, float]:
    """Sequential non-streamed calls: p50 wall latency and process CPU per call."""
    for _ in range(args.warmup):
        chat()
    latencies, bad = [], 0
    with Phase(args.server_pid) as phase:
        for _ in range(args.n_sync):
            start = time.perf_counter_ns()
            reply = chat()
            latencies.append(time.perf_counter_ns() - start)
            bad += reply != REPLY
    return {
        "sync_p50_us": statistics.median(latencies) / 1e3,
        "sync_cpu_us": phase.cpu / args.n_sync * 1e6,
        "sync_server_pct": phase.server_pct,
        "bad_replies": bad,
    }


async def async_phase(achat: AsyncChat, args: argparse.Namespace) -> dict[str, float]:
    """``n_async`` calls from ``concurrency`` tasks, after one warm-up wave that opens the pool."""
    await asyncio.gather(*(achat() for _ in range(args.concurrency)))
    left, bad = args.n_async, 0

    async def worker() -> None:
        nonlocal left, bad
        while left > 0:
            left -= 1
            bad += await achat() != REPLY

    with Phase(args.server_pid) as phase:
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return {"async_calls_s": args.n_async / phase.wall, "async_server_pct": phase.server_pct, "bad_replies": bad}


def stream_phase(stream: Chat, args: argparse.Namespace) -> dict[str, float]:
    """Sequential streams of ``chunks`` content chunks: chunks/s (wall) and CPU µs per chunk."""
    expected = "".join(stream_pieces(args.chunks))
    for _ in range(max(1, args.warmup // 10)):
        stream()
    bad = 0
    with Phase(args.server_pid) as phase:
        for _ in range(args.n_stream):
            bad += stream() != expected
    chunks = args.n_stream * args.chunks
    return {
        "stream_chunks_s": chunks / phase.wall,
        "stream_cpu_us": phase.cpu / chunks * 1e6,
        "stream_server_pct": phase.server_pct,
        "bad_replies": bad,
    }


def main() -> None:
    """Run every phase for one client and print the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=sorted(IMPORTS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--server-pid", type=int, default=0, help="to report the server's CPU share")
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--n-sync", type=int, default=500)
    parser.add_argument("--n-async", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--n-stream", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=64, help="must match the server's --chunks")
    parser.add_argument("--n-layer", type=int, default=5000, help="calls per round of turnout's layer timing")
    args = parser.parse_args()

    os.environ.update(ENV.get(args.client, {}))  # inherited by the import probes
    if args.client == "turnout" and "TURNOUT_LEDGER" not in os.environ:
        # turnout's spend ledger stays on (its cost is part of every call) but in a scratch file,
        # so benchmark calls never reach the user's real ledger.
        scratch = tempfile.mkdtemp(prefix="turnout-bench-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        os.environ["TURNOUT_LEDGER"] = os.path.join(scratch, "ledger.sqlite3")
    result: dict[str, Any] = probe_import(args)
    chat, achat, stream = setup(args.client, args.base_url)
    phases = [sync_phase(chat, args), asyncio.run(async_phase(achat, args)), stream_phase(stream, args)]
    result["bad_replies"] = 0
    for phase in phases:
        result["bad_replies"] += phase.pop("bad_replies")
        result.update(phase)
    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.client == "turnout":
        from _layer import measure

        result.update(measure(args.n_layer))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
