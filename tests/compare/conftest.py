"""Fakes for `turnout compare`: an OpenAI model, a Llama 2 endpoint (TGI) priced by the GPU hour, an unpriced vLLM."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from turnout.testing import FakeServer, FakeTGIServer

LLAMA_13B = "meta-llama/Llama-2-13b-chat-hf"
LOCAL = "meta-llama/Llama-2-7b-chat-hf"


@dataclass
class Fakes:
    openai: FakeServer
    tgi: FakeTGIServer
    vllm: FakeServer

    def toml(self, tmp_path: Path, extra: str = "") -> Path:
        """A turnout.toml: gpt35 ($0.50/$1.50 per 1M), llama2-13b ($1.30 per GPU hour), local (no price)."""
        path = tmp_path / "turnout.toml"
        path.write_text(
            f"""
[providers.openai]
type = "openai"
api_key = "sk-test"
base_url = "{self.openai.base_url}"

[providers.hf]
type = "huggingface"
base_url = "{self.tgi.url}"
api_key = "hf_test"

[providers.local]
type = "vllm"
base_url = "{self.vllm.base_url}"

[models.gpt35]
targets = ["openai:gpt-3.5-turbo"]

[models.llama2-13b]
targets = ["hf:{LLAMA_13B}"]

[models.local]
targets = ["local:{LOCAL}"]

[prices."openai:gpt-3.5-turbo"]
input_per_million = 0.50
output_per_million = 1.50

[prices."hf:{LLAMA_13B}"]
usd_per_hour = 1.30
tokens_per_second = 100

[defaults]
retry = {{ max_attempts = 1 }}
{extra}
""",
            encoding="utf-8",
        )
        return path


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with (
        FakeServer("openai") as openai,
        FakeTGIServer(LLAMA_13B) as tgi,
        FakeServer("vllm", models=[LOCAL]) as vllm,
    ):
        yield Fakes(openai, tgi, vllm)


def write_prompts(path: Path, lines: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


#: Four multiple-choice lines; the right letters are A, B, C, D.
MC_LINES: list[dict[str, object]] = [
    {"id": f"q{i}", "prompt": f"Question {i}?", "choices": ["w", "x", "y", "z"], "expected": "ABCD"[i]}
    for i in range(4)
]
