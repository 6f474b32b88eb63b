"""The spend ledger: every call appended to SQLite, and `turnout usage` summing it exactly."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LLAMA, Runner
from turnout import BadRequestError
from turnout.cli import main
from turnout.ledger import Entry, Ledger, LedgerConfig, default_ledger_path, ledger_path, totals
from turnout.testing import FakeServer, Fault, Reply


def _config(server: FakeServer, path: Path) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {"llama": {"targets": [f"local:{LLAMA}"], "retry": {"max_attempts": 1}}},
        "prices": {f"local:{LLAMA}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "ledger": {"path": str(path)},
    }


@pytest.mark.parametrize("streamed", [False, True])
def test_every_call_is_recorded_with_its_exact_cost(
    runner: Runner, fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER")
    path = tmp_path / "spend.sqlite3"
    fake_vllm.enqueue(Reply("a", prompt_tokens=7, completion_tokens=3), Fault.status(400))
    reply = runner.call(streamed, _config(fake_vllm, path), "llama", "Hi", max_tokens=5)
    with pytest.raises(BadRequestError):
        runner.call(streamed, _config(fake_vllm, path), "llama", "Hi", max_tokens=5)
    (total,) = totals(path)
    assert reply.cost is not None
    assert (total.provider, total.model, total.calls, total.failed) == ("local", LLAMA, 2, 1)
    assert (total.prompt_tokens, total.completion_tokens, total.cost) == (7, 3, reply.cost.total)
    assert total.cost == Decimal("0.0000013")
    assert total.day == datetime.now(UTC).date().isoformat()


def test_ledger_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TURNOUT_LEDGER", "off")
    assert ledger_path(LedgerConfig(path="x.db")) is None
    monkeypatch.setenv("TURNOUT_LEDGER", str(tmp_path / "env.db"))
    assert ledger_path(None) == tmp_path / "env.db"
    monkeypatch.delenv("TURNOUT_LEDGER")
    assert ledger_path(LedgerConfig(enabled=False)) is None
    assert ledger_path(LedgerConfig(path="x.db")) == Path("x.db")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert ledger_path(None) == default_ledger_path() == tmp_path / "turnout" / "ledger.sqlite3"


def test_an_unwritable_ledger_never_fails_the_call(
    fake_vllm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TURNOUT_LEDGER", str(blocker / "ledger.sqlite3"))
    fake_vllm.enqueue(Reply("a"), Reply("b"))
    from turnout import Client

    with Client(config=_config(fake_vllm, tmp_path / "unused")) as client:
        assert client.chat("llama", "Hi").text == "a"
        assert client.chat("llama", "Hi").text == "b"
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "cannot write the spend ledger" in r.message)
    ) == 1


def _fill(path: Path) -> None:
    ledger = Ledger(path)
    day1, day2 = datetime(2026, 11, 26, 10, tzinfo=UTC), datetime(2026, 11, 27, 9, tzinfo=UTC)
    for ts, model, cost in [(day1, "a", "0.1"), (day1, "a", "0.2"), (day2, "b", None), (day2, "a", "0.0000001")]:
        ledger.append(
            Entry(
                "fast", "p", model, 10, 5, None, None, None if cost is None else Decimal(cost), None, 0.1, "ok", 1, ts
            )
        )


def test_usage_prints_a_table_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    _fill(path)
    assert main(["usage", "--ledger", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "day",
        "provider",
        "model",
        "calls",
        "failed",
        "prompt",
        "completion",
        "cost_usd",
        "unpriced",
    ]
    assert table[2].split() == ["2026-11-26", "p", "a", "2", "0", "20", "10", "0.3", "0"]
    assert table[-1].split() == ["total", "4", "0", "40", "20", "0.3000001", "1"]
    assert main(["usage", "--ledger", str(path), "--json", "--since", "2026-11-27"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["day"], d["model"], d["cost"], d["unpriced"]) for d in data] == [
        ("2026-11-27", "a", "0.0000001", 0),
        ("2026-11-27", "b", "0", 1),
    ]
    assert main(["usage", "--ledger", str(path), "--csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][0] == "day" and len(rows) == 4


def test_usage_without_a_ledger_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--ledger", str(tmp_path / "none.sqlite3")]) == 1
    assert "no spend ledger at" in capsys.readouterr().err
    config = tmp_path / "turnout.toml"
    config.write_text("[ledger]\nenabled = false\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TURNOUT_LEDGER")
        assert main(["usage", "--config", str(config)]) == 1
    assert "ledger is off" in capsys.readouterr().err


def test_rows_are_batched_and_flushed_at_exit(tmp_path: Path) -> None:
    """Rows wait in memory (a few µs per call), and an interpreter exit writes them all."""
    import subprocess
    import sys

    path = tmp_path / "exit.sqlite3"
    script = (
        "from turnout.ledger import Entry, Ledger\n"
        f"ledger = Ledger({str(path)!r})\n"
        "for i in range(5):\n"
        "    ledger.append(Entry('fast', 'p', 'm', 1, 1, None, None, None, None, 0.1, 'ok', 1))\n"
        "import os; print(os.path.exists(" + repr(str(path)) + "))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # nothing written while the batch was open
    assert sum(t.calls for t in totals(path)) == 5  # all written at exit


def test_usage_rich_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l.sqlite3"
    _fill(path)
    assert main(["usage", "--ledger", str(path), "--rich"]) == 0
    out = capsys.readouterr().out
    assert "turnout spend" in out and "│" in out  # a rich table, with box drawing
    assert "0.3000001" in out and "2026-11-26" in out  # exact cost in the footer, every day listed
