"""The provider interface: the small contract every backend implements.

A provider is one configured backend (``[providers.<name>]``). It turns a `ChatRequest` into
its wire format, sends it, and turns the reply into turnout's types, raising errors from
`turnout.errors`. It does not fall back or price: the client does that. Nothing retries yet: each target
gets one attempt.

Members: ``name``, ``config``, ``chat``/``achat``, ``stream``/``astream``, ``close``/``aclose``;
optional, with defaults: ``context_window``/``count_tokens`` (and async twins) for the
context-window pre-check, ``price_catalogue``, ``supports_tools``, ``continuation`` (how a cut
stream is resumed, if it can be), and ``options_model`` (the typed options the type takes, read
per call with ``options_for``).
Streams are generators: closing one early releases its connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, ClassVar

from ._provider_options import resolve as resolve_options
from .config import ProviderConfig
from .options import ProviderOptions
from .types import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .errors import EmbeddingsNotSupportedError

__all__ = ["Provider"]


class Provider(ABC):
    """Base class of every provider type.

    Subclasses set ``config_model`` to their config class (a `ProviderConfig` subclass whose
    ``type`` names them) and implement the four request methods.

    A stream generator yields `ChatChunk` objects and returns only after the server's end
    marker; if the stream breaks or ends early it raises `StreamInterruptedError`.
    """

    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig
    catalogue_provider: ClassVar[str | None] = None
    """Provider id in the price catalogue (genai-prices), or None when it has no list prices."""
    options_model: ClassVar[type[ProviderOptions] | None] = None
    """The typed options this provider type takes (`VLLMOptions`, `TGIOptions`), or None."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    def __repr__(self) -> str:
        from ._secrets import mask_url

        base_url = None if self.config.base_url is None else mask_url(self.config.base_url)
        return f"{type(self).__name__}(name={self.name!r}, base_url={base_url!r})"

    @abstractmethod
    def chat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Send one chat request and return the reply (``cost`` and ``attempts`` left empty)."""

    @abstractmethod
    async def achat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Async twin of `chat`."""

    @abstractmethod
    def stream(self, model: str, request: ChatRequest) -> Iterator[ChatChunk]:
        """Send one streamed chat request; yield its chunks."""

    @abstractmethod
    def astream(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Async twin of `stream`."""

    embed_batch_size: ClassVar[int] = 256
    """The most inputs one embeddings request carries; larger inputs are split (``batch_size=`` overrides)."""

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed one batch of texts (``cost`` and ``attempts`` left empty); by default: not supported.

        Raises:
            EmbeddingsNotSupportedError: this provider type has no embeddings route.
        """
        del request
        raise self._no_embeddings(model)

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Async twin of `embed`."""
        del request
        raise self._no_embeddings(model)

    def _no_embeddings(self, model: str) -> EmbeddingsNotSupportedError:
        from .errors import EmbeddingsNotSupportedError

        return EmbeddingsNotSupportedError(
            f"provider {self.name!r} (type {self.config.type!r}) does not serve embeddings; "
            "route embed() to an openai, vllm, openai-compatible or huggingface provider",
            provider=self.name,
            model=model,
        )

    def price_catalogue(self) -> str | None:
        """The provider id under which the price catalogue lists this provider's models."""
        return self.catalogue_provider

    def options_for(self, model: str, request: ChatRequest) -> ProviderOptions | None:
        """This provider's options for a call: config ``options``, ``model_options[model]``, the call's (later wins)."""
        return resolve_options(self, model, request)

    def supports_tools(self, model: str) -> bool:
        """Whether this provider can send ``tools`` to ``model`` (default True).

        Return False where tools cannot be expressed (a raw-prompt endpoint): a call with tools
        then skips this target before sending, or fails with `UnsupportedFeatureError`.
        """
        del model
        return True

    def continuation(self, model: str, request: ChatRequest, partial: str) -> ChatRequest | None:
        """The request that makes ``model`` continue ``partial`` (a cut answer to ``request``), or None.

        A route with ``resume = "continue"`` sends it after a stream was cut, and streams its
        chunks into the same answer. The default is None (cannot): a host that ignored a
        continuation flag would start the answer again, and turnout would append a duplicate.
        """
        del model, request, partial
        return None

    def with_running_usage(self, model: str, request: ChatRequest) -> ChatRequest:
        """``request`` asking the server for token counts in every streamed chunk, where it can (default: as is).

        A route that resumes cut streams, or is under a budget, sends streams this way, so a cut or
        abandoned stream is billed from the server's counts instead of an estimate.
        """
        del model
        return request

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, if this provider can tell (cached); else None."""
        del model
        return None

    async def acontext_window(self, model: str) -> int | None:
        """Async twin of `context_window`."""
        del model
        return None

    def count_tokens(self, model: str, request: ChatRequest) -> int | None:
        """The exact prompt tokens of ``request``, if the server can count them; else None."""
        del model, request
        return None

    async def acount_tokens(self, model: str, request: ChatRequest) -> int | None:
        """Async twin of `count_tokens`."""
        del model, request
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sync resources (connection pools)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release async resources (connection pools)."""
