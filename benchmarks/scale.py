"""Scale: turnout with many calls in flight at once, against the fake server in another process.

    python benchmarks/scale.py                      # ~1-2 min: 1,000 async streams, 256 threads, the CPU curve
    python benchmarks/scale.py --streams 200 --threads 64 --levels 1,16,64   # smaller
    python benchmarks/scale.py --svg docs/images/cpu-per-call.svg            # also draw the curve

Each part runs in a fresh interpreter (``--part``), so its memory is its own:

- ``streams``: ``--streams`` streamed calls at once on one event loop (one `AsyncClient`, its
  pool raised with the provider's ``max_connections`` key). Every stream reads its first chunk,
  then all wait until every one has; resident memory and open file descriptors are read there,
  with all of them in flight. Memory per stream = (that − before) ÷ streams.
- ``threads``: ``--threads`` threads share one `Client`; each makes a call, then all wait at a
  barrier (memory read there), then each makes ``--calls`` more.
- ``curve``: process CPU per call of ``--calls-per-level`` async chat calls at each concurrency
  of ``--levels``, for turnout and for raw httpx2 (``_clients.py``'s drivers).

Every call must return the server's text, none may take longer than the provider's timeout
(``--deadline``), and after the client is closed the process must hold as many file
descriptors as before it was created. Prints a JSON report (``--out`` writes it too); exits 1
when a check fails. Standard library only, besides turnout and httpx2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _wire import MESSAGES, MODEL, REPLY, stream_pieces  # noqa: E402


def rss_mib() -> float:
    """Resident memory now (not the peak), from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """File descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _config(url: str, connections: int, deadline: float) -> dict[str, Any]:
    provider = {"type": "openai", "base_url": url, "api_key": "sk-bench", "max_connections": connections}
    return {"providers": {"bench": {**provider, "timeout": deadline}}}


def part_streams(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``args.streams`` streams in flight at once: memory and descriptors per stream, then all finished."""
    import turnout

    expected = "".join(stream_pieces(args.chunks))
    fds = open_fds()
    client = turnout.AsyncClient(config=_config(url, args.streams, args.deadline))
    all_started = asyncio.Event()
    started, durations, bad = 0, [], 0
    peak: dict[str, float] = {}

    async def one() -> None:
        nonlocal started, bad
        begin = time.perf_counter()
        async with client.stream(model=f"bench:{MODEL}", messages=MESSAGES) as chunks:
            parts = []
            async for chunk in chunks:
                parts.append(chunk.text or "")
                if len(parts) == 1:
                    started += 1
                    if started == args.streams:
                        gc.collect()
                        peak.update(rss_mib=rss_mib(), fds=open_fds())
                        all_started.set()
                    await all_started.wait()
        durations.append(time.perf_counter() - begin)
        bad += "".join(parts) != expected

    async def main() -> float:
        async with client.stream(model=f"bench:{MODEL}", messages=MESSAGES) as chunks:  # warm: imports, caches
            [chunk async for chunk in chunks]
        gc.collect()
        before = rss_mib()
        await asyncio.gather(*(one() for _ in range(args.streams)))
        await client.aclose()
        return before

    cpu, wall = time.process_time(), time.perf_counter()
    rss: float = asyncio.run(main())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    gc.collect()
    return {
        "streams": args.streams,
        "rss_before_mib": rss,
        "rss_in_flight_mib": peak["rss_mib"],
        "kib_per_stream": (peak["rss_mib"] - rss) * 1024 / args.streams,
        "fds_before": fds,
        "fds_in_flight": peak["fds"],
        "fds_after": open_fds(),
        "slowest_s": max(durations),
        "wall_s": wall,
        "cpu_s": cpu,
        "bad": bad + args.streams - len(durations),
    }


def part_threads(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``args.threads`` threads sharing one client: memory per thread in flight, then ``args.calls`` calls each."""
    import turnout

    fds = open_fds()
    client = turnout.Client(config=_config(url, args.threads, args.deadline))
    client.chat(model=f"bench:{MODEL}", messages=MESSAGES)  # warm: imports, caches, one connection
    gc.collect()
    rss = rss_mib()
    barrier = threading.Barrier(args.threads + 1)
    durations: list[float] = []
    bad = 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal bad
        begin = time.perf_counter()
        text = client.chat(model=f"bench:{MODEL}", messages=MESSAGES).text
        with lock:
            durations.append(time.perf_counter() - begin)
            bad += text != REPLY

    def work() -> None:
        call()
        barrier.wait()  # every thread alive, with its connection open
        barrier.wait()
        for _ in range(args.calls):
            call()

    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    cpu, wall = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    barrier.wait()
    gc.collect()
    in_flight, fds_in_flight = rss_mib(), open_fds()
    barrier.wait()
    for thread in threads:
        thread.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    client.close()
    gc.collect()
    calls = args.threads * (args.calls + 1)
    return {
        "threads": args.threads,
        "calls": calls,
        "rss_before_mib": rss,
        "rss_in_flight_mib": in_flight,
        "kib_per_thread": (in_flight - rss) * 1024 / args.threads,
        "fds_before": fds,
        "fds_in_flight": fds_in_flight,
        "fds_after": open_fds(),
        "slowest_s": max(durations),
        "cpu_us_per_call": cpu / calls * 1e6,
        "wall_s": wall,
        "bad": bad + calls - len(durations),
    }


def part_curve(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Process CPU per async call at each concurrency, for turnout and raw httpx2."""
    from _clients import setup

    levels = [int(x) for x in args.levels.split(",")]
    out: dict[str, Any] = {"levels": levels}
    for name in ("httpx2", "turnout"):
        achat = setup(name, url)[1]
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(achat())  # warm: pool open, caches filled
        per_level, bad = [], 0
        for level in levels:
            left = args.calls_per_level

            async def task() -> None:
                nonlocal left, bad
                while left > 0:
                    left -= 1
                    bad += await achat() != REPLY  # noqa: B023 - the driver of this round

            async def run(level: int = level) -> None:
                await asyncio.gather(*(task() for _ in range(level)))

            cpu = time.process_time()
            loop.run_until_complete(run())
            per_level.append((time.process_time() - cpu) / args.calls_per_level * 1e6)
        out[name] = {"cpu_us_per_call": per_level, "bad": bad}
        loop.close()
    return out


PARTS = {"streams": part_streams, "threads": part_threads, "curve": part_curve}


def svg(curve: dict[str, Any]) -> str:
    """The CPU-per-call curve as a small self-contained SVG (log-scale concurrency)."""
    import math

    width, height, left, bottom, top, right = 560, 300, 60, 40, 20, 110
    levels = curve["levels"]
    series = {"turnout": "#1f77b4", "httpx2": "#999999"}
    ymax = float(max(v for name in series for v in curve[name]["cpu_us_per_call"])) * 1.15
    xs = [math.log2(x) for x in levels]
    x0, x1 = min(xs), max(xs) or 1

    def px(i: int) -> float:
        return left + (xs[i] - x0) / ((x1 - x0) or 1) * (width - left - right)

    def py(v: float) -> float:
        return height - bottom - v / ymax * (height - bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">concurrent calls '
        "(tasks on one event loop)</text>",
        f'<text x="14" y="{(top + height - bottom) / 2}" transform="rotate(-90 14 {(top + height - bottom) / 2})" '
        'text-anchor="middle">process CPU µs per call</text>',
    ]
    for i, level in enumerate(levels):
        parts.append(f'<text x="{px(i):.1f}" y="{height - bottom + 14}" text-anchor="middle">{level}</text>')
    for step in range(5):
        value = ymax / 5 * step
        parts.append(f'<text x="{left - 6}" y="{py(value) + 4:.1f}" text-anchor="end">{value:.0f}</text>')
    for n, (name, colour) in enumerate(series.items()):
        values = curve[name]["cpu_us_per_call"]
        points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>' for i, v in enumerate(values)]
        y = top + 14 + 16 * n
        parts.append(
            f'<line x1="{width - right + 12}" y1="{y - 4}" x2="{width - right + 32}" y2="{y - 4}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{width - right + 36}" y="{y}">{"raw httpx2" if name == "httpx2" else name}</text>')
    return "\n".join([*parts, "</svg>"]) + "\n"


def check(report: dict[str, Any], deadline: float) -> list[str]:
    """What went wrong: wrong replies, calls past the deadline, descriptors not given back."""
    problems = []
    for name in ("streams", "threads"):
        part = report.get(name)
        if part is None:
            continue
        if part["bad"]:
            problems.append(f"{name}: {part['bad']} calls failed or returned the wrong text")
        if part["slowest_s"] > deadline:
            problems.append(f"{name}: a call took {part['slowest_s']:.1f} s, past the {deadline:g} s deadline")
        if part["fds_after"] > part["fds_before"]:
            problems.append(f"{name}: {part['fds_after'] - part['fds_before']} file descriptors left open")
    curve = report.get("curve")
    if curve and (curve["turnout"]["bad"] or curve["httpx2"]["bad"]):
        problems.append("curve: wrong replies")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Start the server, run each part in its own interpreter, report and check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--calls", type=int, default=10, help="calls per thread after the barrier")
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--levels", default="1,4,16,64,256,1000")
    parser.add_argument("--calls-per-level", type=int, default=2000)
    parser.add_argument("--deadline", type=float, default=60.0, help="the provider's timeout, seconds")
    parser.add_argument("--parts", default="streams,threads,curve")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the JSON report here")
    parser.add_argument("--svg", help="draw the CPU-per-call curve into this SVG file")
    args = parser.parse_args(argv)
    _raise_fd_limit()
    if args.part:  # a child: one part, its JSON on stdout
        print(json.dumps(PARTS[args.part](args.url, args)))
        return 0
    from bench import Server

    report: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))}
    env.setdefault("TURNOUT_LEDGER", os.path.join("/tmp", f"turnout-scale-{os.getpid()}.sqlite3"))
    with Server(sys.executable, args.chunks, []) as server:
        for part in args.parts.split(","):
            print(f"{part}...", file=sys.stderr, flush=True)
            options = ("streams", "threads", "calls", "chunks", "levels", "calls_per_level", "deadline")
            forwarded = [x for key in options for x in (f"--{key.replace('_', '-')}", str(getattr(args, key)))]
            command = [sys.executable, __file__, *forwarded, "--part", part, "--url", server.url]
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            report[part] = json.loads(done.stdout)
    problems = check(report, args.deadline)
    report["problems"] = problems
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.svg and "curve" in report:
        with open(args.svg, "w") as f:
            f.write(svg(report["curve"]))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
