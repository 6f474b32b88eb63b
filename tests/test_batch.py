"""``turnout batch`` and ``client.batch``: formats, concurrency, resume after SIGKILL, the budget, provider batches."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from turnout import AsyncClient, Client
from turnout.batch import BatchRequest, read_finished, read_requests
from turnout.cli import main
from turnout.engine import AttemptStarted, CallFinished
from turnout.errors import InvalidArgumentError
from turnout.testing import FakeServer, Fault, Reply

ROOT = Path(__file__).resolve().parents[1]
PRICE = {"input_per_million": "1.00", "output_per_million": "2.00"}


def _toml(primary: FakeServer, fallback: FakeServer | None = None, **extra: str) -> str:
    targets = '["main:gpt-4o-mini"' + (', "backup:llama"]' if fallback else "]")
    text = f"""
[providers.main]
type = "openai"
base_url = "{primary.base_url}"
api_key = "sk-test"
{extra.get("main", "")}
[models.fast]
targets = {targets}
[defaults.retry]
max_attempts = 1
[prices."main:gpt-4o-mini"]
input_per_million = "1.00"
output_per_million = "2.00"
[ledger]
enabled = false
"""
    if fallback is not None:
        text += f"""
[providers.backup]
type = "vllm"
base_url = "{fallback.base_url}"
[prices."backup:llama"]
input_per_million = "0.50"
output_per_million = "1.00"
"""
    return text


def _write_requests(path: Path, count: int, *, short: bool = False) -> None:
    with path.open("w") as out:
        for i in range(count):
            messages = [{"role": "user", "content": f"item r{i}"}]
            if short:
                line: dict[str, Any] = {"custom_id": f"r{i}", "messages": messages, "max_tokens": 16}
            else:
                body = {"model": "fast", "messages": messages, "max_tokens": 16}
                line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            out.write(json.dumps(line) + "\n")


def _sent_ids(*servers: FakeServer, since: dict[int, int] | None = None) -> list[str]:
    """The custom ids of the chat requests the servers received (after ``since[id(server)]`` requests)."""
    ids = []
    for server in servers:
        for request in server.chat_requests[(since or {}).get(id(server), 0) :]:
            if request.json is None:  # its body was cut by the kill: the server never answered it
                continue
            ids.append(request.json["messages"][-1]["content"].removeprefix("item "))
    return ids


def _output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the proof: 2,000 requests, scripted failures, a fallback, three SIGKILLs -----------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "turnout.cli", "batch", *args]


def _wait_lines(path: Path, at_least: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        assert process.poll() is None, "the batch ended before it could be killed"
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {at_least} lines")


def test_two_thousand_requests_survive_three_sigkills_exactly_once(tmp_path: Path) -> None:
    concurrency = 16
    slow = Reply(delay=0.004)  # echoes the prompt; slow enough to be killed mid-run
    with (
        FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test", default_reply=slow) as primary,
        FakeServer(flavor="vllm", models=["llama"], default_reply=slow) as fallback,
    ):
        primary.enqueue(*([slow] * 9 + [Fault.server_error()]) * 300)  # 10 % fail on the first target...
        fallback.enqueue(*([slow] * 4 + [Fault.server_error()]) * 100)  # ...and 1 in 5 of those on the fallback
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(primary, fallback))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 2000)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        args = _cli(str(requests), "-o", str(out), "--model", "fast", "--config", str(config))
        args += ["--concurrency", str(concurrency), "--plain"]
        lost, marks = 0, []
        for kill_at in (300, 800, 1400):
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_lines(out, kill_at, process)
            process.send_signal(signal.SIGKILL)
            process.wait()
            written = read_finished(out).ids  # also drops a line the kill cut
            in_flight = set(_sent_ids(primary, fallback)) - written
            assert len(in_flight) <= concurrency  # sent but unwritten: at most what was in flight
            lost += len(in_flight)
            marks.append(
                (written, {id(primary): len(primary.chat_requests), id(fallback): len(fallback.chat_requests)})
            )
        final = subprocess.run(args, env=env, capture_output=True, check=False)
        assert final.returncode == 1  # some requests failed on both targets
        for written, mark in marks:
            assert not set(_sent_ids(primary, fallback, since=mark)) & written  # no written line was sent again
        lines = _output(out)
    ids = Counter(line["custom_id"] for line in lines)
    assert len(ids) == 2000 and set(ids.values()) == {1}  # every custom_id exactly once
    assert lost <= concurrency * 3
    failed = [line for line in lines if line["error"] is not None]
    fell_back = [line for line in lines if line["turnout"]["target"] == "backup:llama" and line["error"] is None]
    assert failed and fell_back
    assert all(line["response"]["status_code"] == 500 for line in failed)
    ok = next(line for line in lines if line["error"] is None)
    assert ok["response"]["status_code"] == 200 and ok["response"]["body"]["object"] == "chat.completion"
    assert ok["response"]["body"]["choices"][0]["message"]["content"] == f"item {ok['custom_id']}"
    assert Decimal(ok["turnout"]["cost"]) > 0 and ok["turnout"]["attempts"] >= 1


def test_resume_between_kills_never_resends_a_written_line(tmp_path: Path) -> None:
    """Each of three resumes (after a SIGKILL) sends only what the output does not hold."""
    slow = Reply(delay=0.004)
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test", default_reply=slow) as primary:
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(primary))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 600)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        args = [*_cli(str(requests), "-o", str(out), "--config", str(config), "--concurrency", "8", "--plain")]
        for kill_at in (100, 250, 400):
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_lines(out, kill_at, process)
            process.send_signal(signal.SIGKILL)
            process.wait()
            written = read_finished(out).ids
            mark = {id(primary): len(primary.chat_requests)}
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_lines(out, len(written) + 20, process)
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert not set(_sent_ids(primary, since=mark)) & written
        assert subprocess.run(args, env=env, capture_output=True, check=False).returncode == 0
    ids = Counter(line["custom_id"] for line in _output(out))
    assert len(ids) == 600 and set(ids.values()) == {1}


def test_a_cut_last_line_is_dropped_and_its_request_sent_again(tmp_path: Path) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 5)
        args = ["batch", str(requests), "-o", str(out), "--config", str(config), "--plain"]
        assert main(args) == 0
        whole = out.read_bytes().splitlines(keepends=True)
        last = json.loads(whole[-1])["custom_id"]
        out.write_bytes(b"".join(whole[:-1]) + whole[-1][:40])  # as a kill in the middle of a write leaves it
        server.reset()
        assert main(args) == 0
        assert _sent_ids(server) == [last]
    assert sorted(line["custom_id"] for line in _output(out)) == [f"r{i}" for i in range(5)]


# -- the budget -----------------------------------------------------------------------------------


def test_the_budget_stops_the_run_before_it_is_exceeded_and_holds_across_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        server.default_reply = Reply("ok", prompt_tokens=10, completion_tokens=16)  # $0.000042 a request
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 40, short=True)
        args = ["batch", str(requests), "-o", str(out), "--config", str(config), "--model", "fast", "--plain"]
        assert main([*args, "--max-usd", "0.0005", "--concurrency", "4"]) == 3
        first = _output(out)
        spent = sum(Decimal(line["turnout"]["cost"]) for line in first)
        assert 0 < len(first) < 40 and spent <= Decimal("0.0005")
        assert "stopped by --max-usd" in capsys.readouterr().err
        sent = len(server.chat_requests)
        assert sent == len(first)  # a request the budget refused was never sent
        assert main([*args, "--max-usd", "0.0005"]) == 3  # the same budget, read back: nothing more is sent
        assert len(server.chat_requests) == sent
        assert main([*args, "--max-usd", "1"]) == 0
    assert sorted(line["custom_id"] for line in _output(out)) == sorted(f"r{i}" for i in range(40))


def test_dry_run_prints_the_estimate_and_sends_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 10)
        args = ["batch", str(requests), "-o", str(out), "--config", str(config), "--plain"]
        assert main([*args, "--dry-run"]) == 0
        assert server.chat_requests == []
        assert not out.exists()
        err = capsys.readouterr().err
        assert "10 requests to send (0 already in the output); estimated $" in err
        low, high = (Decimal(part.split()[0]) for part in err.split("estimated $")[1].split(" to $"))
        assert main(args) == 0
    spent = sum(Decimal(line["turnout"]["cost"]) for line in _output(out))
    assert low <= spent <= high


# -- formats --------------------------------------------------------------------------------------


def test_bad_lines_are_reported_with_their_number_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = tmp_path / "in.jsonl"
    good = {"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}
    requests.write_text(
        "\n".join(
            [
                json.dumps(good),
                "{not json",
                json.dumps({"messages": [{"role": "user", "content": "x"}]}),
                json.dumps(good),
                json.dumps({"custom_id": "e", "url": "/v1/embeddings", "body": {"input": "x"}}),
                json.dumps({"custom_id": "s", "messages": [{"role": "user", "content": "x"}], "stream": True}),
                "",
                json.dumps(
                    {"custom_id": "b", "body": {"messages": [{"role": "user", "content": "y"}], "metadata": {}}}
                ),
            ]
        )
    )
    parsed, problems = read_requests(requests)
    assert [r.custom_id for r in parsed] == ["a", "b"]
    assert parsed[1].line == 8 and parsed[1].options == {"extra_body": {"metadata": {}}}
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "custom_id" in problems[1] and "already used" in problems[2] and "/v1/embeddings" in problems[3]
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server))
        out = tmp_path / "out.jsonl"
        assert main(["batch", str(requests), "-o", str(out), "--model", "fast", "--config", str(config)]) == 1
        assert len(server.chat_requests) == 2
    err = capsys.readouterr().err
    assert f"{requests} line 2: not JSON" in err and "5 bad input lines skipped" in err


def test_a_request_without_a_model_fails_with_the_fix_and_the_rest_go_on() -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        config = _config(server)
        with Client(config=config) as client:
            results = list(
                client.batch(
                    [
                        {"custom_id": "x", "messages": "hi"},
                        {"custom_id": "y", "messages": "hi", "model": "fast"},
                    ]
                )
            )
            with pytest.raises(InvalidArgumentError, match="custom_id"):
                list(client.batch([{"messages": "hi"}], model="fast"))
    failed = {r.custom_id: r for r in results}
    assert isinstance(failed["x"].error, InvalidArgumentError) and "names no model" in str(failed["x"].error)
    assert failed["y"].ok and len(server.chat_requests) == 1


# -- the Python API -------------------------------------------------------------------------------


def _config(server: FakeServer) -> dict[str, Any]:
    return {
        "providers": {"main": {"type": "openai", "base_url": server.base_url, "api_key": "sk-test"}},
        "models": {"fast": {"targets": ["main:gpt-4o-mini"]}},
        "prices": {"main:gpt-4o-mini": PRICE},
        "defaults": {"retry": {"max_attempts": 1}},
    }


class _InFlight:
    """The most calls in flight at once, from the client's events."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def started(self, _: AttemptStarted) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def finished(self, _: CallFinished) -> None:
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_client_batch_yields_results_as_they_finish_within_the_concurrency(mode: str) -> None:
    requests: list[BatchRequest | dict[str, Any]] = [
        {"custom_id": f"r{i}", "messages": [{"role": "user", "content": f"item r{i}"}], "max_tokens": 8}
        for i in range(12)
    ]
    requests[0] = BatchRequest("slow", [{"role": "user", "content": "item slow"}], {"max_tokens": 8})
    flight = _InFlight()
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        server.enqueue(Reply("slow one", delay=0.5))
        server.default_reply = Reply(delay=0.05)
        if mode == "sync":
            with Client(config=_config(server)) as client:
                client.on(AttemptStarted, flight.started)
                client.on(CallFinished, flight.finished)
                results = list(client.batch(requests, model="fast", concurrency=3))
        else:

            async def go() -> list[Any]:
                async with AsyncClient(config=_config(server)) as client:
                    client.on(AttemptStarted, flight.started)
                    client.on(CallFinished, flight.finished)
                    return [r async for r in client.batch(requests, model="fast", concurrency=3)]

            results = asyncio.run(go())
    assert sorted(r.custom_id for r in results) == sorted(["slow", *(f"r{i}" for i in range(1, 12))])
    last = results[-1].response
    assert last is not None and last.text == "slow one"  # yielded when it finished, not in input order
    assert all(r.ok and r.response is not None and r.cost for r in results)
    assert flight.most == 3


# -- provider batches -----------------------------------------------------------------------------


def test_provider_batch_uploads_polls_and_writes_the_same_format_at_the_batch_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        server.default_reply = Reply("ok", prompt_tokens=100, completion_tokens=10)
        server.enqueue(Reply("ok", prompt_tokens=100, completion_tokens=10), Fault.server_error())
        server.batch_polls = 3
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server, main="batch_discount = 0.25"))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 6)
        args = ["batch", str(requests), "-o", str(out), "--config", str(config), "--provider-batch", "--poll", "0.01"]
        assert main([*args, "--model", "fast"]) == 1  # one request failed
        paths = [(r.method, r.path.split("/batch_")[0].split("/file-")[0].rstrip("/")) for r in server.requests]
        assert server.chat_requests == []
        upload = next(r for r in server.requests if r.path == "/v1/files")
        assert b'name="purpose"' in upload.body and upload.headers["content-type"].startswith("multipart/form-data")
    assert paths[:3] == [("POST", "/v1/files"), ("POST", "/v1/batches"), ("GET", "/v1/batches")]
    assert paths.count(("GET", "/v1/batches")) == 3  # polled until it read completed (batch_polls)
    assert paths[-2:] == [("GET", "/v1/files"), ("GET", "/v1/files")]  # the output and error files
    lines = _output(out)
    assert sorted(line["custom_id"] for line in lines) == [f"r{i}" for i in range(6)]
    ok = [line for line in lines if line["error"] is None]
    assert len(ok) == 5 and all(line["response"]["body"]["object"] == "chat.completion" for line in ok)
    # 100 in at $1/M + 10 out at $2/M = $0.00012, less the provider's 25 % batch discount
    assert {Decimal(line["turnout"]["cost"]) for line in ok} == {Decimal("0.00009")}
    failed = next(line for line in lines if line["error"] is not None)
    assert failed["response"]["status_code"] == 500 and failed["error"]["code"] == "ServerError"
    assert "created" in capsys.readouterr().err
    assert not Path(f"{out}.provider-batch.json").exists()


def test_a_provider_batch_killed_while_polling_polls_the_same_batch_again(tmp_path: Path) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        server.batch_polls = 10_000
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 4)
        args = [str(requests), "-o", str(out), "--config", str(config), "--model", "fast", "--provider-batch"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        process = subprocess.Popen(_cli(*args, "--poll", "0.01"), env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not any(r.path.startswith("/v1/batches/") for r in server.requests):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert Path(f"{out}.provider-batch.json").exists()
        server.batch_polls = 0
        assert main(["batch", *args, "--poll", "0.01"]) == 0
        uploads = [r for r in server.requests if r.method == "POST" and r.path == "/v1/files"]
    assert len(uploads) == 1  # the requests went to the provider once
    assert sorted(line["custom_id"] for line in _output(out)) == [f"r{i}" for i in range(4)]


def test_provider_batch_needs_an_openai_target(tmp_path: Path) -> None:
    with FakeServer(flavor="vllm", models=["llama"]) as server:
        config = tmp_path / "turnout.toml"
        config.write_text(
            f'[providers.v]\ntype = "vllm"\nbase_url = "{server.base_url}"\n[ledger]\nenabled = false\n'
            '[prices."v:llama"]\ninput_per_million = "0"\noutput_per_million = "0"\n'
        )
        requests = tmp_path / "in.jsonl"
        _write_requests(requests, 1)
        out = tmp_path / "out.jsonl"
        args = ["batch", str(requests), "-o", str(out), "--config", str(config), "--model", "v:llama"]
        assert main([*args, "--provider-batch"]) == 1
        assert main(args) == 0  # the same file runs unchanged against vLLM, one request at a time
        assert len(server.chat_requests) == 1


@pytest.mark.parametrize("form", ["--rich", "--plain"])
def test_progress_shows_done_failed_rate_and_dollars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key="sk-test") as server:
        server.enqueue(Fault.server_error())
        config = tmp_path / "turnout.toml"
        config.write_text(_toml(server))
        requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        _write_requests(requests, 5)
        assert main(["batch", str(requests), "-o", str(out), "--config", str(config), form]) == 1
    err = capsys.readouterr().err
    if form == "--rich":
        assert "5/5" in err and "failed 1" in err and "/s" in err and "$0.0000" in err
    else:
        assert "batch: 5/5 (4 ok, 1 failed)" in err and "/s, ETA" in err
    assert "4 answered, 1 failed; spent $" in err


def test_a_hedged_reply_names_the_target_that_answered_not_the_loser_recorded_after_it() -> None:
    from turnout.batch import BatchResult
    from turnout.types import Attempt, ChatResponse, Usage

    attempts = [
        Attempt(provider="b", model="m", outcome="ok", latency=0.1),
        Attempt(provider="a", model="m", outcome="cancelled", latency=0.2),
    ]
    response = ChatResponse(text="hi", choices=[], usage=Usage(), provider="b", model="m-2024-07-18", attempts=attempts)
    assert BatchResult(custom_id="1", response=response).to_json()["turnout"]["target"] == "b:m"
    failed = BatchResult(custom_id="2", error=None).to_json()
    assert failed["turnout"]["target"] is None
