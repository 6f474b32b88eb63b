"""Hugging Face: dedicated Inference Endpoints and TGI servers, and the HF inference router.

Requests go through ``huggingface_hub``'s ``InferenceClient`` / ``AsyncInferenceClient``
(the ``turnout[huggingface]`` extra, imported only when a provider is created):

- ``mode = "chat"`` (default, `HuggingFaceChatProvider`): TGI's Messages API,
  ``POST {base_url}/v1/chat/completions``, or the HF router for ``provider = "together"`` and the like;
- ``mode = "text"`` (`HuggingFaceTextProvider`): TGI's raw generation route (huggingface_hub
  posts to ``{base_url}/`` with ``"stream": true``, TGI's compatibility route for
  ``/generate_stream``), with the prompt rendered by a chat template
  (`turnout.providers.llama2_template`, Llama 2's by default).

Both are `HuggingFaceProvider`s, which holds what they share; creating a `HuggingFaceProvider`
gives the class of the config's ``mode``.

A text-mode ``chat()`` reads the stream to its end: huggingface_hub returns no response headers
(so TGI's ``x-prompt-tokens`` cannot be read), and only the stream's last event carries the
prompt size (``details.input_length``) without asking TGI for per-token prefill logprobs.

``info()`` / ``health()`` / ``count_prompt_tokens()`` call TGI's ``/info``, ``/health`` and
``/tokenize`` over httpx2 (huggingface_hub's ``get_endpoint_info`` has no timeout, ignores
custom headers and refuses a URL unless ``provider="hf-inference"``). Shapes and behaviour:
https://huggingface.github.io/text-generation-inference/ (TGI's API); the provider's docs page
is docs/llama2-huggingface.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx2
from pydantic import Field, model_validator

from .._messages import normalize_messages
from .._secrets import mask_url
from .._version import __version__
from ..config import ProviderConfig
from ..errors import (
    BadRequestError,
    ConfigError,
    InvalidArgumentError,
    NotFoundError,
    ProviderError,
    ResponseValidationError,
)
from ..options import ProviderOptions, TGIOptions
from ..provider import Provider
from ..types import ChatChunk, ChatRequest, ChatResponse, Message, MessageInput
from ._hf_call import HubCalls
from ._response_format import hub_openai_endpoint
from ._tgi_kwargs import chat_fields, chat_problem, text_parameters
from ._tgi_wire import EndpointInfo, TextStream, Unsupported, chat_kwargs, text_kwargs
from .llama2_template import ChatTemplate, get_template

if TYPE_CHECKING:
    from types import ModuleType

    from ..embeddings import EmbeddingRequest, EmbeddingResponse

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "SCALE_UP_HEADER",
    "EndpointInfo",
    "HuggingFaceChatProvider",
    "HuggingFaceConfig",
    "HuggingFaceProvider",
    "HuggingFaceTextProvider",
]

#: The ``extra_body`` key of a continuation in text mode: the last (assistant) message is appended
#: to the rendered prompt instead of rendered (vLLM's name for the same request).
_CONTINUE = "continue_final_message"
#: ``max_new_tokens`` sent in text mode when a call sets no ``max_tokens``.
DEFAULT_MAX_NEW_TOKENS = 512
#: The header that makes a scaled-to-zero Inference Endpoint hold a request while it starts.
SCALE_UP_HEADER = "X-Scale-Up-Timeout"
_INSTALL = "pip install 'turnout[huggingface]'"


#: `ProviderConfig`'s network keys, which huggingface_hub's shared session cannot honour per provider.
_NETWORK_KEYS = frozenset({"proxy", "ca_bundle", "client_cert", "client_key", "max_connections"})


class HuggingFaceConfig(ProviderConfig):
    """``type = "huggingface"``: an Inference Endpoint / TGI server (``base_url``) or the HF router (``provider``)."""

    type: Literal["huggingface"] = "huggingface"
    provider: str | None = Field(
        default=None,
        description='an HF inference provider routed by huggingface_hub ("together", "auto", ...); instead of base_url',
    )
    mode: Literal["chat", "text"] = Field(
        default="chat", description="chat: the Messages API; text: raw generation with chat_template"
    )
    chat_template: str = Field(default="llama2", description="text mode: the template that renders the prompt")
    max_new_tokens: int = Field(
        default=DEFAULT_MAX_NEW_TOKENS, gt=0, description="text mode: tokens to generate when a call sets no max_tokens"
    )
    prompt_bos: bool = Field(
        default=False,
        description="text mode: send the template's leading BOS (<s>); TGI adds BOS itself, so leave it false",
    )
    response_format_style: Literal["tgi", "openai"] = Field(
        default="tgi",
        description='how base_url gets response_format: "tgi" (TGI\'s grammar) or "openai" (a vLLM/SGLang endpoint)',
    )
    scale_up_timeout: float | None = Field(
        default=None, gt=0, description="seconds a scaled-to-zero endpoint may take to start (X-Scale-Up-Timeout)"
    )
    bill_to: str | None = Field(default=None, description="an HF organization to bill (X-HF-Bill-To)")
    price_catalogue: str | None = Field(
        default=None, description='genai-prices provider id (default: "huggingface_<provider>" with provider)'
    )
    options: TGIOptions | None = Field(default=None, description="TGI options sent with every call")
    model_options: dict[str, TGIOptions] = Field(
        default_factory=dict, description="options per model id, over `options` (a call's own options win)"
    )

    @model_validator(mode="after")
    def _no_network_keys(self) -> HuggingFaceConfig:
        keys = sorted(_NETWORK_KEYS & self.model_fields_set)
        if keys:
            raise ValueError(
                f"{', '.join(keys)}: not supported by type 'huggingface' (huggingface_hub sends every request "
                "through one shared HTTP session). Set HTTPS_PROXY or SSL_CERT_FILE in the environment instead."
            )
        return self

    @model_validator(mode="after")
    def _check_options(self) -> HuggingFaceConfig:
        if self.mode == "text":
            return self
        tgi = self.base_url is not None and self.response_format_style == "tgi"
        layers = [("options", self.options), *((f"model_options.{m}", o) for m, o in self.model_options.items())]
        for key, options in layers:
            problem = None if options is None else chat_problem(options, tgi=tgi)
            if problem is not None:
                raise ValueError(f"{key}: {problem}")
        return self

    @model_validator(mode="after")
    def _check_route(self) -> HuggingFaceConfig:
        if (self.base_url is None) == (self.provider is None):
            raise ValueError(
                "set exactly one of base_url (a dedicated Inference Endpoint or TGI server) and provider "
                '(an HF inference provider such as "together")'
            )
        if self.provider is not None and self.mode == "text":
            raise ValueError('mode = "text" needs base_url: the HF router has no raw generation route')
        if self.provider is not None and self.api_key is None:
            raise ValueError('provider needs api_key (an HF token, "${HF_TOKEN}", or the provider\'s own key)')
        return self


def _import_hub(name: str) -> ModuleType:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ConfigError(
            f"providers.{name}: type 'huggingface' needs the huggingface-hub package: {_INSTALL}"
        ) from exc
    return huggingface_hub


class HuggingFaceProvider(Provider):
    """Llama 2 (or any model) on a Hugging Face Inference Endpoint, a TGI server, or the HF router.

    The shared base of the two modes. Creating one (``HuggingFaceProvider(name, config)``, as
    `turnout.Client` does for ``type = "huggingface"``) gives the class of the config's ``mode``:
    `HuggingFaceChatProvider` (``"chat"``) or `HuggingFaceTextProvider` (``"text"``), both
    instances of this class. It holds what both modes share: the huggingface_hub clients,
    embeddings, TGI's ``/info``, ``/health`` and ``/tokenize``, and the chat template.
    """

    config_model: ClassVar[type[ProviderConfig]] = HuggingFaceConfig
    embed_batch_size: ClassVar[int] = 32  # TEI's default --max-client-batch-size
    options_model: ClassVar[type[ProviderOptions] | None] = TGIOptions

    def __new__(cls, name: str = "", config: ProviderConfig | None = None) -> HuggingFaceProvider:
        """The provider of ``config.mode`` (like `pathlib.Path`, which gives the class of the platform).

        The defaults let `copy` and `pickle` make an instance of a mode's class without arguments.
        """
        del name
        if cls is HuggingFaceProvider:
            text = isinstance(config, HuggingFaceConfig) and config.mode == "text"
            cls = HuggingFaceTextProvider if text else HuggingFaceChatProvider
        return super().__new__(cls)

    def __init__(self, name: str, config: ProviderConfig) -> None:
        if not isinstance(config, HuggingFaceConfig):
            raise ConfigError(f"providers.{name}: expected a huggingface config, got type {config.type!r}")
        hf_token = config.api_key is not None and config.api_key.get_secret_value().startswith("hf_")
        if config.bill_to is not None and not hf_token:
            raise ConfigError(
                f"providers.{name}.bill_to: billing an organization needs an HF token (hf_...) as api_key; "
                "a provider's own key is billed by that provider"
            )
        if config.provider == "auto" and not hf_token:
            raise ConfigError(f'providers.{name}.provider: "auto" (the HF router picks) needs an HF token (hf_...)')
        hub = _import_hub(name)
        super().__init__(name, config)
        self.hf_config = config
        self.template: ChatTemplate = get_template(config.chat_template)
        headers = {"user-agent": f"turnout/{__version__}", **config.header_values()}
        if config.scale_up_timeout is not None:
            headers[SCALE_UP_HEADER] = f"{config.scale_up_timeout:g}"
        self._calls = HubCalls(hub, name, config, headers)
        self._window: list[int | None] = []  # max_total_tokens once /info answered (or None: no /info)

    def __repr__(self) -> str:
        where = (
            f"base_url={mask_url(self.config.base_url)!r}"
            if self.config.base_url
            else f"provider={self.hf_config.provider!r}"
        )
        return f"HuggingFaceProvider(name={self.name!r}, {where}, mode={self.hf_config.mode!r})"

    def price_catalogue(self) -> str | None:
        """``price_catalogue``, else ``huggingface_<provider>`` for the router; a dedicated endpoint has none.

        A dedicated endpoint is billed per hour of uptime, not per token: price it in ``[prices]``.
        """
        config = self.hf_config
        if config.price_catalogue is not None:
            return config.price_catalogue
        if config.provider is not None and config.provider != "auto":
            return f"huggingface_{config.provider}"
        return None

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed one batch with ``feature_extraction`` (a TEI server at ``base_url``, or the router)."""
        from . import _hf_embed

        return _hf_embed.embed(self._calls, model, request)

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Async twin of `embed`."""
        from . import _hf_embed

        return await _hf_embed.aembed(self._calls, model, request)

    def close(self) -> None:
        """Close the sync pool of the helper routes (each sync call has its own ``InferenceClient``)."""
        self._calls.close()

    async def aclose(self) -> None:
        """Close the shared ``AsyncInferenceClient`` (its connection pool)."""
        await self._calls.aclose()

    def render(self, messages: str | Sequence[MessageInput]) -> str:
        """The prompt text mode sends for ``messages`` (the template's output, BOS removed unless ``prompt_bos``).

        Raises:
            InvalidArgumentError: the template cannot express the messages.
        """
        msgs = normalize_messages(messages if isinstance(messages, str) else list(messages))
        prompt = self.template.render(msgs)
        return prompt if self.hf_config.prompt_bos else prompt.removeprefix(self.template.bos)

    # -- endpoint helpers (TGI routes, over httpx2) -------------------------------------------------

    def info(self) -> EndpointInfo:
        """The endpoint's model and limits from TGI's ``GET /info``.

        Returns:
            `EndpointInfo`: ``max_input_tokens`` and ``max_total_tokens`` (Llama 2 on TGI:
            4095 and 4096 by default) bound prompt and prompt + ``max_tokens``.

        Raises:
            ConfigError: the provider routes through the HF router (no ``base_url``).
            ProviderError: the request failed (a subclass says how).
        """
        return self._info(self._calls.request("GET", "/info"))

    async def ainfo(self) -> EndpointInfo:
        """Async twin of `info`."""
        return self._info(await self._calls.arequest("GET", "/info"))

    def health(self) -> bool:
        """Whether TGI's ``GET /health`` answers 200 (a 503 means the model cannot generate).

        Raises:
            ConfigError: no ``base_url``.
            APIConnectionError: the server cannot be reached.
        """
        return self._calls.request("GET", "/health", check=False).status_code == 200

    def count_prompt_tokens(self, messages: str | Sequence[MessageInput]) -> int:
        """Exact tokens of the text-mode prompt for ``messages``, counted by the server (``POST /tokenize``).

        TGI adds BOS itself, as it does for generation, so the count matches ``usage.prompt_tokens``.

        Raises:
            InvalidArgumentError: the template cannot express the messages.
            ProviderError: the request failed (404 when the server has no tokenizer).
        """
        response = self._calls.request("POST", "/tokenize", json={"inputs": self.render(messages)})
        return self._token_count(response)

    async def acount_prompt_tokens(self, messages: str | Sequence[MessageInput]) -> int:
        """Async twin of `count_prompt_tokens`."""
        response = await self._calls.arequest("POST", "/tokenize", json={"inputs": self.render(messages)})
        return self._token_count(response)

    # -- the context-window pre-check (Provider hooks) --------------------------------------------------

    def context_window(self, model: str) -> int | None:
        """``max_total_tokens`` from `info`, asked once; None for the HF router or a server without ``/info``."""
        del model
        if self.hf_config.base_url is None:
            return None
        if not self._window:
            try:
                self._window.append(self.info().max_total_tokens)
            except NotFoundError:
                self._window.append(None)  # not a TGI server: do not ask again
            except ProviderError:
                return None
        return self._window[0]

    async def acontext_window(self, model: str) -> int | None:
        """Async twin of `context_window`."""
        del model
        if self.hf_config.base_url is None:
            return None
        if not self._window:
            try:
                self._window.append((await self.ainfo()).max_total_tokens)
            except NotFoundError:
                self._window.append(None)
            except ProviderError:
                return None
        return self._window[0]

    def _token_count(self, response: httpx2.Response) -> int:
        tokens = response.json()
        if not isinstance(tokens, list):
            raise ResponseValidationError("/tokenize did not answer a list of tokens", provider=self.name)
        return len(tokens)

    def _info(self, response: httpx2.Response) -> EndpointInfo:
        try:
            return EndpointInfo.model_validate_json(response.content)
        except ValueError as exc:
            raise ResponseValidationError(f"/info is not TGI's info: {exc}", provider=self.name) from exc


class HuggingFaceChatProvider(HuggingFaceProvider):
    """``mode = "chat"``: TGI's Messages API (``/v1/chat/completions``) or the HF router, with tools.

    The server applies the model's chat template, so `count_tokens` is None (the pre-check
    estimates) and a cut stream cannot be continued.
    """

    def chat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Send one chat completion and return the reply."""
        return self._calls.chat(model, self._request(model, request, stream=False), request)

    async def achat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Async twin of `chat`."""
        return await self._calls.achat(model, self._request(model, request, stream=False), request)

    def stream(self, model: str, request: ChatRequest) -> Iterator[ChatChunk]:
        """Stream a reply; raise `StreamInterruptedError` if a choice ends without its ``finish_reason``."""
        yield from self._calls.chat_stream(model, self._request(model, request, stream=True), request)

    async def astream(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Async twin of `stream`."""
        chunks = self._calls.achat_stream(model, self._request(model, request, stream=True), request)
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    @property
    def _grammar(self) -> bool:
        """Translate ``response_format`` to TGI's grammar: for a TGI endpoint, not for vLLM or router providers."""
        return self.hf_config.base_url is not None and self.hf_config.response_format_style == "tgi"

    def _request(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        try:
            fields = chat_fields(self.options_for(model, request), request, tgi=self._grammar)
            kwargs = chat_kwargs(model, request, stream=stream, grammar=self._grammar, fields=fields)
            if self.hf_config.base_url is not None and not self._grammar:
                kwargs = hub_openai_endpoint(kwargs)  # keep a JSON schema from huggingface_hub's TGI rewrite
            return kwargs
        except Unsupported as exc:
            raise BadRequestError(f"{exc}", provider=self.name, model=model) from exc


class HuggingFaceTextProvider(HuggingFaceProvider):
    """``mode = "text"``: TGI's raw generation route, the prompt rendered by ``chat_template``.

    A `chat` reads the whole stream (see the module's docstring); tools cannot be expressed in a
    raw prompt; a cut stream is continued (`continuation`); `count_tokens` asks ``/tokenize``.
    """

    def chat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Send one request, read its whole stream, and return the reply."""
        prompt, kwargs = self._request(model, request)
        return self._calls.text_reply(model, prompt, kwargs, request)

    async def achat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Async twin of `chat`."""
        prompt, kwargs = self._request(model, request)
        return await self._calls.atext_reply(model, prompt, kwargs, request)

    def stream(self, model: str, request: ChatRequest) -> Iterator[ChatChunk]:
        """Stream a reply; raise `StreamInterruptedError` if it ends before its last event."""
        prompt, kwargs = self._request(model, request)
        state = TextStream(self.name, model, continues=_continues(request))
        yield from self._calls.text_stream(model, prompt, kwargs, request, state)

    async def astream(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Async twin of `stream`."""
        prompt, kwargs = self._request(model, request)
        state = TextStream(self.name, model, continues=_continues(request))
        chunks = self._calls.atext_stream(model, prompt, kwargs, request, state)
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    def supports_tools(self, model: str) -> bool:
        """False: a raw prompt cannot carry tools (a route skips this target for calls with tools)."""
        del model
        return False

    def continuation(self, model: str, request: ChatRequest, partial: str) -> ChatRequest | None:
        """The same prompt with ``partial`` after it, on ``/generate_stream`` (route ``resume``).

        The raw prompt is the model's whole input, so the rendered conversation followed by the
        text already written makes the model go on from there.
        """
        del model
        extra = {**(request.extra_body or {}), _CONTINUE: True}
        messages = [*request.messages, Message(role="assistant", content=partial)]
        return request.model_copy(update={"messages": messages, "extra_body": extra})

    def count_tokens(self, model: str, request: ChatRequest) -> int | None:
        """`count_prompt_tokens` of the request, or None when the server cannot say."""
        del model
        try:
            return self.count_prompt_tokens(list(request.messages))
        except (ProviderError, InvalidArgumentError):
            return None

    async def acount_tokens(self, model: str, request: ChatRequest) -> int | None:
        """Async twin of `count_tokens`."""
        del model
        try:
            return await self.acount_prompt_tokens(list(request.messages))
        except (ProviderError, InvalidArgumentError):
            return None

    def _request(self, model: str, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        try:
            if _continues(request):
                partial = request.messages[-1].content
                written = partial if isinstance(partial, str) else ""
                # Llama's first answer token carries the space that the decoded answer drops
                prompt = self.render(request.messages[:-1]) + " " + written
                extra = {k: v for k, v in (request.extra_body or {}).items() if k != _CONTINUE}
                request = request.model_copy(update={"extra_body": extra or None})
            else:
                prompt = self.render(request.messages)
            params = text_parameters(self.options_for(model, request), request)
            kwargs = text_kwargs(request, default_max_new_tokens=self.hf_config.max_new_tokens, params=params)
        except (InvalidArgumentError, Unsupported) as exc:
            raise BadRequestError(f"{exc}", provider=self.name, model=model) from exc
        return prompt, kwargs


def _continues(request: ChatRequest) -> bool:
    """Whether ``request`` continues its final assistant message (text mode, see `continuation`)."""
    extra = request.extra_body
    return bool(extra and extra.get(_CONTINUE)) and bool(request.messages) and request.messages[-1].role == "assistant"
