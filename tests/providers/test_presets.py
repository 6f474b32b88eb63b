"""OpenAI-compatible shortcut types for Llama 2 hosts: only a key is needed."""

from __future__ import annotations

from decimal import Decimal

import pytest

import turnout
from turnout import Client
from turnout.testing import FakeServer, Reply

from ..conftest import LLAMA, Runner

# -- OpenAI-compatible presets for Llama 2 hosts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "base_url", "catalogue"),
    [
        ("together", "https://api.together.xyz/v1", "together"),
        ("hf-router", "https://router.huggingface.co/v1", None),
        ("fireworks", "https://api.fireworks.ai/inference/v1", "fireworks"),
        ("deepinfra", "https://api.deepinfra.com/v1/openai", None),
    ],
)
def test_presets_need_only_a_key(kind: str, base_url: str, catalogue: str | None) -> None:
    client = Client(config={"providers": {"host": {"type": kind, "api_key": "k"}}})
    host = client.provider("host")
    assert host.base_url == base_url and host.price_catalogue() == catalogue  # type: ignore[attr-defined]
    with pytest.raises(turnout.ConfigError, match=r"providers\.host\.api_key: required key is missing"):
        turnout.Config.from_dict({"providers": {"host": {"type": kind}}})


def test_hf_router_preset_with_a_provider_suffix(runner: Runner) -> None:
    with FakeServer(flavor="openai", api_key="hf_router_token") as router:
        router.enqueue(Reply("routed", prompt_tokens=4, completion_tokens=1))
        config = {
            "providers": {"hf": {"type": "hf-router", "base_url": router.base_url, "api_key": "hf_router_token"}},
            "prices": {f"hf:{LLAMA}:together": {"input_per_million": "0.2", "output_per_million": "0.2"}},
            "defaults": {"retry": {"max_attempts": 1}},
        }
        reply = runner.chat(config, f"hf:{LLAMA}:together", "Hi")
    assert reply.text == "routed" and router.chat_requests[0].json["model"] == f"{LLAMA}:together"
    assert reply.cost is not None and reply.cost.total == Decimal("0.000001")
