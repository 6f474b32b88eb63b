"""Shortcut types for hosts that serve Llama 2 over OpenAI's wire format: only ``api_key`` is needed.

Each is ``openai-compatible`` with the host's documented API root and its id in the genai-prices
catalogue filled in; ``base_url`` and ``price_catalogue`` can still be overridden.

| type | base_url | price catalogue |
| --- | --- | --- |
| ``together`` | https://api.together.xyz/v1 | ``together`` |
| ``hf-router`` | https://router.huggingface.co/v1 (the HF inference router) | none: the routed provider bills |
| ``fireworks`` | https://api.fireworks.ai/inference/v1 | ``fireworks`` |
| ``deepinfra`` | https://api.deepinfra.com/v1/openai | none in genai-prices |
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from ..config import ProviderConfig
from .openai_compatible import OpenAICompatibleProvider

__all__ = [
    "DeepInfraConfig",
    "DeepInfraProvider",
    "FireworksConfig",
    "FireworksProvider",
    "HFRouterConfig",
    "HFRouterProvider",
    "TogetherConfig",
    "TogetherProvider",
]

_KEY = 'the host\'s API key; write "${VAR}" to read it from the environment'


class _PresetConfig(ProviderConfig):
    api_key: SecretStr = Field(description=_KEY)
    price_catalogue: str | None = Field(default=None, description="the host's id in the genai-prices catalogue")


class _PresetProvider(OpenAICompatibleProvider):
    requires_api_key: ClassVar[bool] = True


class TogetherConfig(_PresetConfig):
    """``type = "together"``: Together AI (Llama 2 ids such as ``meta-llama/Llama-2-70b-chat-hf``)."""

    type: Literal["together"] = "together"
    price_catalogue: str | None = "together"


class TogetherProvider(_PresetProvider):
    """Together AI's OpenAI-compatible API."""

    config_model: ClassVar[type[ProviderConfig]] = TogetherConfig
    default_base_url: ClassVar[str | None] = "https://api.together.xyz/v1"


class HFRouterConfig(_PresetConfig):
    """``type = "hf-router"``: the Hugging Face inference router; ``api_key`` is an HF token.

    Model ids are Hub ids, optionally with a provider suffix (``meta-llama/Llama-2-7b-chat-hf:together``).
    """

    type: Literal["hf-router"] = "hf-router"


class HFRouterProvider(_PresetProvider):
    """The HF router's OpenAI-compatible API (https://huggingface.co/docs/inference-providers)."""

    config_model: ClassVar[type[ProviderConfig]] = HFRouterConfig
    default_base_url: ClassVar[str | None] = "https://router.huggingface.co/v1"


class FireworksConfig(_PresetConfig):
    """``type = "fireworks"``: Fireworks AI (Llama 2 ids ``accounts/fireworks/models/llama-v2-*``)."""

    type: Literal["fireworks"] = "fireworks"
    price_catalogue: str | None = "fireworks"


class FireworksProvider(_PresetProvider):
    """Fireworks AI's OpenAI-compatible API."""

    config_model: ClassVar[type[ProviderConfig]] = FireworksConfig
    default_base_url: ClassVar[str | None] = "https://api.fireworks.ai/inference/v1"


class DeepInfraConfig(_PresetConfig):
    """``type = "deepinfra"``: DeepInfra (Llama 2 ids ``meta-llama/Llama-2-*-chat-hf``)."""

    type: Literal["deepinfra"] = "deepinfra"


class DeepInfraProvider(_PresetProvider):
    """DeepInfra's OpenAI-compatible API."""

    config_model: ClassVar[type[ProviderConfig]] = DeepInfraConfig
    default_base_url: ClassVar[str | None] = "https://api.deepinfra.com/v1/openai"
