"""Every example in examples/ runs, start to end, against servers it starts itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))
EXPECTED = {
    "cost_and_budget.py": [
        "prompt tokens (exact: True), $0.0000000 to $0.0011574",
        "actual: $0.0009259259",
        "refused before sending: models.llama has $0.0010741 left",
        "cost_usd",
    ],
    "demo.py": ["route: cloud:gpt-4o-mini RateLimitError -> local:", " ok", "cost: $"],
    "quickstart.py": ["meta-llama/Llama-2-7b-chat-hf", "config)"],
    "async_streaming.py": ["usage: prompt_tokens="],
    "llama2_huggingface.py": [
        "chat mode: Llamas are camelids",
        "text-mode prompt: '[INST] <<SYS>>",
        "endpoint limits: 4095 input / 4096 total tokens",
        "424: APIStatusError retryable=False error_type=generation",
        "fallback: endpoint ContextWindowExceededError -> together ok; cost $",
    ],
    "fallback_and_errors.py": [
        "primary:gpt-4o-mini -> ServerError",
        "backup:llama -> ok",
        "bad request:",
        "RateLimitError primary 5.0",
    ],
}


def test_every_example_has_expectations() -> None:
    assert {p.name for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for fragment in EXPECTED[path.name]:
        assert fragment in result.stdout, result.stdout
