"""Proof with real OS processes (spawned), each with its own client, sharing [state] on one Redis."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from decimal import Decimal

from tests.conftest import LLAMA
from tests.shared import _workers
from tests.shared.conftest import OTHER, shared_config
from turnout import Client
from turnout.testing import FakeServer, Fault, Reply

PER_CALL = Decimal(25) / 1_000_000  # every reply: 20 prompt + 5 completion tokens
spawn = multiprocessing.get_context("spawn")


def test_four_processes_never_overspend_one_budget(server: FakeServer, redis_url: str, prefix: str) -> None:
    max_usd = Decimal("0.004")  # 160 calls' worth
    config = shared_config(server, redis_url, prefix, budget={"max_usd": str(max_usd)})
    start, out = spawn.Barrier(4), spawn.Queue()
    workers = [spawn.Process(target=_workers.spend_until_refused, args=(config, start, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    counts = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(10)
    served = len(server.chat_requests)
    assert sum(counts) == served
    assert sum(1 for c in counts if c > 0) >= 2, counts  # they spent side by side
    assert served * PER_CALL <= max_usd  # the spend the server saw
    assert served * PER_CALL >= max_usd * Decimal("0.8"), (served, counts)
    with Client(config=config) as reader:
        assert reader.budgets is not None
        (status,) = reader.budgets.status()
    assert status.spent == served * PER_CALL and status.reserved == 0


def test_a_circuit_opened_by_one_process_is_skipped_by_another(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(server, redis_url, prefix)
    server.enqueue(Fault.status(500), model=OTHER)
    with spawn.Pool(1) as first:
        attempts = first.apply(_workers.one_call, (config, "pair"))
    assert [(m, s) for m, s, _ in attempts] == [(OTHER, False), (LLAMA, False)]
    with spawn.Pool(1) as second:
        attempts = second.apply(_workers.one_call, (config, "pair"))
    (model, skipped, error), answered = attempts
    assert model == OTHER and skipped and "circuit open (shared state)" in (error or "")
    assert answered[:2] == (LLAMA, False)
    assert [r.json["model"] for r in server.chat_requests] == [OTHER, LLAMA, LLAMA]


def test_a_killed_workers_hold_comes_back_after_the_ttl(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(server, redis_url, prefix, budget={"max_usd": "1"})
    config["state"]["hold_ttl"] = 1.5
    server.enqueue(Fault.slow(60, Reply("late")))
    worker = spawn.Process(target=_workers.hold_forever, args=(config,))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not server.chat_requests:  # the call has its hold and is waiting for the reply
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.02)
        with Client(config=config) as reader:
            assert reader.budgets is not None
            (held,) = reader.budgets.status()
            assert held.reserved > 0
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGKILL)
            worker.join(10)
            (still,) = reader.budgets.status()
            assert still.reserved == held.reserved  # the dead worker's hold lives until its TTL
            time.sleep(1.6)
            (after,) = reader.budgets.status()
    finally:
        if worker.is_alive():
            worker.kill()
    assert after.reserved == 0 and after.spent == 0 and after.remaining == Decimal(1)


def test_four_processes_share_one_rate_limit(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(server, redis_url, prefix)
    config["limits"] = {f"local:{LLAMA}": {"requests_per_minute": 20, "window": 30, "max_wait": 0}}
    start, out = spawn.Barrier(4), spawn.Queue()
    workers = [spawn.Process(target=_workers.calls_under_rate_limit, args=(config, start, out, 10)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert len(server.chat_requests) == 20  # in the (30 s) window, across all four processes
    assert sum(a for a, _ in results) == 20 and sum(r for _, r in results) == 20
