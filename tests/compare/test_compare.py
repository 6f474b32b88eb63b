"""`turnout compare` against the fake servers: scores, tokens and costs exactly as the scripts imply."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client, InvalidArgumentError
from turnout._compare import load_prompts, sample_prompts
from turnout.cli import main
from turnout.config import hourly_price
from turnout.testing import Reply

from .conftest import MC_LINES, Fakes, write_prompts

MILLION = Decimal(1_000_000)


def script_half_right(fakes: Fakes) -> None:
    """gpt35 answers A, B, A, A (2 of 4 right); Llama says "The answer is A" (1 of 4); local: "D." (1 of 4)."""
    fakes.openai.enqueue(*[Reply(a, prompt_tokens=20, completion_tokens=1) for a in "ABAA"])
    fakes.tgi.enqueue(*[Reply("The answer is A", prompt_tokens=30, completion_tokens=4)] * 4)
    fakes.vllm.enqueue(*[Reply("D.", prompt_tokens=25, completion_tokens=2)] * 4)


def check_exact(data: Any) -> None:
    """The numbers of `script_half_right`, from parsed JSON (numbers read as Decimal)."""
    gpt, llama, local = data["models"]
    per_call = 20 * Decimal("0.50") / MILLION + 1 * Decimal("1.50") / MILLION
    assert gpt["score"] == Decimal("0.5") and gpt["scored"] == 4
    assert (gpt["requests"], gpt["errors"], gpt["prompt_tokens"], gpt["completion_tokens"]) == (4, 0, 80, 4)
    assert gpt["cost"] == 4 * per_call
    assert gpt["cost_per_1k"] == 1000 * per_call
    assert gpt["cost_per_1m"] == 1_000_000 * per_call and gpt["cost_basis"] == "per-token"
    assert gpt["targets"] == ["openai:gpt-3.5-turbo"]
    # llama2-13b: billed per token at the configured 100 tok/s; at volume, the GPU hour at the measured rate
    configured = hourly_price(Decimal("1.30"), Decimal(100))
    assert llama["score"] == Decimal("0.25")
    assert (llama["prompt_tokens"], llama["completion_tokens"]) == (120, 16)
    per_llama_call = 4 * configured / MILLION  # what pricing gives each reply, summed below
    assert llama["cost"] == per_llama_call + per_llama_call + per_llama_call + per_llama_call
    assert llama["cost_per_1k"] == llama["cost"] / 4 * 1000
    measured = Decimal(16) / Decimal(repr(float(llama["wall_seconds"])))
    assert float(llama["output_tokens_per_second"]) == pytest.approx(float(measured))
    assert llama["cost_per_1m"] == 16 * hourly_price(Decimal("1.30"), measured) / MILLION / 4 * MILLION
    assert llama["cost_basis"] == "gpu-hour" and llama["usd_per_hour"] == Decimal("1.3")
    # local: no price -> unknown, never 0
    assert local["score"] == Decimal("0.25") and local["completion_tokens"] == 8
    assert local["cost"] is None and local["cost_per_1k"] is None and local["cost_per_1m"] is None
    for model in (gpt, llama, local):
        assert model["latency_p50"] > 0 and model["ttft_p50"] > 0
        assert model["ttft_p50"] <= model["latency_p50"]


@pytest.mark.filterwarnings("default::turnout.CostUnknownWarning")  # printed by the command
def test_cli_json_is_exactly_what_the_script_implies(
    tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    script_half_right(fakes)
    prompts = write_prompts(tmp_path / "prompts.jsonl", MC_LINES)
    config = fakes.toml(tmp_path)
    args = ["compare", str(prompts), "--models", "gpt35,llama2-13b,local", "--concurrency", "1", "--json"]
    assert main([*args, "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "turnout: warning: no price known for local:" in err
    data = json.loads(out, parse_float=Decimal)
    check_exact(data)
    assert '"cost": 0.000046,' in out  # a JSON number with all its digits, not a string
    samples = data["models"][0]["samples"]
    assert [s["answer"] for s in samples] == list("ABAA") and [s["score"] for s in samples] == [1, 1, 0, 0]
    # every request was streamed, through the routes
    assert all(r.stream for r in fakes.openai.chat_requests) and len(fakes.openai.chat_requests) == 4


def test_python_sync_and_async_give_the_same_result(tmp_path: Path, fakes: Fakes) -> None:
    config = fakes.toml(tmp_path)
    items = load_prompts(write_prompts(tmp_path / "p.jsonl", MC_LINES))
    script_half_right(fakes)
    with Client(config) as client, pytest.warns(turnout.CostUnknownWarning):
        sync = turnout.compare(client, items, models=["gpt35", "llama2-13b", "local"], concurrency=1)
    check_exact(json.loads(sync.to_json(), parse_float=Decimal))
    assert isinstance(sync, turnout.CompareResult) and isinstance(sync.models[0], turnout.ModelResult)

    script_half_right(fakes)

    async def run() -> turnout.CompareResult:
        async with AsyncClient(config) as client:
            return await turnout.acompare(client, items, models=["gpt35", "llama2-13b", "local"], concurrency=1)

    import asyncio

    with pytest.warns(turnout.CostUnknownWarning):
        result = asyncio.run(run())
    check_exact(json.loads(result.to_json(), parse_float=Decimal))
    strip = {"wall_seconds", "latency_p50", "latency_p95", "ttft_p50", "ttft_p95", "output_tokens_per_second"}
    for a, b in zip(sync.models, result.models, strict=True):
        assert a.model_dump(exclude=strip | {"samples", "cost_per_1m"}) == b.model_dump(
            exclude=strip | {"samples", "cost_per_1m"}
        )


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_concurrent_requests_score_the_same(tmp_path: Path, fakes: Fakes, concurrency: int) -> None:
    """With every answer "B", the score is the share of lines whose answer is B, at any concurrency."""
    lines = [{**line, "id": f"{line['id']}-{n}"} for n in range(3) for line in MC_LINES]  # 12 lines, 3 are B
    fakes.openai.default_reply = Reply("B", prompt_tokens=10, completion_tokens=1)
    async with AsyncClient(fakes.toml(tmp_path)) as client:
        result = await turnout.acompare(
            client, write_prompts(tmp_path / "p.jsonl", lines), models=["gpt35"], concurrency=concurrency, repeat=2
        )
    (gpt,) = result.models
    assert (gpt.requests, gpt.errors, gpt.scored, gpt.score) == (24, 0, 24, 0.25)
    assert gpt.cost == 24 * (10 * Decimal("0.5") + Decimal("1.5")) / MILLION
    assert [s.id for s in gpt.samples] == [line["id"] for line in lines] * 2  # in file order, repeat after repeat


@pytest.mark.filterwarnings("default::turnout.CostUnknownWarning")  # printed by the command
def test_judge_grades_free_form_answers_and_its_cost_is_apart(
    tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[dict[str, object]] = [
        {"id": "capital", "prompt": "Capital of France?", "expected": "Paris"},
        {"id": "sum", "messages": [{"role": "user", "content": "2+2?"}], "expected": "4"},
        {"id": "free", "prompt": "Say anything"},  # no expected answer: not scored, not judged
    ]
    fakes.vllm.enqueue(
        *[Reply(t, prompt_tokens=5, completion_tokens=3) for t in ("It is Paris.", "five", "hello there")]
    )
    # the judge (gpt35): CORRECT for the first answer, INCORRECT for the second
    fakes.openai.enqueue(
        Reply("CORRECT", prompt_tokens=50, completion_tokens=1),
        Reply("INCORRECT", prompt_tokens=50, completion_tokens=2),
    )
    args = ["compare", str(write_prompts(tmp_path / "p.jsonl", lines)), "--models", "local", "--judge", "gpt35"]
    assert main([*args, "--concurrency", "1", "--json", "--config", str(fakes.toml(tmp_path))]) == 0
    data = json.loads(capsys.readouterr().out, parse_float=Decimal)
    (local,) = data["models"]
    assert local["score"] == Decimal("0.5") and local["scored"] == 2 and local["cost"] is None
    assert [s["score"] for s in local["samples"]] == [1, 0, None]
    judge = data["judge"]
    assert judge["model"] == "gpt35" and (judge["requests"], judge["errors"], judge["unclear"]) == (2, 0, 0)
    assert judge["cost"] == (100 * Decimal("0.5") + 3 * Decimal("1.5")) / MILLION
    graded = fakes.openai.chat_requests[0].json["messages"][-1]["content"]
    assert "It is Paris." in graded and "Paris" in graded


def test_without_a_judge_free_form_answers_are_exact_matches(tmp_path: Path, fakes: Fakes) -> None:
    lines = [{"id": "a", "prompt": "Capital?", "expected": "Paris"}, {"id": "b", "prompt": "Sum?", "expected": "4"}]
    fakes.openai.enqueue(
        Reply("  paris. ", prompt_tokens=3, completion_tokens=1), Reply("It is 4", completion_tokens=2)
    )
    with Client(fakes.toml(tmp_path)) as client:
        result = turnout.compare(client, write_prompts(tmp_path / "p.jsonl", lines), models=["gpt35"], concurrency=1)
    assert [s.score for s in result.models[0].samples] == [1.0, 0.0]


def test_max_usd_stops_sending_and_says_so(tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    """Each call holds its worst case (1,000 output tokens: $0.0015) and costs $0.00151: no third fits $0.0035."""
    fakes.openai.default_reply = Reply("A", prompt_tokens=20, completion_tokens=1000)
    prompts = write_prompts(tmp_path / "p.jsonl", MC_LINES)
    args = ["compare", str(prompts), "--models", "gpt35", "--max-tokens", "1000", "--max-usd", "0.0035"]
    assert main([*args, "--concurrency", "1", "--json", "--config", str(fakes.toml(tmp_path))]) == 0
    out, err = capsys.readouterr()
    (gpt,) = json.loads(out)["models"]
    assert (gpt["requests"], gpt["errors"], gpt["skipped"]) == (3, 1, 1)
    assert gpt["error_kinds"] == {"BudgetExceededError": 1}
    assert "budget ran out" in err
    assert len(fakes.openai.chat_requests) == gpt["requests"] - gpt["errors"]


def test_ledger_rows_are_tagged_with_the_run(tmp_path: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(ledger))
    fakes.openai.default_reply = Reply("A", prompt_tokens=20, completion_tokens=1)
    with Client(fakes.toml(tmp_path)) as client:
        client.chat("gpt35", "not part of the run")
        result = turnout.compare(client, write_prompts(tmp_path / "p.jsonl", MC_LINES), models=["gpt35"])
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT run_id, tags FROM calls ORDER BY rowid").fetchall()
    assert rows[0] == (None, None)
    assert [r[0] for r in rows[1:]] == [result.run_id] * 4
    assert json.loads(rows[1][1]) == {"compare": result.run_id, "model": "gpt35", "role": "candidate"}


def test_an_error_is_counted_not_scored(tmp_path: Path, fakes: Fakes) -> None:
    from turnout.testing import Fault

    fakes.openai.enqueue(Reply("A", prompt_tokens=20, completion_tokens=1), Fault.server_error(500))
    fakes.openai.default_reply = Reply("C", prompt_tokens=20, completion_tokens=1)
    with Client(fakes.toml(tmp_path)) as client:
        result = turnout.compare(client, write_prompts(tmp_path / "p.jsonl", MC_LINES), models=["gpt35"], concurrency=1)
    (gpt,) = result.models
    assert (gpt.requests, gpt.errors, gpt.scored, gpt.score) == (4, 1, 3, 2 / 3)
    assert gpt.error_kinds == {"ServerError": 1}
    assert gpt.cost == 3 * (20 * Decimal("0.5") + Decimal("1.5")) / MILLION


def test_sample_set_runs_out_of_the_box(tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    items = sample_prompts()
    assert len(items) == 50 and all(i.choices and i.expected_letter() for i in items)
    fakes.openai.default_reply = Reply("A", prompt_tokens=60, completion_tokens=1)
    fakes.tgi.default_reply = Reply("B", prompt_tokens=60, completion_tokens=1)
    config = str(fakes.toml(tmp_path))
    assert main(["compare", "--sample", "--models", "gpt35,llama2-13b", "--config", config]) == 0
    out = capsys.readouterr().out
    header, gpt, llama = out.splitlines()
    share = {letter: sum(i.expected_letter() == letter for i in items) / 50 for letter in "AB"}
    assert header.split()[:4] == ["model", "requests", "errors", "score"]
    assert gpt.split()[:4] == ["gpt35", "50", "0", f"{share['A']:.3f}"]
    assert llama.split()[:4] == ["llama2-13b", "50", "0", f"{share['B']:.3f}"]
    assert llama.endswith("(GPU-h)")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "p.jsonl:2: not JSON"),
        ('{"id": "x"}', 'p.jsonl:2: line: give exactly one of "messages" and "prompt"'),
        ('{"id": "x", "prompt": "q", "choices": ["a", "b"], "expected": "C"}', "p.jsonl:2: line: \"expected\" 'C'"),
        ('{"id": "ok", "prompt": "again"}', "p.jsonl:2: the id 'ok' is used twice"),
        ('{"id": "x", "prompt": "q", "expect": "a"}', "p.jsonl:2: expect: Extra inputs are not permitted"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_sent(
    tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "ok", "prompt": "fine"}\n' + line + "\n", encoding="utf-8")
    assert main(["compare", str(prompts), "--models", "gpt35", "--config", str(fakes.toml(tmp_path))]) == 1
    assert message in capsys.readouterr().err
    assert fakes.openai.chat_requests == []


def test_arguments_are_checked_before_sending(tmp_path: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(fakes.toml(tmp_path))
    assert main(["compare", "--models", "gpt35", "--config", config]) == 1
    assert "give a prompt file or --sample" in capsys.readouterr().err
    assert main(["compare", "--sample", "--models", "gpt35,nope", "--config", config]) == 1
    assert "model 'nope' is neither an alias" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", "--sample", "--models", "gpt35,gpt35", "--config", config])
    with pytest.raises(SystemExit):
        main(["compare", "--sample", "--models", "gpt35", "--max-usd", "lots", "--config", config])
    with Client(config) as client, pytest.raises(InvalidArgumentError, match="repeat and concurrency"):
        turnout.compare(client, write_prompts(tmp_path / "p.jsonl", MC_LINES), models=["gpt35"], concurrency=0)
    assert fakes.openai.chat_requests == []


async def test_async_ledger_rows_name_the_run_model_and_judge(
    tmp_path: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(ledger))
    fakes.tgi.default_reply = Reply("Paris", prompt_tokens=5, completion_tokens=1)
    fakes.openai.default_reply = Reply("CORRECT", prompt_tokens=40, completion_tokens=1)
    lines = [{"id": "a", "prompt": "Capital of France?", "expected": "Paris"}]
    async with AsyncClient(fakes.toml(tmp_path)) as client:
        result = await turnout.acompare(
            client, write_prompts(tmp_path / "p.jsonl", lines), models=["llama2-13b"], judge="gpt35"
        )
    assert result.judge is not None and result.judge.requests == 1 and result.models[0].score == 1.0
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT run_id, tags, model FROM calls ORDER BY rowid").fetchall()
    assert [(r[0], json.loads(r[1])["role"], r[2]) for r in rows] == [
        (result.run_id, "candidate", "meta-llama/Llama-2-13b-chat-hf"),
        (result.run_id, "judge", "gpt-3.5-turbo"),
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_table_and_progress_bar(
    tmp_path: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.openai.default_reply = Reply("A", prompt_tokens=20, completion_tokens=1)
    err, out = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    prompts = str(write_prompts(tmp_path / "p.jsonl", MC_LINES))
    assert main(["compare", prompts, "--models", "gpt35", "--config", str(fakes.toml(tmp_path))]) == 0
    live = err.getvalue()
    assert "gpt35" in live and "4/4" in live and "turnout compare" in live  # the bar and the table
    assert "gpt35" in out.getvalue() and "0.250" in out.getvalue()  # the final table, rich on a terminal


def test_progress_is_reported_after_each_request(tmp_path: Path, fakes: Fakes) -> None:
    fakes.openai.default_reply = Reply("A", prompt_tokens=20, completion_tokens=1)
    fakes.tgi.default_reply = Reply("B", prompt_tokens=20, completion_tokens=1)
    seen: list[tuple[str, int, int, int]] = []
    with Client(fakes.toml(tmp_path)) as client:
        turnout.compare(
            client,
            write_prompts(tmp_path / "p.jsonl", MC_LINES),
            models=["gpt35", "llama2-13b"],
            concurrency=3,
            progress=lambda p: seen.append((p.model, p.done, p.total, len(p.samples))),
        )
    assert seen == [(m, n, 4, n) for m in ("gpt35", "llama2-13b") for n in range(1, 5)]


def test_html_without_plotly_says_which_extra_before_sending(
    tmp_path: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly -> ImportError
    args = ["compare", "--sample", "--models", "gpt35", "--html", str(tmp_path / "r.html")]
    assert main([*args, "--config", str(fakes.toml(tmp_path))]) == 1
    assert "--html needs plotly: pip install 'turnout[compare]'" in capsys.readouterr().err
    assert fakes.openai.chat_requests == [] and not (tmp_path / "r.html").exists()


def test_html_report_is_written_with_the_table(tmp_path: Path, fakes: Fakes) -> None:
    fakes.openai.default_reply = Reply("A", prompt_tokens=20, completion_tokens=1)
    report = tmp_path / "r.html"
    args = ["compare", str(write_prompts(tmp_path / "p.jsonl", MC_LINES)), "--models", "gpt35", "--html", str(report)]
    assert main([*args, "--config", str(fakes.toml(tmp_path))]) == 0
    page = report.read_text(encoding="utf-8")
    assert '<table id="results">' in page and "<td>gpt35</td>" in page and "<td>0.250</td>" in page
    assert page.count('id="chart-') == 3 and "Plotly.newPlot" in page
