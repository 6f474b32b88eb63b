"""`turnout compare` against the real vLLM server: it completes and reports the throughput it measured."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.cli import main
from turnout.config import hourly_price

from .conftest import VLLMServer


def test_compare_completes_and_measures_throughput(
    vllm_server: VLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "turnout.toml"
    config.write_text(
        f"""
[providers.local]
type = "vllm"
base_url = "{vllm_server.base_url}"
api_key = "{vllm_server.api_key}"

[models.tiny]
targets = ["local:{vllm_server.model}"]

[prices."local:{vllm_server.model}"]
usd_per_hour = 1.00
tokens_per_second = 120
""",
        encoding="utf-8",
    )
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"id": f"n{i}", "prompt": f"Count from {i} to {i + 5}.", "expected": "anything"} for i in range(8)]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    args = ["compare", str(prompts), "--models", "tiny", "--concurrency", "4", "--max-tokens", "12"]
    assert main([*args, "--temperature", "0", "--json", "--config", str(config)]) == 0
    (tiny,) = json.loads(capsys.readouterr().out, parse_float=Decimal)["models"]
    assert (tiny["requests"], tiny["errors"]) == (8, 0)
    assert tiny["completion_tokens"] > 0 and tiny["prompt_tokens"] > 0
    rate = tiny["output_tokens_per_second"]
    assert rate == pytest.approx(tiny["completion_tokens"] / tiny["wall_seconds"]) and rate > 0
    assert 0 < tiny["ttft_p50"] <= tiny["latency_p50"] <= tiny["latency_p95"]
    # billed per call at the configured 120 tok/s; at volume, the GPU hour at the rate just measured
    assert tiny["cost"] == sum(s["cost"] for s in tiny["samples"])
    assert tiny["cost_basis"] == "gpu-hour"
    measured = Decimal(tiny["completion_tokens"]) / Decimal(repr(float(tiny["wall_seconds"])))
    per_request = tiny["completion_tokens"] * hourly_price(Decimal(1), measured) / Decimal(1_000_000) / 8
    assert tiny["cost_per_1m"] == per_request * 1_000_000
    assert tiny["score"] == 0  # "anything" is never the exact answer
