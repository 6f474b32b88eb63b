"""Any server that speaks OpenAI's Chat Completions wire format (Together, a proxy, llama.cpp, ...)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..config import ProviderConfig
from ..types import ChatRequest
from ._embed_wire import Encoding
from ._openai_wire import continue_final_message
from .openai import OpenAIProvider

__all__ = ["OpenAICompatibleConfig", "OpenAICompatibleProvider"]


class OpenAICompatibleConfig(ProviderConfig):
    """``type = "openai-compatible"``: ``base_url`` is required; ``api_key`` if the host needs one.

    ``price_catalogue`` names the host in the genai-prices catalogue (e.g. ``"together"``) so
    its list prices apply; leave it unset and give prices in ``[prices]`` otherwise.
    """

    type: Literal["openai-compatible"] = "openai-compatible"
    base_url: str = Field(description="the host's API root, e.g. https://api.together.xyz/v1")
    price_catalogue: str | None = None
    continue_final_message: bool = Field(
        default=False,
        description=(
            "the host continues a final assistant message when asked with vLLM's continue_final_message "
            "(lets a route with resume = 'continue' finish a cut stream here; a host that ignores it would repeat)"
        ),
    )


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible server at a configured ``base_url``."""

    config_model: ClassVar[type[ProviderConfig]] = OpenAICompatibleConfig
    catalogue_provider: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None
    requires_api_key: ClassVar[bool] = False
    embed_batch_size: ClassVar[int] = 128  # hosts set their own limits; lower it with batch_size=
    embed_encoding: ClassVar[Encoding] = "float"  # not every host decodes base64 requests

    def continuation(self, model: str, request: ChatRequest, partial: str) -> ChatRequest | None:
        """The ``continue_final_message`` request of vLLM, only when the config declares the host honours it."""
        del model
        if not getattr(self.config, "continue_final_message", False):
            return None
        return continue_final_message(request, partial)

    def price_catalogue(self) -> str | None:
        """The configured ``price_catalogue`` host id, if any."""
        return getattr(self.config, "price_catalogue", None)
