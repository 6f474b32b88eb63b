"""One client's measurements, run in the client's own interpreter as a worker of ``bench.py``.

Standard library only (plus the measured library), because it runs in each library's venv:

    /tmp/benchvenvs/openai/bin/python benchmarks/_driver.py openai --base-url http://127.0.0.1:PORT/v1

Sets the client up, warms it up, prints ``{"ready": true}``, then answers one JSON line on
stdout for each JSON command read on stdin, so that ``bench.py`` can interleave short blocks of
every client and compare blocks measured seconds apart:

    {"op": "import"}                    import time, import-to-first-reply and the fresh process's whole
                                        time to its first reply (interpreter start included)
    {"op": "long", "n": 20}             n sequential calls that send a 1,000-message conversation
    {"op": "cli"}                       turnout only: ``turnout chat`` end to end, in a new process
    {"op": "sync", "n": 200}            n sequential calls: process CPU, wall time, each call's latency
    {"op": "async", "n": 400, "concurrency": 64}   n calls from that many tasks (one event loop throughout)
    {"op": "stream", "n": 30}           n sequential streamed calls
    {"op": "layer", "n": 5000}          turnout only: its own per-call cost without I/O (``_layer.py``)
    {"op": "rss"}                       peak resident memory so far

Every answer carries ``cpu`` and ``wall`` (seconds) and ``bad`` (replies whose text was not
what the server sent).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from _clients import ENV, FLOOR_IMPORTS, IMPORTS, setup
from _wire import LONG_MESSAGES, MODEL, REPLY, stream_pieces

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


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished subprocesses."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Worker:
    """One client, set up once; each method measures one block."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.chat, self.achat, self.stream = setup(args.client, args.base_url)
        self.long_chat = setup(args.client, args.base_url, LONG_MESSAGES)[0]
        self.loop = asyncio.new_event_loop()  # async pools are bound to the loop that opened them
        asyncio.set_event_loop(self.loop)
        self.expected = "".join(stream_pieces(args.chunks))

    def warm_up(self) -> None:
        """Open the pools and fill caches; compile the import probe's ``.pyc`` files."""
        for _ in range(self.args.warmup):
            self.chat()
        self.async_(self.args.concurrency, self.args.concurrency)
        for _ in range(max(1, self.args.warmup // 10)):
            self.stream()
        self.probe()
        self.long_chat()

    def probe(self) -> dict[str, Any]:
        """Import time, import-to-first-reply, and the whole fresh process up to its first reply."""
        found = self._probe(IMPORTS[self.args.client])
        floor = FLOOR_IMPORTS.get(self.args.client)
        if floor is not None:  # raw httpx2 plus pydantic's model machinery: a pydantic-typed client's floor
            extra = self._probe(floor)
            found["first_reply_floor_ms"], found["bad"] = extra["first_reply_ms"], found["bad"] + extra["bad"]
        return found

    def _probe(self, statement: str) -> dict[str, Any]:
        code = _PROBE.format(
            statement=statement, here=HERE, name=self.args.client, base_url=self.args.base_url, reply=REPLY
        )
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        process_ms = (time.perf_counter() - start) * 1e3  # interpreter start to exit, after the reply
        if proc.returncode:
            raise RuntimeError(f"the import probe failed:\n{proc.stderr[-2000:]}")
        import_ms, first_ms, ok = proc.stdout.split()
        return {
            "import_ms": float(import_ms),
            "first_call_ms": float(first_ms),
            "first_reply_ms": process_ms,
            "bad": int(ok != "True"),
        }

    def cli(self) -> dict[str, Any]:
        """``turnout chat`` in a new process, end to end (its config file points at the fake server)."""
        folder = tempfile.mkdtemp(prefix="turnout-bench-cli-")
        try:
            config = os.path.join(folder, "turnout.toml")
            with open(config, "w") as f:
                f.write(
                    f'[providers.bench]\ntype = "openai"\nbase_url = "{self.args.base_url}"\napi_key = "sk-bench"\n'
                )
            command = [sys.executable, "-c", "from turnout.cli import main; main()", "chat", "--config", config]
            start = time.perf_counter()
            proc = subprocess.run([*command, "--no-stream", f"bench:{MODEL}", "Hi"], capture_output=True, text=True)
            wall_ms = (time.perf_counter() - start) * 1e3
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if proc.returncode:
            raise RuntimeError(f"turnout chat failed:\n{proc.stderr[-2000:]}")
        return {"cli_ms": wall_ms, "bad": int(proc.stdout.strip() != REPLY)}

    def long(self, n: int) -> dict[str, Any]:
        """``n`` sequential calls that each send the 1,000-message conversation."""
        return {"bad": sum(self.long_chat() != REPLY for _ in range(n))}

    def sync(self, n: int) -> dict[str, Any]:
        """``n`` sequential non-streamed calls, each timed."""
        latencies, bad, chat = [], 0, self.chat
        for _ in range(n):
            start = time.perf_counter_ns()
            reply = chat()
            latencies.append((time.perf_counter_ns() - start) / 1e3)
            bad += reply != REPLY
        return {"latencies_us": latencies, "bad": bad}

    def async_(self, n: int, concurrency: int) -> dict[str, Any]:
        """``n`` calls from ``concurrency`` tasks on the worker's one event loop."""
        left, bad = n, 0

        async def task() -> None:
            nonlocal left, bad
            while left > 0:
                left -= 1
                bad += await self.achat() != REPLY

        async def all_tasks() -> None:
            await asyncio.gather(*(task() for _ in range(concurrency)))

        self.loop.run_until_complete(all_tasks())
        return {"bad": bad}

    def streams(self, n: int) -> dict[str, Any]:
        """``n`` sequential streamed calls; the reassembled text is checked."""
        return {"bad": sum(self.stream() != self.expected for _ in range(n))}

    def run(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one command; add its CPU and wall time."""
        op = command["op"]
        if op == "rss":
            return {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if op == "layer":
            from _layer import measure

            return dict(measure(command["n"]))
        actions: dict[str, Callable[[], dict[str, Any]]] = {
            "import": self.probe,
            "cli": self.cli,
            "long": lambda: self.long(command["n"]),
            "sync": lambda: self.sync(command["n"]),
            "async": lambda: self.async_(command["n"], command["concurrency"]),
            "stream": lambda: self.streams(command["n"]),
        }
        cpu, wall = _cpu(), time.perf_counter()
        result = actions[op]()
        return {**result, "cpu": _cpu() - cpu, "wall": time.perf_counter() - wall}


def main() -> None:
    """Set up, warm up, then serve commands from stdin until it closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=sorted(IMPORTS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=64, help="must match the server's --chunks")
    args = parser.parse_args()

    os.environ.update(ENV.get(args.client, {}))  # inherited by the import probes
    if args.client == "turnout" and "TURNOUT_LEDGER" not in os.environ:
        # turnout's spend ledger stays on (its cost is part of every call) but in a scratch file,
        # so benchmark calls never reach the user's real ledger.
        scratch = tempfile.mkdtemp(prefix="turnout-bench-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        os.environ["TURNOUT_LEDGER"] = os.path.join(scratch, "ledger.sqlite3")
    worker = Worker(args)
    worker.warm_up()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(worker.run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
