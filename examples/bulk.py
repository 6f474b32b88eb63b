"""Bulk work: a JSONL batch with a fallback, resumed; a provider batch at half price; the response cache."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import turnout
from turnout.cli import main as turnout_cli
from turnout.testing import FakeServer, Fault, Reply

folder = Path(tempfile.mkdtemp())
LLAMA = "meta-llama/Llama-2-7b-chat-hf"

with FakeServer(flavor="openai", models=["gpt-4o-mini"]) as openai, FakeServer(flavor="vllm", models=[LLAMA]) as vllm:
    config = folder / "turnout.toml"
    config.write_text(f"""
[providers.openai]
type = "openai"
base_url = "{openai.base_url}"
api_key = "sk-example"

[providers.local]
type = "vllm"
base_url = "{vllm.base_url}"

[models.fast]
targets = ["openai:gpt-4o-mini", "local:{LLAMA}"]

[prices."openai:gpt-4o-mini"]
input_per_million = 0.15
output_per_million = 0.60

[prices."local:{LLAMA}"]
input_per_million = 0.10
output_per_million = 0.20

[defaults.retry]
max_attempts = 1

[cache]
backend = "sqlite"
path = "cache.sqlite3"

[ledger]
path = "ledger.sqlite3"
""")
    requests = folder / "requests.jsonl"
    with requests.open("w") as out:
        for n in range(50):
            body = {"messages": [{"role": "user", "content": f"Classify ticket {n}"}], "max_tokens": 16}
            out.write(json.dumps({"custom_id": f"ticket-{n}", "body": body}) + "\n")

    # One request in five fails on OpenAI; the route falls back to the local Llama 2.
    openai.enqueue(*([Reply("billing")] * 4 + [Fault.server_error()]) * 10)
    results = folder / "results.jsonl"
    args = ["batch", str(requests), "-o", str(results), "--model", "fast", "--config", str(config), "--plain"]
    status = turnout_cli([*args, "--max-usd", "0.01", "--concurrency", "8"])
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    targets = Counter(line["turnout"]["target"] for line in lines)
    print(f"batch: exit {status}, {len(lines)} results, by target {dict(sorted(targets.items()))}")

    # Run it again: everything is in the output, so nothing is sent.
    before = len(openai.chat_requests) + len(vllm.chat_requests)
    turnout_cli(args)
    print(f"resumed: {len(openai.chat_requests) + len(vllm.chat_requests) - before} requests sent")

    # The same file through OpenAI's Batch API, priced at the batch rate.
    batched = folder / "batched.jsonl"
    turnout_cli(
        ["batch", str(requests), "-o", str(batched), "--config", str(config), "--model", "fast"]
        + ["--provider-batch", "--poll", "0.1"]
    )
    cost = sum(float(json.loads(line)["turnout"]["cost"] or 0) for line in batched.read_text().splitlines())
    print(f"provider batch: {len(batched.read_text().splitlines())} results for ${cost:.6f}")

    # The response cache: the second identical call is answered from cache.sqlite3.
    with turnout.Client.from_config(config) as client:
        first = client.chat("fast", "Summarise our refund policy.", max_tokens=32)
        again = client.chat("fast", "Summarise our refund policy.", max_tokens=32)
        print(f"cache: first from_cache={first.from_cache}, again from_cache={again.from_cache} cost {again.cost}")
