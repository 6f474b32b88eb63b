"""Per-call tags: on the reply, in the ledger (`turnout usage --by tag:NAME`), and budgets per tag value."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LLAMA
from turnout import AsyncClient, BudgetExceededError, Client, InvalidArgumentError
from turnout.cli import main
from turnout.cost.spend_ledger import totals
from turnout.testing import FakeServer, Reply, ToolCallSpec

PRICE = {"input_per_million": "1", "output_per_million": "1"}
ACME = {"tenant": "acme", "feature": "search"}


@pytest.fixture(autouse=True)
def _own_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER", raising=False)  # each test's [ledger] path is used


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096, runner="generate") as fake:
        fake.default_reply = Reply("ok", prompt_tokens=20, completion_tokens=5)
        yield fake


def _config(server: FakeServer, ledger: Path, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {"llama": {"targets": [f"local:{LLAMA}"], "retry": {"max_attempts": 1}}},
        "prices": {f"local:{LLAMA}": PRICE},
        "ledger": {"path": str(ledger)},
    }
    config.update(extra)
    return config


def _tags_column(ledger: Path) -> list[dict[str, str] | None]:
    with closing(sqlite3.connect(ledger)) as db:
        return [None if t is None else json.loads(t) for (t,) in db.execute("SELECT tags FROM calls ORDER BY rowid")]


def test_sync_tags_reach_the_reply_and_the_ledger(server: FakeServer, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with Client(config=_config(server, ledger)) as client:
        assert client.chat("llama", "Hi", tags=ACME).tags == ACME
        with client.stream("llama", "Hi", tags={"tenant": "beta"}) as stream:
            list(stream)
        assert stream.response.tags == {"tenant": "beta"}
        assert client.chat("llama", "Hi").tags is None
    assert _tags_column(ledger) == [ACME, {"tenant": "beta"}, None]
    rows = totals(ledger, by=["tag:tenant"])
    assert [(t.get("tag:tenant"), t.calls) for t in rows] == [("-", 1), ("acme", 1), ("beta", 1)]


def test_async_tags_reach_the_reply_and_the_ledger(server: FakeServer, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"

    async def go() -> None:
        async with AsyncClient(config=_config(server, ledger)) as client:
            assert (await client.chat("llama", "Hi", tags=ACME)).tags == ACME
            async with client.stream("llama", "Hi", tags=ACME) as stream:
                [chunk async for chunk in stream]
            assert stream.response.tags == ACME

    asyncio.run(go())
    assert _tags_column(ledger) == [ACME, ACME]


def test_embed_tags(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with FakeServer(flavor="openai") as fake:
        config = {
            "providers": {"oa": {"type": "openai", "base_url": fake.base_url, "api_key": "k"}},
            "ledger": {"path": str(ledger)},
        }
        with Client(config=config) as client:
            assert client.embed("oa:text-embedding-3-small", ["a", "b"], tags=ACME).tags == ACME

        async def go() -> None:
            async with AsyncClient(config=config) as client:
                assert (await client.embed("oa:text-embedding-3-small", "a", tags={"tenant": "x"})).tags == {
                    "tenant": "x"
                }

        asyncio.run(go())
    assert _tags_column(ledger) == [ACME, {"tenant": "x"}]


def double(x: int) -> int:
    """Twice x."""
    return 2 * x


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_tools_tags_every_round(server: FakeServer, tmp_path: Path, mode: str) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    server.enqueue(Reply(tool_calls=[ToolCallSpec("double", '{"x": 2}')]), Reply("4"))
    config = _config(server, ledger)
    if mode == "sync":
        with Client(config=config) as client:
            assert client.run_tools("llama", "Double 2", tools=[double], tags=ACME).response.text == "4"
    else:

        async def go() -> None:
            async with AsyncClient(config=config) as client:
                await client.run_tools("llama", "Double 2", tools=[double], tags=ACME)

        asyncio.run(go())
    assert _tags_column(ledger) == [ACME, ACME]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_each_tag_value_has_its_own_budget(server: FakeServer, tmp_path: Path, mode: str) -> None:
    config = _config(server, tmp_path / "l.sqlite3", tag_budgets={"tenant": {"max_usd": "0.0002"}})

    async def spend(client: AsyncClient, tenant: str) -> int:
        for calls in range(100):
            try:
                await client.chat("llama", "Hello", max_tokens=10, tags={"tenant": tenant})
            except BudgetExceededError as exc:
                assert exc.budget == f"tags.tenant={tenant}"
                return calls
        raise AssertionError("never refused")

    async def go() -> tuple[int, int, str]:
        async with AsyncClient(config=config) as client:
            acme, beta = await spend(client, "acme"), await spend(client, "beta")
            untagged = (await client.chat("llama", "Hello")).text  # no tenant tag: no budget, no max_tokens needed
            return acme, beta, untagged

    if mode == "sync":
        with Client(config=config) as sync_client:

            def sync_spend(tenant: str) -> int:
                for calls in range(100):
                    try:
                        sync_client.chat("llama", "Hello", max_tokens=10, tags={"tenant": tenant})
                    except BudgetExceededError as exc:
                        assert exc.budget == f"tags.tenant={tenant}"
                        return calls
                raise AssertionError("never refused")

            acme, beta = sync_spend("acme"), sync_spend("beta")
            untagged = sync_client.chat("llama", "Hello").text
            assert sync_client.budgets is not None
            names = [s.name for s in sync_client.budgets.status()]
            assert names == ["tags.tenant=acme", "tags.tenant=beta"]
    else:
        acme, beta, untagged = asyncio.run(go())
    assert acme == beta and acme >= 3 and untagged == "ok"
    assert len(server.chat_requests) == acme + beta + 1


@pytest.mark.parametrize("tags", [{"tenant": 1}, {"": "x"}, ["tenant"], "acme"])
def test_bad_tags_are_refused_before_sending(server: FakeServer, tmp_path: Path, tags: Any) -> None:
    with Client(config=_config(server, tmp_path / "l.sqlite3")) as client:
        with pytest.raises(InvalidArgumentError, match="tags must map names to strings"):
            client.chat("llama", "Hi", tags=tags)
    assert server.requests == []


def test_usage_by_tag(server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with Client(config=_config(server, ledger)) as client:
        client.chat("llama", "Hi", tags=ACME)
        client.chat("llama", "Hi", tags=ACME)
        client.chat("llama", "Hi", tags={"tenant": "beta"})
    assert main(["usage", "--ledger", str(ledger), "--by", "tag:tenant", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["tag:tenant"], r["calls"], r["cost"]) for r in rows] == [
        ("acme", 2, "0.000050"),
        ("beta", 1, "0.000025"),
    ]
    with pytest.raises(SystemExit):  # argparse refuses a bare "tag:"
        main(["usage", "--ledger", str(ledger), "--by", "tag:"])
    assert "tag:NAME" in capsys.readouterr().err
    assert Decimal(rows[0]["cost"]) == Decimal("0.00005")
