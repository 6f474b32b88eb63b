"""The I/O half of the ``huggingface`` provider: huggingface_hub calls, streams and TGI helper routes.

Client lifetimes (huggingface_hub 2.4):

- Sync: one ``InferenceClient`` per call. It is cheap (its HTTP pool is huggingface_hub's shared
  session) and closing it closes a stream's response: ``InferenceClient`` keeps every streamed
  response open in its exit stack until the client is closed, even when the stream is abandoned.
- Async: a shared ``AsyncInferenceClient`` (one connection pool) for plain calls; its own client
  for each stream and for calls with their own ``timeout`` or ``extra_headers``, closed with it.

huggingface_hub ends a stream silently when the connection is closed cleanly without the
terminator, exactly as when ``data: [DONE]`` arrives. So a stream counts as finished only when
its last event came: the event with ``generated_text`` / ``details`` (text mode) or a
``finish_reason`` for every choice (chat mode). Otherwise `StreamInterruptedError` is raised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import aclosing
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx2

from .._secrets import mask_url
from ..errors import (
    APIConnectionError,
    ConfigError,
    ProviderError,
    StreamInterruptedError,
)
from ..types import ChatChunk, ChatRequest, ChatResponse
from ._hf_errors import map_error
from ._http import default_tls_context, forget_pools_after_fork
from ._loops import on_loop_shutdown
from ._openai_errors import error_from_response
from ._tgi_wire import TextStream, decode_chat, decode_chat_chunk

if TYPE_CHECKING:
    from types import ModuleType

    from huggingface_hub import AsyncInferenceClient, InferenceClient

    from .huggingface import HuggingFaceConfig

__all__ = ["FinishTracker", "HubCalls"]

_T = TypeVar("_T")
_BILL_TO_HEADER = "X-HF-Bill-To"


def _token_count(response: httpx2.Response) -> int | None:
    """The number of tokens in a ``/tokenize`` reply (a list of tokens), or None for anything else."""
    try:
        tokens = response.json()
    except ValueError:
        return None
    return len(tokens) if isinstance(tokens, list) else None


class FinishTracker:
    """Whether a chat stream delivered a ``finish_reason`` for every choice it started."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.text: list[str] = []

    def add(self, chunk: ChatChunk) -> None:
        """Record one chunk."""
        if chunk.usage is None:
            self.started.add(chunk.index)
        if chunk.index == 0 and chunk.text:
            self.text.append(chunk.text)
        if chunk.finish_reason is not None:
            self.finished.add(chunk.index)

    @property
    def complete(self) -> bool:
        """Every started choice has finished (and at least one has)."""
        return bool(self.finished) and self.started <= self.finished


async def _read_error_body(exc: BaseException) -> None:
    """Read the body of a streamed error response huggingface_hub left unread (async streams)."""
    for candidate in (exc, exc.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, httpx2.Response):
            try:
                await response.aread()
            except (httpx2.HTTPError, RuntimeError):
                pass
            return


class HubCalls:
    """Makes the huggingface_hub calls of one configured provider and maps what they raise."""

    def __init__(self, hub: ModuleType, name: str, config: HuggingFaceConfig, headers: Mapping[str, str]) -> None:
        self.hub = hub
        self.name = name
        self.config = config
        self.headers = dict(headers)
        base = config.base_url or ""
        self.root_url = base.removesuffix("/v1")
        self.url = mask_url(base) if base else f"the HF router (provider {config.provider!r})"  # for messages
        self._shared: AsyncInferenceClient | None = None
        self._shared_loop: asyncio.AbstractEventLoop | None = None  # the event loop `_shared` belongs to
        self._shared_guard: AsyncGenerator[None, None] | None = None  # closes `_shared` when its loop shuts down
        self._http: httpx2.Client | None = None
        self._lock = threading.Lock()
        forget_pools_after_fork(self)  # (huggingface_hub closes its own shared session in a forked child)

    def _forget_pools(self) -> None:
        """In a forked child: drop the parent's shared async client and helper pool."""
        self._shared = None
        self._http = None
        self._lock = threading.Lock()

    # -- clients ----------------------------------------------------------------------------------

    def _client_kwargs(self, request: ChatRequest | None, *, text: bool = False) -> dict[str, Any]:
        config = self.config
        headers: dict[str, str | None] = {**self.headers, **((request.extra_headers or {}) if request else {})}
        if config.api_key is None:
            headers["authorization"] = None  # never fall back to a locally saved HF token
        kwargs: dict[str, Any] = {
            "headers": headers,
            "timeout": request.timeout if request is not None and request.timeout else config.timeout,
            "bill_to": config.bill_to,
        }
        if config.base_url is not None:
            kwargs["base_url"] = self.root_url if text else config.base_url
        else:
            kwargs["provider"] = config.provider
        if config.api_key is not None:
            kwargs["api_key"] = config.api_key.get_secret_value()
        return kwargs

    def _client(self, request: ChatRequest, *, text: bool = False) -> InferenceClient:
        return cast("InferenceClient", self.hub.InferenceClient(**self._client_kwargs(request, text=text)))

    def _aclient(self, request: ChatRequest, *, text: bool = False) -> AsyncInferenceClient:
        return cast("AsyncInferenceClient", self.hub.AsyncInferenceClient(**self._client_kwargs(request, text=text)))

    def _shared_aclient(self) -> AsyncInferenceClient:
        loop = asyncio.get_running_loop()  # a pool belongs to its loop: a new loop gets a new client
        if self._shared is None or self._shared_loop is not loop:
            client = cast("AsyncInferenceClient", self.hub.AsyncInferenceClient(**self._client_kwargs(None)))
            self._shared, self._shared_loop = client, loop
            self._shared_guard = on_loop_shutdown(partial(self._close_shared, client))
        return self._shared

    async def _close_shared(self, client: AsyncInferenceClient) -> None:
        if self._shared is client:
            self._shared = self._shared_loop = None
        await client.close()  # type: ignore[no-untyped-call]  # untyped in huggingface_hub 2.4

    async def aclose(self) -> None:
        """Close the shared async client and the async helper pool."""
        guard, self._shared_guard = self._shared_guard, None
        if guard is not None and self._shared_loop is asyncio.get_running_loop():
            await guard.aclose()  # closes the shared client
        self._shared = self._shared_loop = None

    def close(self) -> None:
        """Close the sync helper pool (``/info``, ``/health``, ``/tokenize``)."""
        http, self._http = self._http, None
        if http is not None:
            http.close()

    # -- error mapping ----------------------------------------------------------------------------

    def _mapped(self, exc: BaseException, model: str) -> ProviderError | None:
        return map_error(exc, provider=self.name, model=model, url=self.url)

    def _call(self, model: str, make: Callable[[], _T]) -> _T:
        try:
            return make()
        except Exception as exc:
            error = self._mapped(exc, model)
            if error is None:
                raise
            raise error from exc

    async def _acall(self, model: str, make: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await make()
        except Exception as exc:
            await _read_error_body(exc)
            error = self._mapped(exc, model)
            if error is None:
                raise
            raise error from exc

    def _stream_failure(self, exc: Exception, model: str, partial: str) -> ProviderError | None:
        if isinstance(exc, httpx2.TransportError):
            return StreamInterruptedError(
                f"stream interrupted ({type(exc).__name__}: {exc})",
                partial_text=partial,
                provider=self.name,
                model=model,
            )
        return self._mapped(exc, model)

    def _interrupted(self, model: str, partial: str) -> StreamInterruptedError:
        return StreamInterruptedError(
            "stream interrupted (the server ended the stream without its last event)",
            partial_text=partial,
            provider=self.name,
            model=model,
        )

    def _drain(self, model: str, events: Iterable[Any], partial: Callable[[], str]) -> Iterator[Any]:
        iterator = iter(events)
        while True:
            try:
                event = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                error = self._stream_failure(exc, model, partial())
                if error is None:
                    raise
                raise error from exc
            yield event

    async def _adrain(
        self, model: str, events: AsyncIterable[Any], partial: Callable[[], str]
    ) -> AsyncGenerator[Any, None]:
        iterator = aiter(events)
        while True:
            try:
                event = await anext(iterator)
            except StopAsyncIteration:
                return
            except Exception as exc:
                error = self._stream_failure(exc, model, partial())
                if error is None:
                    raise
                raise error from exc
            yield event

    # -- chat mode --------------------------------------------------------------------------------

    def chat(self, model: str, kwargs: dict[str, Any], request: ChatRequest) -> ChatResponse:
        """One chat completion."""
        with self._client(request) as client:
            output = self._call(model, lambda: client.chat_completion(**kwargs))
        return decode_chat(cast("Mapping[str, Any]", output), provider=self.name, model=model)

    async def achat(self, model: str, kwargs: dict[str, Any], request: ChatRequest) -> ChatResponse:
        """Async twin of `chat`."""
        if request.timeout is None and not request.extra_headers:
            shared = self._shared_aclient()
            output = await self._acall(model, lambda: shared.chat_completion(**kwargs))
        else:
            async with self._aclient(request) as client:
                output = await self._acall(model, lambda: client.chat_completion(**kwargs))
        return decode_chat(cast("Mapping[str, Any]", output), provider=self.name, model=model)

    def chat_stream(self, model: str, kwargs: dict[str, Any], request: ChatRequest) -> Iterator[ChatChunk]:
        """A streamed chat completion; raises `StreamInterruptedError` without a final ``finish_reason``."""
        tracker = FinishTracker()
        with self._client(request) as client:
            events = self._call(model, lambda: client.chat_completion(**kwargs))
            for event in self._drain(model, cast("Iterable[Any]", events), lambda: "".join(tracker.text)):
                for chunk in decode_chat_chunk(event, provider=self.name, model=model):
                    tracker.add(chunk)
                    yield chunk
        if not tracker.complete:
            raise self._interrupted(model, "".join(tracker.text))

    async def achat_stream(
        self, model: str, kwargs: dict[str, Any], request: ChatRequest
    ) -> AsyncGenerator[ChatChunk, None]:
        """Async twin of `chat_stream`."""
        tracker = FinishTracker()
        async with self._aclient(request) as client:
            events = await self._acall(model, lambda: client.chat_completion(**kwargs))
            drain = self._adrain(model, cast("AsyncIterable[Any]", events), lambda: "".join(tracker.text))
            async with aclosing(drain) as drained:
                async for event in drained:
                    for chunk in decode_chat_chunk(event, provider=self.name, model=model):
                        tracker.add(chunk)
                        yield chunk
        if not tracker.complete:
            raise self._interrupted(model, "".join(tracker.text))

    # -- text mode --------------------------------------------------------------------------------

    def text_stream(
        self, model: str, prompt: str, kwargs: dict[str, Any], request: ChatRequest, state: TextStream | None = None
    ) -> Iterator[ChatChunk]:
        """Stream TGI's raw generation; raises `StreamInterruptedError` without the last event."""
        state = state or TextStream(self.name, model)
        with self._client(request, text=True) as client:
            events = self._call(model, lambda: client.text_generation(prompt, **kwargs))
            for event in self._drain(model, cast("Iterable[Any]", events), lambda: state.text):
                yield from state.add(event)
        if not state.done:
            raise self._interrupted(model, state.text)
        if state.usage is None:  # the last event had no details: ask /tokenize for the prompt's size
            chunk = state.count_prompt(self.prompt_tokens(prompt))
            if chunk is not None:
                yield chunk

    async def atext_stream(
        self, model: str, prompt: str, kwargs: dict[str, Any], request: ChatRequest, state: TextStream | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        """Async twin of `text_stream`."""
        state = state or TextStream(self.name, model)
        async with self._aclient(request, text=True) as client:
            events = await self._acall(model, lambda: client.text_generation(prompt, **kwargs))
            async with aclosing(self._adrain(model, cast("AsyncIterable[Any]", events), lambda: state.text)) as drained:
                async for event in drained:
                    for chunk in state.add(event):
                        yield chunk
        if not state.done:
            raise self._interrupted(model, state.text)
        if state.usage is None:
            counted = state.count_prompt(await self.aprompt_tokens(prompt))
            if counted is not None:
                yield counted

    def text_reply(self, model: str, prompt: str, kwargs: dict[str, Any], request: ChatRequest) -> ChatResponse:
        """The whole text-mode reply, read from the stream (a broken stream is an `APIConnectionError`)."""
        state = TextStream(self.name, model)
        try:
            for _ in self.text_stream(model, prompt, kwargs, request, state):
                pass
        except StreamInterruptedError as exc:
            raise self._broken(exc) from exc
        return state.response()

    async def atext_reply(self, model: str, prompt: str, kwargs: dict[str, Any], request: ChatRequest) -> ChatResponse:
        """Async twin of `text_reply`."""
        state = TextStream(self.name, model)
        try:
            async for _ in self.atext_stream(model, prompt, kwargs, request, state):
                pass
        except StreamInterruptedError as exc:
            raise self._broken(exc) from exc
        return state.response()

    def prompt_tokens(self, prompt: str) -> int | None:
        """The server's count of a raw prompt (``POST /tokenize``), or None when it cannot say."""
        try:
            return _token_count(self.request("POST", "/tokenize", json={"inputs": prompt}))
        except ProviderError:
            return None

    async def aprompt_tokens(self, prompt: str) -> int | None:
        """Async twin of `prompt_tokens`."""
        try:
            return _token_count(await self.arequest("POST", "/tokenize", json={"inputs": prompt}))
        except ProviderError:
            return None

    @staticmethod
    def _broken(exc: StreamInterruptedError) -> APIConnectionError:
        return APIConnectionError(
            f"the reply broke off before it was complete: {exc.message}", provider=exc.provider, model=exc.model
        )

    # -- TGI helper routes (httpx2) ---------------------------------------------------------------

    def _helper_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.config.api_key is not None:
            headers["authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        if self.config.bill_to is not None:
            headers[_BILL_TO_HEADER] = self.config.bill_to
        return headers

    def _helper_url(self, path: str) -> str:
        if self.config.base_url is None:
            raise ConfigError(
                f"providers.{self.name}: {path} is a TGI route of a dedicated endpoint; set base_url to use it"
            )
        return self.root_url + path

    def _checked(self, response: httpx2.Response, check: bool) -> httpx2.Response:
        if check and response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content, provider=self.name)
        return response

    def _helper_error(self, exc: httpx2.HTTPError) -> ProviderError:
        error = map_error(exc, provider=self.name, model="", url=mask_url(self.root_url))
        assert error is not None
        error.model = None
        return error

    def request(self, method: str, path: str, *, json: Any = None, check: bool = True) -> httpx2.Response:
        """A sync request to a TGI route (``/info``, ``/health``, ``/tokenize``)."""
        url = self._helper_url(path)
        if self._http is None:
            with self._lock:
                if self._http is None:
                    self._http = httpx2.Client(
                        timeout=httpx2.Timeout(self.config.timeout, connect=self.config.connect_timeout),
                        verify=default_tls_context(),
                    )
        try:
            response = self._http.request(method, url, json=json, headers=self._helper_headers())
        except httpx2.HTTPError as exc:
            raise self._helper_error(exc) from exc
        return self._checked(response, check)

    async def arequest(self, method: str, path: str, *, json: Any = None, check: bool = True) -> httpx2.Response:
        """Async twin of `request` (a short-lived pool: the call may come from any event loop)."""
        url = self._helper_url(path)
        timeout = httpx2.Timeout(self.config.timeout, connect=self.config.connect_timeout)
        async with httpx2.AsyncClient(timeout=timeout, verify=default_tls_context()) as http:  # CAs read once
            try:
                response = await http.request(method, url, json=json, headers=self._helper_headers())
            except httpx2.HTTPError as exc:
                raise self._helper_error(exc) from exc
        return self._checked(response, check)
