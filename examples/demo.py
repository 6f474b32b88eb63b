"""`make demo`: a real chat request through turnout, with a fallback and a cost line.

Two servers run on 127.0.0.1, no API key and no internet needed:

- "cloud", an OpenAI-shaped server that is rate-limiting right now (429), and
- "local", a vLLM server: the real one from ``scripts/vllm-test-server`` when it is running
  (``make vllm-start``), otherwise turnout's own vLLM-shaped fake (`turnout.testing`).

The route ``fast`` tries cloud first, falls back to local, and prints the answer, the route
taken and what the call cost.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import turnout
from turnout.cli import route_line
from turnout.testing import FakeServer, Fault, Reply

LLAMA = "meta-llama/Llama-2-7b-chat-hf"


def real_vllm() -> tuple[str, str, str] | None:
    """(base_url, model, api_key) of a running real vLLM test server, if any."""
    state = Path(os.environ.get("TURNOUT_CACHE_DIR", Path.home() / ".cache" / "turnout")) / "vllm" / "server.json"
    try:
        info = json.loads(state.read_text())
        with urllib.request.urlopen(info["base_url"].removesuffix("/v1") + "/health", timeout=2):
            return info["base_url"], info["model"], info["api_key"]
    except (OSError, ValueError, KeyError):
        return None


def main() -> int:
    with (
        FakeServer(flavor="openai", models=["gpt-4o-mini"]) as cloud,
        FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as fake_local,
    ):
        cloud.enqueue(Fault.rate_limit(retry_after=30))  # the cloud is busy for the next 30 s
        fake_local.default_reply = Reply(
            "Turnouts let a train move from one track to another, so lines can branch, merge and pass."
        )
        found = real_vllm()
        base_url, model, key = found or (fake_local.base_url, LLAMA, "")
        print(f"local server: {'real vLLM' if found else 'turnout.testing fake vLLM'} at {base_url}")
        if found:
            print("(the test server's tiny model has random weights: its words are gibberish by design)")
        else:
            print("(the fake server's answer is scripted; run `make vllm-start` first for a real model)")
        local: dict[str, object] = {"type": "vllm", "base_url": base_url}
        if key:
            local["api_key"] = key
        config = {
            "providers": {
                "cloud": {"type": "openai", "base_url": cloud.base_url, "api_key": "sk-demo-not-a-real-key"},
                "local": local,
            },
            # Retry-After 30 s is longer than the 10 s deadline: skip to the next target at once.
            "models": {"fast": {"targets": ["cloud:gpt-4o-mini", f"local:{model}"], "deadline": 10}},
            # Self-hosted: price it yourself (USD per 1M tokens).
            "prices": {f"local:{model}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        }
        with turnout.Client(config=config) as client:
            question = "In one sentence, why do railways need turnouts?"
            print(f"> {question}")
            with client.stream("fast", question, max_tokens=48, temperature=0) as stream:
                for chunk in stream:
                    print(chunk.text or "", end="", flush=True)
            print()
            print(route_line(stream.response))
    return 0


if __name__ == "__main__":
    sys.exit(main())
