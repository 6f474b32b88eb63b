"""The provider interface: the small contract every backend implements.

A provider is one configured backend (``[providers.<name>]``). It turns a `ChatRequest` into
its wire format, sends it, and turns the reply into turnout's types, raising errors from
`turnout.errors`. It does not fall back or price: the client does that. Nothing retries yet: each target
gets one attempt.

Members: ``name``, ``config``, ``chat``/``achat``, ``stream``/``astream``, ``close``/``aclose``;
optional, with defaults: ``context_window``/``count_tokens`` (and async twins) for the
context-window pre-check, and ``price_catalogue``.
Streams are generators: closing one early releases its connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

from .config import ProviderConfig
from .types import ChatChunk, ChatRequest, ChatResponse

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

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.config.base_url!r})"

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

    def price_catalogue(self) -> str | None:
        """The provider id under which the price catalogue lists this provider's models."""
        return self.catalogue_provider

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
