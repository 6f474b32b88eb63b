"""OpenAI's Chat Completions API, spoken directly over httpx2.

turnout speaks the documented wire format itself rather than through the openai SDK's
client: one HTTP stack (httpx2), no SDK retries to stack under turnout's own, and a stream
that must end with ``data: [DONE]`` (the SDK's iterator ends silently when the connection
drops first). Wire shapes: https://platform.openai.com/docs/api-reference/chat.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx2
from pydantic import Field, SecretStr

from .. import _defaults
from ..config import ProviderConfig
from ..errors import ResponseValidationError, StreamInterruptedError
from ..types import ChatChunk, ChatRequest, ChatResponse, ProviderRateLimit
from ._http import HTTPProvider
from ._openai_wire import DONE_DATA, build_body, parse_chunk, parse_completion
from ._ratelimit_headers import rate_limit_from_headers
from ._send import abody_chunks, aclose_chunks, body_chunks
from ._sse import SSEDecoder, afinish_sse, aiter_sse_rest, finish_sse, iter_sse_data

if TYPE_CHECKING:
    from ..embeddings import EmbeddingRequest, EmbeddingResponse
    from ._embed_wire import Encoding

__all__ = ["OpenAIConfig", "OpenAIProvider"]

_CHAT_PATH = "/chat/completions"
#: OpenAI's reasoning models (o-series, gpt-5) reject ``max_tokens`` and take ``max_completion_tokens``:
#: https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_tokens
_REASONING_MODEL = re.compile(r"(ft:)?(o\d|gpt-5)(\b|[-.])")


class OpenAIConfig(ProviderConfig):
    """``type = "openai"``: api.openai.com (or a proxy of it). ``api_key`` is required."""

    type: Literal["openai"] = "openai"
    api_key: SecretStr = Field(description='your OpenAI key; write "${OPENAI_API_KEY}" to read it from the environment')
    organization: str | None = None
    project: str | None = None


def _with_limit(chunk: ChatChunk, limit: ProviderRateLimit) -> ChatChunk:
    """The first chunk of a stream, carrying what its response headers said of the rate limit."""
    return chunk.model_copy(update={"rate_limit": limit})


class OpenAIProvider(HTTPProvider):
    """Chat completions on OpenAI's API, and the base of every OpenAI-wire provider."""

    config_model: ClassVar[type[ProviderConfig]] = OpenAIConfig
    catalogue_provider: ClassVar[str | None] = "openai"
    default_base_url: ClassVar[str | None] = _defaults.OPENAI_BASE_URL
    requires_api_key: ClassVar[bool] = True
    # OpenAI takes at most 2048 inputs per request: https://platform.openai.com/docs/api-reference/embeddings/create
    embed_batch_size: ClassVar[int] = 2048
    embed_encoding: ClassVar[Encoding] = "base64"  # what /embeddings is asked for (decoded to floats)

    def __init__(self, name: str, config: ProviderConfig) -> None:
        if self.requires_api_key and config.api_key is None:
            from ..errors import ConfigError

            raise ConfigError(
                f"providers.{name}.api_key: required for type {config.type!r}. "
                f'Add api_key = "${{YOUR_KEY_VARIABLE}}" and set that environment variable.'
            )
        super().__init__(name, config)
        self._windows: dict[str, int | None] = {}  # context windows, looked up once per model
        if isinstance(config, OpenAIConfig):
            if config.organization:
                self._headers["openai-organization"] = config.organization
            if config.project:
                self._headers["openai-project"] = config.project

    def chat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Send a chat completion request and decode the reply."""
        response = self.post(_CHAT_PATH, self._body(model, request, stream=False), request, model)
        return self._completion(response, model)

    async def achat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Async twin of `chat`."""
        response = await self.apost(_CHAT_PATH, self._body(model, request, stream=False), request, model)
        return self._completion(response, model)

    def _completion(self, response: httpx2.Response, model: str) -> ChatResponse:
        try:
            reply = parse_completion(
                response.content, provider=self.name, model=model, request_id=response.headers.get("x-request-id")
            )
        except ResponseValidationError as exc:  # say what came: an error body, a web page, nothing
            raise self.error_in_reply(response, model, expected="a chat completion", problem=exc.message) from exc
        limit = rate_limit_from_headers(response.headers)
        return reply if limit is None else reply.model_copy(update={"rate_limit": limit})

    def stream(self, model: str, request: ChatRequest) -> Iterator[ChatChunk]:
        """Stream a chat completion; raise `StreamInterruptedError` if it ends before ``[DONE]``."""
        with self.post_stream(_CHAT_PATH, self._body(model, request, stream=True), request, model) as response:
            limit = rate_limit_from_headers(response.headers)  # headers come before the body
            try:
                events, empty = iter_sse_data(body_chunks(response)), True
                for data in events:
                    if data == DONE_DATA:
                        if empty:
                            raise self._empty_stream(model)
                        finish_sse(events)
                        return
                    empty = False
                    chunks = parse_chunk(data, provider=self.name, model=model)  # text-only events: fast
                    if limit is not None and chunks:  # the headers' rate limit rides on the first chunk
                        chunks[0], limit = _with_limit(chunks[0], limit), None
                    yield from chunks
            except httpx2.TransportError as exc:
                exc.request = response.request  # as httpx2's iter_raw attaches it
                raise self._interrupted(model, exc) from exc
            raise self._interrupted(model, None)

    async def astream(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Async twin of `stream`.

        The body is decoded here, not through `aiter_sse_data`: an async generator resumed per
        event costs more than the decoding it wraps.
        """
        body = self._body(model, request, stream=True)
        async with self.apost_stream(_CHAT_PATH, body, request, model) as response:
            limit = rate_limit_from_headers(response.headers)  # headers come before the body
            pieces = abody_chunks(response)
            try:
                decoder, empty, ended = SSEDecoder(), True, False
                while not ended:
                    try:
                        events = iter(decoder.feed(await anext(pieces)))
                    except StopAsyncIteration:
                        events, ended = iter(decoder.close()), True
                    for data in events:
                        if data == DONE_DATA:
                            if empty:
                                raise self._empty_stream(model)
                            await afinish_sse(aiter_sse_rest(events, pieces, decoder))
                            return
                        empty = False
                        chunks = parse_chunk(data, provider=self.name, model=model)
                        if limit is not None and chunks:
                            chunks[0], limit = _with_limit(chunks[0], limit), None
                        for chunk in chunks:
                            yield chunk
            except httpx2.TransportError as exc:
                exc.request = response.request
                raise self._interrupted(model, exc) from exc
            finally:
                await aclose_chunks(pieces)
            raise self._interrupted(model, None)

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed one batch with ``POST /embeddings``."""
        from . import _embed_wire  # loaded by the first embeddings call

        return _embed_wire.embed(self, model, request, self.embed_encoding)

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Async twin of `embed`."""
        from . import _embed_wire

        return await _embed_wire.aembed(self, model, request, self.embed_encoding)

    def context_window(self, model: str) -> int | None:
        """The model's context window from the price catalogue (genai-prices), when it lists one."""
        catalogue = self.price_catalogue()
        if catalogue is None:
            return None
        if model not in self._windows:
            from ..cost.prices import catalogue_context_window

            self._windows[model] = catalogue_context_window(catalogue, model)
        return self._windows[model]

    async def acontext_window(self, model: str) -> int | None:
        """Async twin of `context_window` (no I/O: the catalogue ships with genai-prices)."""
        return self.context_window(model)

    def count_tokens(self, model: str, request: ChatRequest) -> int | None:
        """Exact prompt tokens of an OpenAI chat model, counted offline (needs ``turnout[tokens]``).

        None for models priced outside OpenAI's catalogue (an OpenAI-compatible host serves
        other tokenizers), for unverified model families, and for requests with tools.
        """
        if self.price_catalogue() != "openai":
            return None
        from ._openai_tokens import count_chat_tokens

        return count_chat_tokens(model, request)

    async def acount_tokens(self, model: str, request: ChatRequest) -> int | None:
        """Async twin of `count_tokens` (no I/O: the count is computed locally)."""
        return self.count_tokens(model, request)

    def option_fields(self, model: str, request: ChatRequest) -> dict[str, Any] | None:
        """Top-level body fields from the provider's typed options (`options_for`); None without any.

        OpenAI takes none (``options_model`` is None); vLLM's are top-level fields of the body.
        """
        if self.options_model is None:
            return None
        options = self.options_for(model, request)
        return None if options is None else options.wire_fields()

    def _body(self, model: str, request: ChatRequest, *, stream: bool) -> bytes:
        return build_body(
            model,
            request,
            stream=stream,
            fields=self.option_fields(model, request),
            completion_cap=self.price_catalogue() == "openai" and _REASONING_MODEL.match(model) is not None,
        )

    def _empty_stream(self, model: str) -> ResponseValidationError:
        return ResponseValidationError(
            "the stream ended (data: [DONE]) without a single chunk: no answer at all", provider=self.name, model=model
        )

    def _interrupted(self, model: str, exc: httpx2.TransportError | None) -> StreamInterruptedError:
        reason = f"{type(exc).__name__}: {exc}" if exc else "the server closed the stream without data: [DONE]"
        return StreamInterruptedError(f"stream interrupted ({reason})", provider=self.name, model=model)
