"""A vLLM OpenAI-compatible server (``vllm serve``). Reuses the OpenAI wire code.

Differences from OpenAI handled here or in the shared error mapping (vLLM 0.32, seen
2026-11-27; https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html): the key is
optional; error ``code`` is the integer status; context overflow is a 400 whose message says
"maximum context length"; 401 bodies are the bare ``{"error": "Unauthorized"}``; ``/v1/models``
reports ``max_model_len``; ``/tokenize`` counts a chat's prompt tokens exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import _defaults
from .._messages import normalize_messages
from ..config import ProviderConfig
from ..errors import BadRequestError, NotFoundError, ProviderError, ResponseValidationError
from ..options import ProviderOptions, VLLMOptions
from ..types import ChatRequest, MessageInput
from ._openai_wire import continue_final_message
from .openai import OpenAIProvider

__all__ = ["VLLMConfig", "VLLMProvider"]

_T = TypeVar("_T", bound=BaseModel)


class VLLMConfig(ProviderConfig):
    """``type = "vllm"``: base_url defaults to http://127.0.0.1:8000/v1; api_key only if started with --api-key."""

    type: Literal["vllm"] = "vllm"
    options: VLLMOptions | None = Field(default=None, description="vLLM options sent with every call")
    model_options: dict[str, VLLMOptions] = Field(
        default_factory=dict, description="options per model id, over `options` (a call's own options win)"
    )


class _ModelCard(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    id: str
    max_model_len: int | None = None


class _ModelList(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    data: list[_ModelCard]


class _TokenizeReply(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    count: int


def _tokenize_body(model: str, messages: str | Sequence[MessageInput]) -> dict[str, Any]:
    msgs = normalize_messages(messages if isinstance(messages, str) else list(messages))
    return {"model": model, "messages": [m.model_dump(exclude_none=True) for m in msgs]}


class VLLMProvider(OpenAIProvider):
    """vLLM's OpenAI-compatible server."""

    config_model: ClassVar[type[ProviderConfig]] = VLLMConfig
    catalogue_provider: ClassVar[str | None] = None  # self-hosted: price it in [prices]
    default_base_url: ClassVar[str | None] = _defaults.VLLM_BASE_URL
    requires_api_key: ClassVar[bool] = False
    embed_batch_size: ClassVar[int] = 256  # an embedding model served with --runner pooling
    options_model: ClassVar[type[ProviderOptions] | None] = VLLMOptions

    def option_fields(self, model: str, request: ChatRequest) -> dict[str, Any] | None:
        """`VLLMOptions` as top-level body fields (``top_k``, ``structured_outputs``...).

        Raises:
            BadRequestError: ``structured_outputs`` together with a JSON ``response_format`` (vLLM
                takes one constraint per request); nothing was sent.
        """
        options = self.options_for(model, request)
        if options is None:
            return None
        fmt = request.response_format
        if getattr(options, "structured_outputs", None) is not None and fmt and fmt.get("type") != "text":
            raise BadRequestError(
                "VLLMOptions.structured_outputs and response_format both constrain the reply, and vLLM takes "
                "one constraint per request: drop one of them",
                provider=self.name,
                model=model,
            )
        return options.wire_fields()

    def continuation(self, model: str, request: ChatRequest, partial: str) -> ChatRequest | None:
        """Continue ``partial`` with vLLM's ``continue_final_message`` (route ``resume = "continue"``)."""
        del model
        return continue_final_message(request, partial)

    def with_running_usage(self, model: str, request: ChatRequest) -> ChatRequest:
        """Ask for ``stream_options.continuous_usage_stats`` (usage in every chunk), as vLLM's chat extension allows.

        https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (StreamOptions).
        """
        del model
        extra = dict(request.extra_body or {})
        options = extra.get("stream_options")
        extra["stream_options"] = {  # the call's own extra_body stream_options win
            "include_usage": True,
            "continuous_usage_stats": True,
            **(options if isinstance(options, dict) else {}),
        }
        return request.model_copy(update={"extra_body": extra})

    @property
    def root_url(self) -> str:
        """The server root (``base_url`` without ``/v1``), where ``/tokenize`` and ``/health`` live."""
        return self.base_url.removesuffix("/v1")

    def max_model_len(self, model: str) -> int | None:
        """The served model's context window from ``GET /v1/models``.

        Raises:
            NotFoundError: the server does not serve ``model``.
            ProviderError: the server could not be asked.
        """
        response = self.request("GET", self.base_url + "/models", model)
        return self._window(response.content, model)

    async def amax_model_len(self, model: str) -> int | None:
        """Async twin of `max_model_len`."""
        response = await self.arequest("GET", self.base_url + "/models", model)
        return self._window(response.content, model)

    def context_window(self, model: str) -> int | None:
        """`max_model_len`, asked once per model; None when unknown (not listed, or the server is unreachable)."""
        if model not in self._windows:
            try:
                self._windows[model] = self.max_model_len(model)
            except (NotFoundError, ResponseValidationError):
                self._windows[model] = None  # the answer will not change: do not ask again
            except ProviderError:
                return None  # unreachable now: the call itself will say so; ask again next time
        return self._windows[model]

    async def acontext_window(self, model: str) -> int | None:
        """Async twin of `context_window`."""
        if model not in self._windows:
            try:
                self._windows[model] = await self.amax_model_len(model)
            except (NotFoundError, ResponseValidationError):
                self._windows[model] = None
            except ProviderError:
                return None
        return self._windows[model]

    def count_prompt_tokens(self, model: str, messages: str | Sequence[MessageInput]) -> int:
        """Exact prompt tokens of a chat, counted by the server's own tokenizer (``POST /tokenize``)."""
        response = self.request("POST", self.root_url + "/tokenize", model, json=_tokenize_body(model, messages))
        return self._validate(_TokenizeReply, response.content, model).count

    async def acount_prompt_tokens(self, model: str, messages: str | Sequence[MessageInput]) -> int:
        """Async twin of `count_prompt_tokens`."""
        response = await self.arequest("POST", self.root_url + "/tokenize", model, json=_tokenize_body(model, messages))
        return self._validate(_TokenizeReply, response.content, model).count

    def count_tokens(self, model: str, request: ChatRequest) -> int | None:
        """`count_prompt_tokens` for a request; None when the server cannot be asked."""
        try:
            return self.count_prompt_tokens(model, list(request.messages))
        except ProviderError:
            return None

    async def acount_tokens(self, model: str, request: ChatRequest) -> int | None:
        """Async twin of `count_tokens`."""
        try:
            return await self.acount_prompt_tokens(model, list(request.messages))
        except ProviderError:
            return None

    def _window(self, raw: bytes, model: str) -> int | None:
        cards = self._validate(_ModelList, raw, model).data
        for card in cards:
            if card.id == model:
                return card.max_model_len
        served = ", ".join(c.id for c in cards)
        raise NotFoundError(
            f"model {model!r} is not served here (served: {served})", provider=self.name, model=model, status_code=404
        )

    def _validate(self, cls: type[_T], raw: bytes, model: str) -> _T:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise ResponseValidationError(
                f"unexpected reply: {exc.errors()[0]['msg']}", provider=self.name, model=model
            ) from exc
