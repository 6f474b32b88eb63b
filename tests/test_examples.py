"""Every example in examples/ runs, start to end, against servers it starts itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))
EXPECTED = {
    "bulk.py": [
        "batch: exit 0, 50 results, by target {'local:meta-llama/Llama-2-7b-chat-hf': 10, 'openai:gpt-4o-mini': 40}",
        "resumed: 0 requests sent",
        "provider batch: 50 results for $0.0000",
        "cache: first from_cache=False, again from_cache=True cost $0 (in $0 + out $0; cache)",
    ],
    "azure.py": [
        "answered by azure; cost $",
        "sent to: /openai/deployments/my-mini/chat/completions?api-version=2024-10-21",
        "fallback: azure ServerError -> azure ServerError -> azure ServerError -> openai ok",
        "refused: ['violence'] 400",
        "filtered: content_filter ['content_filter: choice 0 was filtered: sexual (medium)']",
        "not found: deployment 'gpt-4o' does not exist on http://127.0.0.1:",
        "bearer: ['Bearer token-1', 'Bearer token-2']",
    ],
    "cost_and_budget.py": [
        "prompt tokens (exact: True), $0.0000000 to $0.0011574",
        "actual: $0.0009259259",
        "refused before sending: models.llama has $0.0010741 left",
        "cost_usd",
    ],
    "embeddings.py": [
        "openai: 5 vectors of 16 in 3 requests",
        "genai-prices",
        "vllm: same text, cosine 1.000; cost $",
        "huggingface: 3 vectors, prompt_tokens=None cost=None",
        "chat model: EmbeddingsNotSupportedError (HTTP 404)",
        "async: 10 vectors, 30 tokens in 3 requests",
    ],
    "demo.py": ["route: cloud:gpt-4o-mini RateLimitError -> local:", " ok", "cost: $"],
    "quickstart.py": ["meta-llama/Llama-2-7b-chat-hf", "config)"],
    "structured_output.py": [
        "parsed: Oslo 21 sunny",
        'sent: {"type": "json_schema", "json_schema": {"name": "Forecast"',
        "re-asked: ['OutputValidationError', 'ok'] 12 | cost $0.00003465",
        "fell back: cloud OutputValidationError -> cloud OutputValidationError -> local ok",
        "streamed: 6 chunks -> city='Lima' high_c=19 sky='cloudy'",
        "invalid: 'no idea' json_invalid",
    ],
    "async_streaming.py": ["usage: prompt_tokens="],
    "llama2_huggingface.py": [
        "chat mode: Llamas are camelids",
        "text-mode prompt: '[INST] <<SYS>>",
        "endpoint limits: 4095 input / 4096 total tokens",
        "424: APIStatusError retryable=False error_type=generation",
        "fallback: endpoint ContextWindowExceededError -> together ok; cost $",
    ],
    "plugin_provider.py": [
        "chat: mine stop completion_tokens=3 cost=None",
        "stream: True mine",
        "fallback: mine ServerError -> mine ServerError -> mine ServerError -> backup ok",
    ],
    "provider_options.py": [
        "vllm received: {'top_k': 40, 'min_p': 0.05, 'repetition_penalty': 1.1, "
        "'structured_outputs': {'choice': ['yes', 'no']}} -> 'yes'",
        "route: local ServerError -> endpoint ok; TGI /generate parameters: ",
        "'grammar': {'type': 'regex', 'value': '[0-9]+'}",
        "'top_k': 10",
        "refused: provider_options: TGIOptions apply to no target of",
        "in code: Value error, unknown option 'topk' for VLLMOptions (valid options: ignore_eos, min_p,",
        "in config: <dict>: invalid configuration:\n  - providers.local.options: unknown option 'top_p'",
    ],
    "tools.py": [
        "tool_calls: get_weather({'city': 'Paris'}) -> 18 C and sunny in Paris",
        "answer: It is 18 C and sunny in Paris.",
        "transcript: user -> assistant -> tool -> assistant",
        "rounds: 2, tokens: ",
        "sent: ['city']",
    ],
    "telemetry.py": [
        "span 'chat gpt-4o-mini' (ERROR) gen_ai.provider.name=openai, error.type=ServerError",
        "span 'chat llama' (UNSET) gen_ai.provider.name=vllm, gen_ai.usage.input_tokens=8",
        "span 'chat chat' (UNSET) turnout.attempts=2, turnout.fell_back=True",
        "hook: chat cost 0.0000010",
        "span 'stream chat' (UNSET) turnout.attempts=1",
        "metric gen_ai.client.token.usage [{token}]",
        "metric gen_ai.client.operation.time_to_first_chunk [s]: 1 series",
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
