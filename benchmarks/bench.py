"""Benchmark turnout against raw httpx2, the openai SDK and LiteLLM, side by side in one run.

    python benchmarks/bench.py                       # defaults: 3 rounds, every client that is installed
    python benchmarks/bench.py --quick               # smoke test: 1 small round
    python benchmarks/bench.py --clients turnout,httpx2 --python turnout=/path/to/venv/bin/python
    python benchmarks/bench.py --clients httpx2,turnout,turnout:branch --python turnout:branch=/other/venv/bin/python

A fake OpenAI server (``_server.py``) runs on 127.0.0.1 in its own process; each client runs in
its own interpreter (``_driver.py``), so imports never mix. Interpreters: ``--python NAME=PATH``,
else ``$TURNOUT_BENCH_<NAME>_PYTHON``, else ``<venvs>/<name>/bin/python`` when it exists (not for
turnout, which defaults to this interpreter: the checkout under test), else this interpreter.
``NAME:LABEL`` runs NAME's driver once more under its own interpreter (an A/B of two turnout
builds in one run). The server prefers ``<venvs>/server/bin/python`` (uvloop). With two or more
CPUs the server is pinned to one and the drivers to another (``taskset``). Rounds rotate the
client order; each run waits for a quiet machine and is repeated if other processes disturbed it.

Prints medians, ratios and the targets of issue 7; writes ``results/<UTC time>.json`` (every
run), ``results/latest.json`` and ``results/latest.md``. Exits 1 if a client failed or any
reply's text was wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = ("httpx2", "openai", "turnout", "litellm")
#: Distributions whose versions are reported for each client (the first one must be installed).
PACKAGES = {
    "httpx2": ["httpx2", "httpcore2"],
    "openai": ["openai", "httpx2", "pydantic"],
    "turnout": ["turnout", "httpx2", "pydantic", "genai-prices"],
    "litellm": ["litellm", "openai", "httpx", "aiohttp"],
}


class Metric(NamedTuple):
    key: str
    heading: str
    higher_is_better: bool


METRICS = [
    Metric("import_ms", "import ms", False),
    Metric("first_call_ms", "1st call ms", False),
    Metric("sync_p50_us", "sync p50 µs", False),
    Metric("sync_cpu_us", "sync CPU µs/call", False),
    Metric("async_calls_s", "async calls/s @64", True),
    Metric("stream_chunks_s", "stream chunks/s", True),
    Metric("stream_cpu_us", "stream CPU µs/chunk", False),
    Metric("rss_mib", "RSS MiB", False),
]
LAYER = [
    ("layer_us", "whole client layer above the provider, config price"),
    ("layer_catalogue_us", "whole client layer above the provider, genai-prices catalogue price"),
    ("checks_us", "argument checks alone (ChatRequest from the messages)"),
    ("pricing_us", "Pricing.cost alone, config price"),
    ("pricing_catalogue_us", "Pricing.cost alone, genai-prices catalogue price"),
    ("bookkeeping_us", "routing + retry/fallback bookkeeping = layer − checks − pricing (config price)"),
]


class Target(NamedTuple):
    label: str
    key: str
    base: str
    goal: float
    at_most: bool


TARGETS = [
    Target("import ≤ 0.25× openai", "import_ms", "openai", 0.25, True),
    Target("per-call CPU ≤ 1.5× httpx2", "sync_cpu_us", "httpx2", 1.5, True),
    Target("per-call CPU ≤ 0.5× openai", "sync_cpu_us", "openai", 0.5, True),
    Target("stream chunks/s ≥ 0.7× httpx2", "stream_chunks_s", "httpx2", 0.7, False),
    Target("async calls/s @64 ≥ 0.8× httpx2", "async_calls_s", "httpx2", 0.8, False),
    Target("RSS ≤ openai", "rss_mib", "openai", 1.0, True),
]
BOOKKEEPING_LIMIT_US = 50.0
_VERSIONS = """import importlib.metadata as m, json, platform, sys
versions, source = {}, "PyPI"
for name in sys.argv[1:]:
    try:
        versions[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
try:  # where the measured package came from (PEP 610), e.g. an editable checkout
    url = json.loads(m.distribution(sys.argv[1]).read_text("direct_url.json") or "{}")
    if url:
        editable = url.get("dir_info", {}).get("editable")
        source = ("editable " if editable else "") + url.get("url", "?").removeprefix("file://")
except m.PackageNotFoundError:
    pass
print(json.dumps({"python": platform.python_version(), "versions": versions, "source": source}))"""


def _parse_pythons(pairs: Sequence[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or _driver(name) not in CLIENTS:
            raise SystemExit(f"--python wants NAME[:LABEL]=PATH, NAME one of {', '.join(CLIENTS)}: got {pair!r}")
        found[name] = path
    return found


def _driver(name: str) -> str:
    """The client driver behind a name: ``turnout:branch`` runs the ``turnout`` driver."""
    return name.partition(":")[0]


def interpreter(name: str, args: argparse.Namespace) -> str:
    """The interpreter that runs client ``name`` (see the module docstring for the order)."""
    if name in args.python:
        return str(args.python[name])
    if env := os.environ.get(f"TURNOUT_BENCH_{name.upper().replace(':', '_')}_PYTHON"):
        return env
    venv = os.path.join(args.venvs, name.replace(":", "-"), "bin", "python")
    if name != "turnout" and os.path.exists(venv):
        return venv
    return sys.executable


def installed(python: str, packages: list[str]) -> dict[str, Any] | None:
    """Python and package versions in ``python``'s environment; None if the interpreter fails."""
    try:
        out = subprocess.run([python, "-c", _VERSIONS, *packages], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    info: dict[str, Any] = json.loads(out.stdout)
    return info


def cpu_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (``/proc/stat``; 0 where there is none)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
    }


class Server:
    """The fake server in its own process, pinned if asked; a context manager."""

    def __init__(self, python: str, chunks: int, pin: list[str]) -> None:
        self.command = [*pin, python, os.path.join(HERE, "_server.py"), "--port", "0", "--chunks", str(chunks)]

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.process.kill()
            raise SystemExit(f"the fake server did not start: {line!r}")
        self.url, loop = line.split()[2], line.split()[3]
        self.loop = loop.strip("()")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def wait_quiet(max_other_pct: float, max_wait: float) -> float:
    """Wait until the rest of the machine uses under ``max_other_pct`` % of a core over 5 s; return the last level."""
    if max_wait <= 0:
        return 0.0
    deadline = time.monotonic() + max_wait
    while True:
        busy, start = cpu_busy_seconds(), time.monotonic()
        time.sleep(5)
        level = 100 * (cpu_busy_seconds() - busy) / (time.monotonic() - start)
        if level < max_other_pct or time.monotonic() > deadline:
            return level


def measure(name: str, python: str, server: Server, args: argparse.Namespace) -> dict[str, Any] | None:
    """One run of one client on a quiet machine: wait for quiet, run, and retry a run that others disturbed.

    Of the tries, the least disturbed run is kept; ``tries`` records how many were made.
    """
    results: list[dict[str, Any]] = []
    for _ in range(args.tries):
        level = wait_quiet(args.max_other_cpu, args.max_wait)
        if level >= args.max_other_cpu:
            print(f"  still busy after {args.max_wait} s ({level:.0f} % of a core); measuring anyway", file=sys.stderr)
        result = run_driver(name, python, server, args)
        if result is None:
            return None
        results.append(result)
        if result["other_cpu_pct"] <= args.max_other_cpu:
            break
        print(f"  disturbed ({result['other_cpu_pct']:.0f} % other CPU); measuring again", file=sys.stderr)
    return {**min(results, key=lambda r: float(r["other_cpu_pct"])), "tries": len(results)}


def run_driver(name: str, python: str, server: Server, args: argparse.Namespace) -> dict[str, Any] | None:
    """One measurement of one client; adds ``other_cpu_pct``, the CPU used by the rest of the machine."""
    counts = ["--import-runs", "--warmup", "--n-sync", "--n-async", "--concurrency", "--n-stream", "--chunks"]
    counts += ["--n-layer"]
    command = [*args.pin[1], python, os.path.join(HERE, "_driver.py"), _driver(name), "--base-url", server.url]
    command += ["--server-pid", str(server.process.pid)]
    for flag in counts:
        command += [flag, str(getattr(args, flag[2:].replace("-", "_")))]
    busy, served, own, wall = (
        cpu_busy_seconds(),
        process_cpu_seconds(server.process.pid),
        os.times(),
        time.perf_counter(),
    )
    try:
        proc = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"  {name}: timed out after {args.timeout} s", file=sys.stderr)
        return None
    wall = time.perf_counter() - wall
    if proc.returncode:
        print(f"  {name} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    end = os.times()
    ours = end.children_user + end.children_system - own.children_user - own.children_system
    other = cpu_busy_seconds() - busy - ours - (process_cpu_seconds(server.process.pid) - served)
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    result["other_cpu_pct"] = max(0.0, 100 * other / wall)
    return result


def num(x: float | None) -> str:
    """A figure with about three significant digits."""
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def table(headings: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, right-aligned."""
    widths = [max(len(r[i]) for r in [headings, *rows]) for i in range(len(headings))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headings), rule, *map(line, rows)])


def medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Per client, the median of each figure over its runs (None where a figure is missing)."""
    out: dict[str, dict[str, float | None]] = {}
    for name, results in runs.items():
        if results:
            keys = {k for r in results for k in r}
            values = {k: [r[k] for r in results if r.get(k) is not None] for k in keys}
            out[name] = {k: statistics.median(v) if v else None for k, v in values.items()}
    return out


def target_rows(med: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    """The issue's targets for turnout: figure, base figure, ratio, goal and whether it is met."""
    rows: list[dict[str, Any]] = []
    turnout = med.get("turnout")
    if turnout is None:
        return rows
    for t in TARGETS:
        ours, base = turnout.get(t.key), med.get(t.base, {}).get(t.key)
        ratio = ours / base if ours is not None and base else None
        met = None if ratio is None else ratio <= t.goal if t.at_most else ratio >= t.goal
        rows.append({"target": t.label, "turnout": ours, "base": base, "ratio": ratio, "met": met})
    value = turnout.get("bookkeeping_us")
    met = None if value is None else value < BOOKKEEPING_LIMIT_US
    rows.append(
        {"target": "retry/fallback bookkeeping < 50 µs/call", "turnout": value, "base": None, "ratio": None, "met": met}
    )
    return rows


def report(doc: dict[str, Any]) -> str:
    """The Markdown report: settings, medians, targets, ratios, turnout's layer, versions."""
    med, runs, s = doc["medians"], doc["runs"], doc["settings"]
    mach = doc["machine"]
    parts = [
        f"# turnout benchmark, {doc['when']}",
        f"{mach['cpu']}, {mach['cpus']} CPUs, {mach['platform']}; benchmark code at {mach['commit']}. "
        f"Medians of {s['runs']} round(s){' (quick)' if s['quick'] else ''}; server on {doc['server_loop']}, "
        f"pinned: {s['pinned']}. Counts: {s['n_sync']} sync calls, {s['n_async']} async calls from "
        f"{s['concurrency']} tasks, {s['n_stream']} streams of {s['chunks']} chunks, "
        f"{s['import_runs']} fresh interpreters for imports. A run during which other processes used more than "
        f"{s['max_other_cpu']:g} % of a core was measured again (up to {s['tries']} tries; the least disturbed kept).",
    ]
    heads = ["client", *(k.heading for k in METRICS), "server CPU %", "other CPU %", "spread %"]
    rows = []
    for name, values in med.items():
        spread = max(
            (
                100 * (max(v) - min(v)) / statistics.median(v)
                for v in ([r[k.key] for r in runs[name]] for k in METRICS)
                if statistics.median(v)
            ),
            default=0.0,
        )
        server = max(values.get(f"{p}_server_pct") or 0.0 for p in ("sync", "async", "stream"))
        row = [name, *(num(values.get(k.key)) for k in METRICS), num(server), num(values.get("other_cpu_pct"))]
        rows.append([*row, num(spread)])
    parts += ["## Medians", table(heads, rows)]
    if doc["targets"]:
        rows = [
            [
                t["target"],
                num(t["turnout"]),
                num(t["base"]),
                "—" if t["ratio"] is None else f"{t['ratio']:.2f}×",
                {True: "yes", False: "**no**", None: "—"}[t["met"]],
            ]
            for t in doc["targets"]
        ]
        parts += [
            "## turnout against the targets of issue 7",
            table(["target", "turnout", "base", "ratio", "met"], rows),
        ]
    for base in ("httpx2", "openai"):
        if base in med:
            rows = [
                [name, *(_ratio(values.get(k.key), med[base].get(k.key)) for k in METRICS)]
                for name, values in med.items()
            ]
            parts += [
                f"## Relative to {base} (client ÷ {base}; for calls/s and chunks/s higher is better, else lower)",
                table(["client", *(k.heading for k in METRICS)], rows),
            ]
    builds = [name for name in med if _driver(name) == "turnout"]
    if builds:
        rows = [[label, *(num(med[b].get(key)) for b in builds)] for key, label in LAYER]
        parts += ["## turnout's own cost per call, stub provider, no I/O (µs)", table(["what", *builds], rows)]
    rows = [
        [
            name,
            info["python"],
            ", ".join(f"{p} {v}" for p, v in info["versions"].items()),
            info.get("source", "?"),
            info["interpreter"],
        ]
        for name, info in doc["clients"].items()
    ]
    parts += ["## Versions", table(["client", "python", "packages", "installed from", "interpreter"], rows)]
    return "\n\n".join(parts) + "\n"


def _ratio(value: float | None, base: float | None) -> str:
    return "—" if value is None or not base else f"{value / base:.2f}×"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every count for a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated, from: " + ", ".join(CLIENTS))
    parser.add_argument("--python", action="append", default=[], metavar="NAME=PATH", help="interpreter of a client")
    parser.add_argument("--server-python", help="default: <venvs>/server/bin/python if present, else this one")
    parser.add_argument("--venvs", default=os.environ.get("TURNOUT_BENCH_VENVS", "/tmp/benchvenvs"))
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--import-runs", type=int, default=3, help="fresh interpreters per import figure")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--n-sync", type=int, default=500)
    parser.add_argument("--n-async", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--n-stream", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=5000)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per client run")
    parser.add_argument("--max-other-cpu", type=float, default=10.0, help="%% of a core others may use during a run")
    parser.add_argument("--tries", type=int, default=3, help="runs per measurement when others disturb it")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.import_runs, args.warmup = 1, 2, 10
        args.n_sync, args.n_async, args.n_stream, args.n_layer = 100, 200, 20, 1000
        args.tries, args.max_wait = 1, 0.0
    args.python = _parse_pythons(args.python)
    args.tries = max(1, args.tries)
    wanted = args.clients.split(",")
    if unknown := {name for name in wanted if _driver(name) not in CLIENTS}:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    args.clients = wanted
    pinned = not args.no_pin and shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    cpus = sorted(os.sched_getaffinity(0))
    args.pin = (["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]) if pinned else ([], [])
    args.pinned = pinned
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    clients: dict[str, dict[str, Any]] = {}
    for name in args.clients:
        python = interpreter(name, args)
        packages = PACKAGES[_driver(name)]
        info = installed(python, packages)
        if info is None or packages[0] not in info["versions"]:
            print(f"skipping {name}: {packages[0]} is not installed for {python}", file=sys.stderr)
            continue
        clients[name] = {**info, "interpreter": python}
    if not clients:
        print("no client to measure", file=sys.stderr)
        return 1
    server_python = args.server_python or os.path.join(args.venvs, "server", "bin", "python")
    if not os.path.exists(server_python):
        server_python = sys.executable
    names = list(clients)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    failed = False
    with Server(server_python, args.chunks, args.pin[0]) as server:
        for i in range(args.runs):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                print(f"round {i + 1}/{args.runs}: {name}", file=sys.stderr, flush=True)
                result = measure(name, clients[name]["interpreter"], server, args)
                failed |= result is None or result["bad_replies"] > 0
                if result is not None:
                    runs[name].append(result)
    med = medians(runs)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    settings = {k: getattr(args, k) for k in ("runs", "quick", "import_runs", "warmup", "n_sync", "n_async")}
    settings |= {k: getattr(args, k) for k in ("concurrency", "n_stream", "chunks", "n_layer", "pinned")}
    settings |= {k: getattr(args, k) for k in ("max_other_cpu", "tries", "max_wait")}
    doc = {
        "when": stamp,
        "machine": machine(),
        "server_loop": server.loop,
        "settings": settings,
        "clients": clients,
        "runs": runs,
        "medians": med,
        "targets": target_rows(med),
    }
    text = report(doc)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    for name in (stamp, "latest"):
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text)
    print(f"wrote {args.out}/{stamp}.json, latest.json and latest.md", file=sys.stderr)
    if failed:
        print("FAILED: a client failed or returned a wrong reply (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
