"""``response_model=`` against the REAL vLLM server: the schema is enforced server-side and the reply parses.

The model is random, but vLLM's structured outputs (xgrammar, ``disable_any_whitespace``) constrain
its tokens to the schema, so a model of bounded fields (enums, bounded integers, booleans) comes
back valid. Both the ``vllm`` provider (OpenAI's ``response_format``) and the ``huggingface``
provider on the same server (huggingface_hub; the schema goes as ``structured_outputs``) are used.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

import turnout
from turnout import AsyncClient, Client

from .conftest import VLLMServer

pytestmark = pytest.mark.filterwarnings("ignore::turnout.CostUnknownWarning")
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
PROVIDERS = pytest.mark.parametrize("kind", ["vllm", "huggingface"])


class Review(BaseModel):
    verdict: Literal["good", "bad"]
    stars: int = Field(ge=1, le=5)
    recommended: bool


def config_for(server: VLLMServer, kind: str) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": kind, "base_url": server.base_url, "api_key": server.api_key}
    if kind == "huggingface":
        provider["response_format_style"] = "openai"  # an endpoint running vLLM, not TGI
    return {
        "providers": {"local": provider},
        "prices": {f"local:{server.model}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "defaults": {"retry": {"max_attempts": 1}},
    }


def call(mode: str, streamed: bool, config: dict[str, Any], model: str, **options: Any) -> turnout.ChatResponse:
    """One call through Client or AsyncClient, as ``chat()`` or a stream read to its end."""
    if mode == "sync":
        with Client(config=config) as client:
            if not streamed:
                return client.chat(model, "Review this film as JSON.", **options)
            with client.stream(model, "Review this film as JSON.", **options) as stream:
                return stream.get_response()

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(config=config) as client:
            if not streamed:
                return await client.chat(model, "Review this film as JSON.", **options)
            async with client.stream(model, "Review this film as JSON.", **options) as stream:
                return await stream.get_response()

    return asyncio.run(go())


@PROVIDERS
@STREAMED
@MODES
def test_a_pydantic_model_round_trips(vllm_server: VLLMServer, kind: str, streamed: bool, mode: str) -> None:
    config = config_for(vllm_server, kind)
    reply = call(
        mode, streamed, config, f"local:{vllm_server.model}", max_tokens=60, temperature=0, response_model=Review
    )

    assert isinstance(reply.parsed, Review)
    assert reply.parsed == Review.model_validate_json(reply.text)
    assert [a.outcome for a in reply.attempts] == ["ok"]
    assert reply.finish_reason == "stop"  # the grammar ended the object before max_tokens
    assert reply.cost is not None and reply.usage.completion_tokens is not None


@PROVIDERS
@MODES
def test_a_reply_cut_at_max_tokens_is_re_asked_then_raised(vllm_server: VLLMServer, kind: str, mode: str) -> None:
    config = config_for(vllm_server, kind)
    with pytest.raises(turnout.OutputValidationError, match="stopped at max_tokens") as info:
        call(mode, False, config, f"local:{vllm_server.model}", max_tokens=3, temperature=0, response_model=Review)
    exc = info.value
    assert exc.text.startswith("{") and exc.errors[0]["type"] == "json_invalid"
    assert [a.outcome for a in exc.attempts] == ["OutputValidationError", "OutputValidationError"]
    assert exc.response is not None and exc.response.usage.completion_tokens == 3
    assert exc.response.cost is not None
