"""Process CPU time and peak RSS of a fresh process up to its first reply, per client, interleaved.

    python benchmarks/cold_cpu.py --runs 15 --python turnout=/path/python --python turnout:base=/other/python

Each run starts one fresh interpreter per client (in turn, rotated) that imports the client, builds
it and makes one chat call against the fake server (``_server.py``, in its own process), exactly
as ``bench.py``'s first-reply probe does. The process's CPU time (user + system, from
``os.wait4``) is less disturbed by other processes' load than wall time: the best of the runs is
reported, with the median and quartiles, and each client's ratio to raw httpx2's in the same
run. ``httpx2+pydantic`` is raw httpx2 after ``from pydantic import BaseModel``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _clients import FLOOR_IMPORTS, IMPORTS  # noqa: E402
from _driver import _PROBE  # noqa: E402
from _wire import REPLY  # noqa: E402


def _run(python: str, code: str, env: dict[str, str]) -> tuple[float, float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1e3
    out = proc.stdout.read().decode() if proc.stdout else ""
    if status or not out.strip().endswith("True"):
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{python}: the probe failed:\n{out}\n{err[-2000:]}")
    return (usage.ru_utime + usage.ru_stime) * 1e3, wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--clients", default="httpx2,httpx2+pydantic,openai,turnout")
    parser.add_argument("--python", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    pythons = dict(pair.split("=", 1) for pair in args.python)
    names = args.clients.split(",") + [n for n in pythons if n not in args.clients.split(",")]
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "_server.py"), "--port", "0", "--chunks", "64"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().split()[2]  # "listening on <url> (<loop>)"
        results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
        for i in range(args.runs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                client = name.split(":")[0].removesuffix("+pydantic")
                statement = FLOOR_IMPORTS[client] if name.endswith("+pydantic") else IMPORTS[client]
                code = _PROBE.format(statement=statement, here=HERE, name=client, base_url=base_url, reply=REPLY)
                results[name].append(_run(pythons.get(name, sys.executable), code, dict(os.environ)))
    finally:
        server.terminate()
    base = sorted(r[0] for r in results["httpx2"])
    print(f"{args.runs} runs; CPU ms (best, median, quartiles), wall ms median, peak RSS MiB median; ratio to httpx2")
    for name, rows in results.items():
        cpu, wall, rss = (sorted(col) for col in zip(*rows, strict=True))
        q1, med, q3 = statistics.quantiles(cpu, n=4)
        print(
            f"{name:18} cpu best {cpu[0]:6.0f} median {med:6.0f} ({q1:.0f}-{q3:.0f})  "
            f"best/httpx2 {cpu[0] / base[0]:.2f}x median/httpx2 {med / statistics.median(base):.2f}x  "
            f"wall {statistics.median(wall):6.0f}  rss {statistics.median(rss):5.1f}"
        )


if __name__ == "__main__":
    main()
