"""Redis Cluster: every key one [state] script touches hashes to one slot (keys are tagged ``{prefix}``).

The slot is CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384, as the cluster
specification defines it:
https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#key-distribution-model
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import redis

from tests.conftest import LLAMA
from tests.shared.conftest import OTHER, OwnRedis, shared_config
from turnout import Budget, Client
from turnout._state_budgets import SharedBudgets, keys_of
from turnout._state_scripts import budget_keys
from turnout.limits import Limiter, RateLimit
from turnout.shared import SharedState, StateConfig
from turnout.testing import FakeServer, Fault


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as in the spec's Appendix A."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The spec's HASH_SLOT: the hash tag (between the first ``{`` and the next ``}``) when non-empty."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


def test_the_slot_function_matches_the_spec() -> None:
    assert crc16(b"123456789") == 0x31C3  # the spec's check value
    assert key_slot("somekey") == 11058  # CLUSTER KEYSLOT's documented examples
    assert key_slot("foo{hash_tag}") == key_slot("bar{hash_tag}") == 2515
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % 16384  # an empty tag hashes the whole key


def _one_slot(keys: list[str]) -> int:
    slots = {key_slot(k) for k in keys}
    assert len(slots) == 1, {k: key_slot(k) for k in keys}
    return slots.pop()


def test_every_script_touches_one_slot() -> None:
    state = SharedState(StateConfig(url="redis://127.0.0.1:1/0", prefix="myapp"))  # nothing connects
    budgets = SharedBudgets(
        state,
        Budget(max_usd=Decimal(5), period="day"),
        {"llama": Budget(max_usd=Decimal(1), period="month")},
        tags={"tenant": Budget(max_usd=Decimal("0.5"))},
    )
    targets = [f"local:{OTHER}", f"local:{LLAMA}"]
    keys, _, _ = state._reserve_args(budgets, "llama", Decimal("0.01"), targets, {"tenant": "acme"})
    assert len(keys) == 3 * 4 + 2  # three limits of four keys, two breakers
    keys += [f"{state.base}:latency", f"{state.base}:retry"]  # as `before` adds them
    slot = _one_slot(keys)
    assert slot == key_slot("{myapp}") and state.base == "{myapp}"
    limits = [budgets.key(x) for x in budgets.limits("llama", {"tenant": "acme"})]
    assert _one_slot(keys_of(limits)) == slot  # the commit script's keys
    assert _one_slot([k for key, _ in limits for k in budget_keys(key)[:3]]) == slot  # the status script's
    limiter = Limiter(f"local:{LLAMA}", RateLimit(requests_per_minute=5, tokens_per_minute=100), state)
    assert _one_slot(limiter._keys) == slot  # the rate limit's admit script (its done script: two of them)
    assert _one_slot([state.breaker_key(t) for t in targets] + [f"{state.base}:breakers"]) == slot
    state.close()


def _watch(url: str, seen: list[dict[str, Any]], stop: threading.Event) -> None:
    with redis.Redis.from_url(url) as store, store.monitor() as monitor:
        while not stop.is_set():
            seen.append(monitor.next_command())


def test_every_key_written_on_a_real_redis_is_in_the_prefix_slot(
    server: FakeServer, own_redis: OwnRedis, prefix: str
) -> None:
    config = shared_config(server, own_redis.url, prefix, budget={"max_usd": "1", "period": "day"})
    config["models"]["pair"]["balance"] = "least-latency"
    config["limits"] = {f"local:{LLAMA}": {"requests_per_minute": 100, "tokens_per_minute": 100000}}
    config["tag_budgets"] = {"tenant": {"max_usd": "1"}}
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(own_redis.url, seen, stop), daemon=True)
    watcher.start()
    time.sleep(0.2)
    server.enqueue(Fault.status(500), model=OTHER)  # opens OTHER's circuit: the breaker keys are written
    with Client(config=config) as client:
        client.chat("pair", "Hi", max_tokens=10, tags={"tenant": "acme"})
        client.chat("llama", "Hi", max_tokens=10)
        client.close()
        assert {h.source for h in client.health()} == {"local"}  # reads the breakers registry too
    with redis.Redis.from_url(own_redis.url) as store:
        store.ping()  # the last command the watcher needs to see
        deadline = time.monotonic() + 10
        while not any("PING" in c["command"] for c in seen[1:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        store.ping()  # wakes the watcher, which then ends
    watcher.join(10)
    tagged = "{" + prefix + "}"
    keys = []
    for command in seen:
        words = command["command"].split(" ")
        if command["client_type"] == "lua" and words[0].upper() != "TIME":
            assert words[1].startswith(tagged), command  # a script touches only the application's keys
        keys += [w for w in words if prefix in w]
    assert {w.split(":")[0] for w in keys} == {tagged}
    assert any(":budget:tags.tenant=acme:" in k for k in keys) and any(":limit:" in k for k in keys)
    assert any(k.endswith(":breakers") for k in keys) and any(k.endswith(":latency") for k in keys)
    assert _one_slot(keys) == key_slot(tagged)


def test_a_prefix_with_a_brace_is_a_config_error() -> None:
    import pytest

    from turnout import ConfigError

    with pytest.raises(ConfigError, match=r"state.prefix: 'my\{app\}' has a brace: write the prefix alone"):
        Client(config={"state": {"url": "redis://127.0.0.1:1/0", "prefix": "my{app}"}})
