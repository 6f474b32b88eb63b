"""Benchmark turnout against raw httpx2, the openai SDK and LiteLLM, side by side in one run.

    python benchmarks/bench.py                       # defaults: every client that is installed, ~3-5 min
    python benchmarks/bench.py --quick               # smoke test
    python benchmarks/bench.py --clients turnout,httpx2 --python turnout=/path/to/venv/bin/python
    python benchmarks/bench.py --clients httpx2,turnout,turnout:branch --python turnout:branch=/other/venv/bin/python

A fake OpenAI server (``_server.py``) runs on 127.0.0.1 in its own process, and each client in
its own interpreter (``_driver.py``, a worker that stays up), so imports never mix. Interpreters:
``--python NAME=PATH``, else ``$TURNOUT_BENCH_<NAME>_PYTHON``, else ``<venvs>/<name>/bin/python``
when it exists (not for turnout, which defaults to this interpreter: the checkout under test),
else this interpreter. ``NAME:LABEL`` runs NAME's driver once more under its own interpreter (an
A/B of two turnout builds in one run). The server prefers ``<venvs>/server/bin/python`` (uvloop).
With two or more CPUs the server is pinned to one CPU and the workers to another (``taskset``).

The work is cut into short blocks (``--blocks`` of each phase per client), run in turn, client
after client, so that a block of turnout and the block of httpx2 it is compared with are seconds
apart: the drift of a shared machine cancels in their ratio. A block during which other
processes used more than ``--max-other-cpu`` % of a core is measured again.

Prints medians, ratios and the targets of issues 7 and 19; writes ``results/<UTC time>.json`` (every
block), ``results/latest.json`` and ``results/latest.md``. Exits 1 if a client failed or any
reply's text was wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    Metric("first_reply_ms", "1st reply, fresh process ms", False),
    Metric("sync_p50_us", "sync p50 µs", False),
    Metric("sync_p99_us", "sync p99 µs", False),
    Metric("sync_cpu_us", "sync CPU µs/call", False),
    Metric("async_calls_s", "async calls/s @64", True),
    Metric("stream_chunks_s", "stream chunks/s", True),
    Metric("stream_cpu_us", "stream CPU µs/chunk", False),
    Metric("long_cpu_us", "1,000-msg CPU µs/call", False),
    Metric("rss_mib", "RSS MiB", False),
]
LAYER = [
    ("layer_us", "whole client layer above the provider, config price, spend ledger on"),
    ("layer_catalogue_us", "whole client layer above the provider, genai-prices catalogue price, ledger on"),
    ("layer_no_ledger_us", "whole client layer above the provider, config price, spend ledger off"),
    ("ledger_us", "spend ledger (one SQLite row per call, written in batches) = layer − layer without it"),
    ("checks_us", "argument checks alone (ChatRequest from the messages)"),
    ("pricing_us", "Pricing.cost alone, config price"),
    ("pricing_catalogue_us", "Pricing.cost alone, genai-prices catalogue price"),
    ("bookkeeping_us", "routing + retry/fallback bookkeeping = layer without ledger − checks − pricing"),
    ("telemetry_noop_us", "telemetry on, OpenTelemetry API without an SDK (no-op) = layer with it − without"),
    ("telemetry_sdk_us", "telemetry on, SDK recording spans (in-memory exporter) and metrics = layer with − without"),
    ("state_us", "[state] on localhost Redis (open circuits read before sending) = layer with − without (ledger off)"),
    ("state_budget_us", "[state] + [budget] on localhost Redis (hold before, commit after) = layer with − without"),
    ("cache_miss_us", "[cache] in memory, every call a miss (key, lookup, store) = layer with − without (ledger off)"),
    ("cache_hit_us", "[cache] in memory, every call a hit: the whole call, nothing sent (ledger off)"),
]


class Target(NamedTuple):
    label: str
    key: str
    base: str
    goal: float
    at_most: bool
    base_key: str | None = None  # the base's figure to compare with, when not ``key``


TARGETS = [
    Target("import ≤ 0.25× openai", "import_ms", "openai", 0.25, True),
    Target("per-call CPU ≤ 1.5× httpx2", "sync_cpu_us", "httpx2", 1.5, True),
    Target("per-call CPU ≤ 0.5× openai", "sync_cpu_us", "openai", 0.5, True),
    Target("stream chunks/s ≥ 0.7× httpx2", "stream_chunks_s", "httpx2", 0.7, False),
    Target("async calls/s @64 ≥ 0.8× httpx2", "async_calls_s", "httpx2", 0.8, False),
    Target("RSS ≤ openai", "rss_mib", "openai", 1.0, True),
    # issue 19: fast from the first call
    Target("first reply (fresh process) ≤ 1.6× httpx2", "first_reply_ms", "httpx2", 1.6, True),
    Target(
        "first reply (fresh process) ≤ 1.6× httpx2 + pydantic",
        "first_reply_ms",
        "httpx2",
        1.6,
        True,
        "first_reply_floor_ms",
    ),
    Target("sync p99 ≤ 1.3× httpx2 (ledger on)", "sync_p99_us", "httpx2", 1.3, True),
    Target("per-call CPU ≤ 1.15× httpx2", "sync_cpu_us", "httpx2", 1.15, True),
    Target("1,000-message call CPU ≤ 1.15× httpx2", "long_cpu_us", "httpx2", 1.15, True),
    Target("async calls/s @64 ≥ 0.95× httpx2", "async_calls_s", "httpx2", 0.95, False),
    Target("stream chunks/s ≥ 0.95× httpx2", "stream_chunks_s", "httpx2", 0.95, False),
    Target("RSS ≤ 0.85× openai", "rss_mib", "openai", 0.85, True),
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


def wait_quiet(max_other_pct: float, max_wait: float) -> None:
    """Wait (at most ``max_wait`` s) until the machine uses under ``max_other_pct`` % of a core over 2 s."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        busy, start = cpu_busy_seconds(), time.monotonic()
        time.sleep(2)
        if 100 * (cpu_busy_seconds() - busy) / (time.monotonic() - start) < max_other_pct:
            return


class WorkerDied(RuntimeError):
    """A client's worker exited or stopped answering."""


class Worker:
    """Orchestrator side of one ``_driver.py`` worker: send a JSON command, read a JSON answer."""

    def __init__(self, name: str, python: str, url: str, args: argparse.Namespace) -> None:
        self.name, self.timeout = name, args.timeout
        command = [*args.pin[1], python, os.path.join(HERE, "_driver.py"), _driver(name), "--base-url", url]
        command += ["--warmup", str(args.warmup), "--concurrency", str(args.concurrency), "--chunks", str(args.chunks)]
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            command, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        assert self.process.stdout is not None
        self._fd, self._buffer = self.process.stdout.fileno(), b""

    def _answer(self) -> dict[str, Any]:
        """The next JSON object the worker prints (other output from its libraries is skipped)."""
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\n" not in self._buffer:
                if not select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise WorkerDied(f"{self.name}: no answer within {self.timeout} s")
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    self.stderr.seek(0)
                    raise WorkerDied(f"{self.name} exited:\n{self.stderr.read()[-3000:]}")
                self._buffer += chunk
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.startswith(b"{"):
                answer: dict[str, Any] = json.loads(line)
                return answer

    def ready(self) -> None:
        """Wait until the worker has set up and warmed up its client."""
        self._answer()

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one command in the worker."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # _answer reports the exit
        return self._answer()

    def close(self) -> None:
        """End the worker (it exits when its stdin closes)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_block(worker: Worker, command: dict[str, Any], server_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """One block, measured again (after waiting for quiet) if other processes disturbed it."""
    for tries in range(1, args.tries + 1):
        busy, served = cpu_busy_seconds(), process_cpu_seconds(server_pid)
        result = worker.ask(command)
        server = process_cpu_seconds(server_pid) - served
        other = max(0.0, cpu_busy_seconds() - busy - result["cpu"] - server)
        # /proc/stat counts 10 ms ticks: a short block needs two ticks of others to count as disturbed
        if other <= max(args.max_other_cpu / 100 * result["wall"], 0.02) or tries == args.tries:
            break
        wait_quiet(args.max_other_cpu, args.max_wait)
    wall = result["wall"]
    return {**result, "other_cpu_pct": 100 * other / wall, "server_pct": 100 * server / wall, "tries": tries}


def _rotate(names: list[str], i: int) -> list[str]:
    return names[i % len(names) :] + names[: i % len(names)]


class Session:
    """Every client's worker, and the records of what they measured."""

    def __init__(self, clients: dict[str, dict[str, Any]], server: Server, args: argparse.Namespace) -> None:
        self.names, self.server, self.args = list(clients), server, args
        self.workers = {name: Worker(name, clients[name]["interpreter"], server.url, args) for name in clients}
        self.records: dict[str, dict[str, Any]] = {
            name: {"import": [], "sync": [], "async": [], "stream": [], "long": [], "cli": []} for name in clients
        }
        self.failed: list[str] = []

    def _run(self, name: str, op: str, command: dict[str, Any], index: int) -> None:
        if name in self.failed:
            return
        try:
            if op == "ready":
                self.workers[name].ready()
                return
            record = run_block(self.workers[name], command, self.server.process.pid, self.args)
        except WorkerDied as exc:
            print(f"  {exc}", file=sys.stderr)
            self.failed.append(name)
            return
        self.records[name][op].append({**record, "index": index})

    def _imports(self) -> None:
        """Fresh interpreters: imports, first replies and (turnout) the CLI end to end."""
        for i in range(self.args.import_runs):
            print(f"imports {i + 1}/{self.args.import_runs}", file=sys.stderr, flush=True)
            for name in _rotate(self.names, i):
                self._run(name, "import", {"op": "import"}, i)
                if _driver(name) == "turnout":
                    self._run(name, "cli", {"op": "cli"}, i)

    def measure(self) -> None:
        """Import probes, then the blocks of each phase, client after client; then memory and turnout's layer."""
        args = self.args
        for name in self.names:
            self._run(name, "ready", {}, 0)
        self._imports()
        commands = {
            "sync": {"op": "sync", "n": args.sync_calls},
            "async": {"op": "async", "n": args.async_calls, "concurrency": args.concurrency},
            "stream": {"op": "stream", "n": args.streams},
            "long": {"op": "long", "n": args.long_calls},
        }
        for b in range(args.blocks):
            print(f"block {b + 1}/{args.blocks}", file=sys.stderr, flush=True)
            for op, command in commands.items():
                for name in _rotate(self.names, b):
                    self._run(name, op, command, b)
        for name in [n for n in self.names if n not in self.failed]:
            try:
                self.records[name]["rss_mib"] = self.workers[name].ask({"op": "rss"})["rss_mib"]
                if _driver(name) == "turnout":
                    self.records[name]["layer"] = self.workers[name].ask({"op": "layer", "n": args.n_layer})
            except WorkerDied as exc:
                print(f"  {exc}", file=sys.stderr)
                self.failed.append(name)

    def close(self) -> None:
        """End every worker."""
        for worker in self.workers.values():
            worker.close()


def block_values(records: dict[str, Any], key: str, args: argparse.Namespace) -> dict[int, float]:
    """A metric's value in each block (or import run), by index."""
    per: dict[str, tuple[str, Callable[[dict[str, Any]], float]]] = {
        "import_ms": ("import", lambda r: r["import_ms"]),
        "first_call_ms": ("import", lambda r: r["first_call_ms"]),
        "first_reply_ms": ("import", lambda r: r["first_reply_ms"]),
        "first_reply_floor_ms": ("import", lambda r: r.get("first_reply_floor_ms", float("nan"))),
        "sync_p99_us": ("sync", lambda r: _p99(r["latencies_us"])),
        "long_cpu_us": ("long", lambda r: r["cpu"] / args.long_calls * 1e6),
        "cli_ms": ("cli", lambda r: r["cli_ms"]),
        "sync_cpu_us": ("sync", lambda r: r["cpu"] / args.sync_calls * 1e6),
        "async_calls_s": ("async", lambda r: args.async_calls / r["wall"]),
        "stream_chunks_s": ("stream", lambda r: args.streams * args.chunks / r["wall"]),
        "stream_cpu_us": ("stream", lambda r: r["cpu"] / (args.streams * args.chunks) * 1e6),
    }
    if key not in per:
        return {0: records[key]} if key in records else {}
    op, value = per[key]
    found = {r["index"]: value(r) for r in records.get(op, [])}
    return {i: v for i, v in found.items() if v == v}  # not NaN


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def summarize(records: dict[str, Any], args: argparse.Namespace) -> dict[str, float | None]:
    """One client's figures: medians over its blocks, p50 latency over all its calls, and the rest."""
    out: dict[str, float | None] = {}
    for metric in METRICS:
        values = list(block_values(records, metric.key, args).values())
        out[metric.key] = statistics.median(values) if values else None
    latencies = [x for r in records["sync"] for x in r["latencies_us"]]
    out["sync_p50_us"] = statistics.median(latencies) if latencies else None
    out["sync_p99_us"] = _p99(latencies) if latencies else None
    for key in ("first_reply_floor_ms", "cli_ms"):
        values = list(block_values(records, key, args).values())
        out[key] = statistics.median(values) if values else None
    blocks = [r for op in ("sync", "async", "stream", "long") for r in records[op]]
    out["other_cpu_pct"] = statistics.median(r["other_cpu_pct"] for r in blocks) if blocks else None
    out["server_pct"] = max((r["server_pct"] for r in blocks), default=None)
    spreads = []
    for key in ("sync_cpu_us", "async_calls_s", "stream_chunks_s"):
        values = sorted(block_values(records, key, args).values())
        if len(values) >= 4 and statistics.median(values):
            q1, _, q3 = statistics.quantiles(values, n=4)
            spreads.append(100 * (q3 - q1) / statistics.median(values))
    out["spread_pct"] = max(spreads, default=None)
    out.update(records.get("layer", {}))
    return out


def paired_ratios(
    records: dict[str, Any], name: str, base: str, key: str, args: argparse.Namespace, base_key: str | None = None
) -> list[float]:
    """``name``'s figure ÷ ``base``'s, block by block: the two blocks ran seconds apart."""
    ours, theirs = block_values(records[name], key, args), block_values(records[base], base_key or key, args)
    return sorted(v / theirs[i] for i, v in ours.items() if theirs.get(i))


def target_rows(doc: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Issue 7's targets for each turnout build: its figure, the base's, the median per-block ratio, its quartiles."""
    med, records = doc["medians"], doc["records"]
    rows: list[dict[str, Any]] = []
    for build in [name for name in med if _driver(name) == "turnout"]:
        for t in TARGETS:
            if t.base not in med:
                continue
            ratios = paired_ratios(records, build, t.base, t.key, args, t.base_key)
            ratio = statistics.median(ratios) if ratios else None
            spread = (ratios[0], ratios[-1]) if len(ratios) < 4 else tuple(statistics.quantiles(ratios, n=4)[::2])
            met = None if ratio is None else ratio <= t.goal if t.at_most else ratio >= t.goal
            base = med[t.base].get(t.base_key or t.key)
            row = {"build": build, "target": t.label, "turnout": med[build].get(t.key), "base": base}
            rows.append({**row, "ratio": ratio, "range": spread if ratios else None, "met": met})
        value = med[build].get("bookkeeping_us")
        met = None if value is None else value < BOOKKEEPING_LIMIT_US
        row = {"build": build, "target": "retry/fallback bookkeeping < 50 µs/call", "turnout": value, "base": None}
        rows.append({**row, "ratio": None, "range": None, "met": met})
    return rows


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


def _ratio(value: float | None, base: float | None) -> str:
    return "—" if value is None or not base else f"{value / base:.2f}×"


def report(doc: dict[str, Any]) -> str:
    """The Markdown report: settings, medians, targets, ratios, turnout's own layer, versions."""
    med, s, mach = doc["medians"], doc["settings"], doc["machine"]
    parts = [
        f"# turnout benchmark, {doc['when']}",
        f"{mach['cpu']}, {mach['cpus']} CPUs, {mach['platform']}; benchmark code at {mach['commit']}. "
        f"Server on {doc['server_loop']}, pinned: {s['pinned']}. {s['blocks']} blocks per phase and client, "
        f"run in turn: {s['sync_calls']} sync calls, {s['async_calls']} async calls from {s['concurrency']} tasks, "
        f"{s['streams']} streams of {s['chunks']} chunks; {s['import_runs']} fresh interpreters for imports. "
        f"Blocks during which other processes used more than {s['max_other_cpu']:g} % of a core were measured "
        f"again (up to {s['tries']} tries).",
    ]
    heads = ["client", *(k.heading for k in METRICS), "server CPU %", "other CPU %", "spread %"]
    rows = [
        [name, *(num(v.get(k.key)) for k in METRICS), *(num(v.get(k)) for k in ("server_pct", "other_cpu_pct"))]
        + [num(v.get("spread_pct"))]
        for name, v in med.items()
    ]
    parts += [
        "## Medians\n\nOver blocks; sync p50 over every call. Spread: the widest interquartile range of a "
        "client's per-block sync CPU, async and stream figures, in % of the median.",
        table(heads, rows),
    ]
    if doc["targets"]:
        rows = [
            [
                t["build"],
                t["target"],
                num(t["turnout"]),
                num(t["base"]),
                "—" if t["ratio"] is None else f"{t['ratio']:.2f}×",
                "—" if t["range"] is None else f"{t['range'][0]:.2f}–{t['range'][1]:.2f}×",
                {True: "yes", False: "**no**", None: "—"}[t["met"]],
            ]
            for t in doc["targets"]
        ]
        parts += [
            "## turnout against the targets of issues 7 and 19\n\nRatio: the median over blocks of turnout's block ÷ "
            "the base's block of the same round (seconds apart); range: their quartiles.",
            table(["build", "target", "figure", "base", "ratio", "range", "met"], rows),
        ]
    for base in ("httpx2", "openai"):
        if base in med:
            rows = [[name, *(_ratio(v.get(k.key), med[base].get(k.key)) for k in METRICS)] for name, v in med.items()]
            parts += [
                f"## Relative to {base} (medians ÷ {base}'s; for calls/s and chunks/s higher is better, else lower)",
                table(["client", *(k.heading for k in METRICS)], rows),
            ]
    first = [[name, num(v.get("first_reply_ms"))] for name, v in med.items()]
    first += [
        [f"{name} + pydantic", num(v["first_reply_floor_ms"])]
        for name, v in med.items()
        if v.get("first_reply_floor_ms")
    ]
    first += [[f"`turnout chat` ({name})", num(v["cli_ms"])] for name, v in med.items() if v.get("cli_ms")]
    parts += [
        "## First reply in a fresh process (ms, interpreter start to the reply, medians)\n\n"
        "`+ pydantic`: the same raw driver after `from pydantic import BaseModel`, the floor of a pydantic-typed "
        "client. `turnout chat`: the CLI with a config file, `--no-stream`, end to end.",
        table(["what", "ms"], first),
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every count for a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated, from: " + ", ".join(CLIENTS))
    parser.add_argument("--python", action="append", default=[], metavar="NAME=PATH", help="interpreter of a client")
    parser.add_argument("--server-python", help="default: <venvs>/server/bin/python if present, else this one")
    parser.add_argument("--venvs", default=os.environ.get("TURNOUT_BENCH_VENVS", "/tmp/benchvenvs"))
    parser.add_argument("--blocks", type=int, default=8, help="blocks of each phase per client")
    parser.add_argument("--import-runs", type=int, default=5, help="fresh interpreters per import figure")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--sync-calls", type=int, default=300, help="per block")
    parser.add_argument("--async-calls", type=int, default=500, help="per block")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--streams", type=int, default=50, help="per block")
    parser.add_argument("--long-calls", type=int, default=20, help="1,000-message calls per block")
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=5000, help="calls per round of turnout's layer timing")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a worker may take for one block")
    parser.add_argument("--max-other-cpu", type=float, default=10.0, help="%% of a core others may use in a block")
    parser.add_argument("--tries", type=int, default=3, help="measurements of a block that others disturbed")
    parser.add_argument("--max-wait", type=float, default=30.0, help="seconds to wait for quiet before a retry")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.import_runs, args.warmup, args.tries = 2, 1, 10, 1
        args.sync_calls, args.async_calls, args.streams, args.n_layer, args.long_calls = 50, 128, 5, 1000, 5
    args.python = _parse_pythons(args.python)
    args.tries = max(1, args.tries)
    wanted = args.clients.split(",")
    if unknown := {name for name in wanted if _driver(name) not in CLIENTS}:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    args.clients = wanted
    cpus = sorted(os.sched_getaffinity(0))
    args.pinned = not args.no_pin and shutil.which("taskset") is not None and len(cpus) >= 2
    args.pin = (["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]) if args.pinned else ([], [])
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
    with Server(server_python, args.chunks, args.pin[0]) as server:
        session = Session(clients, server, args)
        try:
            session.measure()
        finally:
            session.close()
    records, failed = session.records, session.failed
    ok = [name for name in clients if name not in failed]
    ops = ("import", "sync", "async", "stream", "long", "cli")
    bad = sum(r["bad"] for name in ok for op in ops for r in records[name][op])
    keys = (
        "blocks",
        "import_runs",
        "warmup",
        "sync_calls",
        "async_calls",
        "concurrency",
        "streams",
        "chunks",
        "long_calls",
    )
    settings = {k: getattr(args, k) for k in (*keys, "n_layer", "pinned", "max_other_cpu", "tries", "max_wait")}
    doc: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine(),
        "server_loop": server.loop,
        "settings": settings,
        "clients": clients,
        "failed": failed,
        "bad_replies": bad,
        "medians": {name: summarize(records[name], args) for name in ok},
        "records": {name: records[name] for name in ok},
    }
    doc["targets"] = target_rows(doc, args)
    text = report(doc)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    for stem in (doc["when"], "latest"):
        with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
            json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text)
    print(f"wrote {args.out}/{doc['when']}.json, latest.json and latest.md", file=sys.stderr)
    if failed or bad:
        print(f"FAILED: clients {failed} failed; {bad} wrong replies", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
