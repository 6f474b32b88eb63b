"""TGI's wire shapes <-> turnout's types, for the ``huggingface`` provider. Pure functions, no I/O.

- Chat mode: the keyword arguments of ``InferenceClient.chat_completion`` and the decoding of its
  ``ChatCompletionOutput`` / ``ChatCompletionStreamOutput`` (dict subclasses holding the server's
  JSON) through the shared OpenAI decoder in `_openai_wire`.
- Text mode: the keyword arguments of ``InferenceClient.text_generation`` and `TextStream`, which
  turns ``/generate_stream`` events (``token`` ... last event with ``generated_text`` and
  ``details``) into chunks and a reply.
- `EndpointInfo`: TGI's ``GET /info``.

Shapes: TGI's ``docs/openapi.json`` 3.3.6-dev0 and ``router/src/*.rs``
(https://github.com/huggingface/text-generation-inference) and
huggingface_hub 2.4.0 (``inference/_client.py``, ``_providers/hf_inference.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..types import ChatChunk, ChatRequest, ChatResponse, Choice, FinishReason, Usage
from ._openai_wire import finish_reason_from_wire, parse_chunk, parse_completion

__all__ = [
    "TEXT_PARAMETERS",
    "EndpointInfo",
    "TextStream",
    "Unsupported",
    "chat_kwargs",
    "decode_chat",
    "decode_chat_chunk",
    "text_kwargs",
    "tgi_grammar",
]

#: ``text_generation`` parameters that ``extra_body`` may set in text mode (TGI ``GenerateParameters``).
TEXT_PARAMETERS = frozenset(
    {
        "adapter_id",
        "do_sample",
        "frequency_penalty",
        "grammar",
        "max_new_tokens",
        "repetition_penalty",
        "return_full_text",
        "seed",
        "stop",
        "temperature",
        "top_k",
        "top_n_tokens",
        "top_p",
        "truncate",
        "typical_p",
        "watermark",
    }
)


#: Request fields ``InferenceClient.chat_completion`` sends to TGI's Messages API (TGI ``ChatRequest``).
_CHAT_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "n",
    "tools",
    "tool_choice",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
)
#: OpenAI fields TGI's Messages API ignores (``logit_bias`` is documented "UNUSED"): rejected for a
#: dedicated TGI endpoint, passed on in ``extra_body`` to HF router providers.
_OPENAI_ONLY = ("logit_bias", "parallel_tool_calls", "reasoning_effort")
#: Request fields text mode (``/generate``) cannot send.
_NOT_IN_TEXT_MODE = ("presence_penalty", "logit_bias", "logprobs", "top_logprobs", "reasoning_effort")


class Unsupported(Exception):
    """The request asks for something this mode cannot send (the provider turns it into BadRequestError)."""


class EndpointInfo(BaseModel):
    """What a TGI server says about itself (``GET /info``): the limits a request must fit.

    Unknown fields are kept (``info.model_extra``). TGI before 2.1 calls the input limit
    ``max_input_length``; it is read into ``max_input_tokens`` too.
    """

    model_config = ConfigDict(defer_build=True, extra="allow", frozen=True)

    model_id: str
    max_input_tokens: int | None = Field(
        default=None, validation_alias=AliasChoices("max_input_tokens", "max_input_length")
    )
    max_total_tokens: int | None = None
    max_stop_sequences: int | None = None
    max_best_of: int | None = None
    max_concurrent_requests: int | None = None
    max_client_batch_size: int | None = None
    model_sha: str | None = None
    model_pipeline_tag: str | None = None
    router: str | None = None
    version: str | None = None
    sha: str | None = None
    docker_label: str | None = None


def tgi_grammar(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Translate an OpenAI ``response_format`` into TGI's grammar (``{"type": "json", "value": schema}``).

    TGI's ``GrammarType`` is tagged ``type`` + ``value``; OpenAI's ``json_schema`` form does not
    match it. turnout sends ``{"type": "json", "value": <schema>}`` (TGI's ``json`` grammar, which
    every TGI version with grammars accepts) rather than ``{"type": "json_schema", "value":
    {"name", "schema"}}``: huggingface_hub 2.4 rewrites any ``"type": "json_schema"`` format for a
    URL endpoint and fails with ``KeyError: 'json_schema'`` on TGI's own form.

    ``json_object`` becomes a schema for any object; ``text`` means no grammar; a format that is
    already TGI's (it has a ``value``) is sent as it is.
    """
    if response_format is None:
        return None
    kind = response_format.get("type")
    if "value" in response_format or kind == "regex":
        return dict(response_format)
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return {"type": "json", "value": spec.get("schema", {"type": "object"})}
    if kind == "json_object":
        return {"type": "json", "value": {"type": "object"}}
    if kind == "text":
        return None
    raise Unsupported(f"response_format type {kind!r} has no TGI grammar")


def chat_kwargs(
    model: str, request: ChatRequest, *, stream: bool, grammar: bool, fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``InferenceClient.chat_completion``.

    Args:
        model: the model id sent in the body (TGI ignores it; the HF router maps it).
        request: the request.
        stream: ask for a stream, with usage (``stream_options.include_usage``).
        grammar: translate ``response_format`` to TGI's grammar (a dedicated TGI endpoint);
            False sends OpenAI's shape unchanged (HF router providers speak OpenAI's).
        fields: keyword arguments from the provider's `TGIOptions` (`_tgi_kwargs.chat_fields`).
    """
    kwargs: dict[str, Any] = {
        "messages": [m.model_dump(exclude_none=True) for m in request.messages],
        "model": model,
    }
    for field in _CHAT_FIELDS:
        value = getattr(request, field)
        if value is not None:
            kwargs[field] = value
    openai_only = _openai_only(request, tgi=grammar)
    if request.stop is not None:
        kwargs["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.response_format is not None:
        fmt = tgi_grammar(request.response_format) if grammar else dict(request.response_format)
        if fmt is not None:
            kwargs["response_format"] = fmt
    if fields:
        kwargs.update(fields)
    extra: dict[str, Any] = dict(openai_only)  # router providers speak OpenAI's API
    if request.user is not None:
        extra["user"] = request.user
    extra.update(request.extra_body or {})
    if extra:
        kwargs["extra_body"] = extra
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def _openai_only(request: ChatRequest, *, tgi: bool) -> dict[str, Any]:
    """The request's OpenAI-only fields (for a router provider's ``extra_body``).

    Raises:
        Unsupported: one is set and the target is a TGI endpoint (``tgi``), which would ignore it.
    """
    fields = {k: getattr(request, k) for k in _OPENAI_ONLY if getattr(request, k) is not None}
    if fields and tgi:
        raise Unsupported(f"TGI's chat API does not take {', '.join(fields)}; leave it out for this target")
    return fields


def text_kwargs(
    request: ChatRequest, *, default_max_new_tokens: int, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``InferenceClient.text_generation`` (always a stream with ``details``).

    ``max_new_tokens`` is always sent (TGI's own default changed across versions). OpenAI's
    ``temperature=0`` (greedy) becomes ``do_sample=false``, since TGI rejects a zero temperature;
    ``top_p=1`` is left out (TGI needs it strictly below 1, and 1 means no nucleus sampling).
    ``params`` come from the provider's `TGIOptions`; ``extra_body`` keys override them.

    Raises:
        Unsupported: tools, ``n`` > 1, or an ``extra_body`` key TGI's ``/generate`` does not take.
    """
    if request.tools or request.tool_choice not in (None, "none"):
        raise Unsupported('text mode cannot send tools; use mode = "chat" for tool calls')
    if request.n not in (None, 1):
        raise Unsupported("text mode generates one answer per call (n must be 1)")
    unsendable = [k for k in _NOT_IN_TEXT_MODE if getattr(request, k) not in (None, False)]
    if unsendable:
        raise Unsupported(f'text mode (TGI /generate) cannot send {", ".join(unsendable)}; use mode = "chat"')
    kwargs: dict[str, Any] = {
        "max_new_tokens": request.max_tokens or default_max_new_tokens,
        "details": True,
        "stream": True,
        **_sampling(request),
    }
    grammar = tgi_grammar(request.response_format)
    if grammar is not None:
        kwargs["grammar"] = grammar
    if params:
        kwargs.update(params)
    for key, value in (request.extra_body or {}).items():
        if key not in TEXT_PARAMETERS:
            allowed = ", ".join(sorted(TEXT_PARAMETERS))
            raise Unsupported(f"extra_body key {key!r} is not a TGI /generate parameter (allowed: {allowed})")
        kwargs[key] = value
    return kwargs


def _sampling(request: ChatRequest) -> dict[str, Any]:
    """Sampling parameters for ``/generate`` from the request's OpenAI-style ones."""
    params: dict[str, Any] = {}
    if request.temperature is not None:
        if request.temperature == 0:
            params["do_sample"] = False
        else:
            params["temperature"] = request.temperature
            params["do_sample"] = True
    if request.top_p is not None and request.top_p < 1:
        params["top_p"] = request.top_p
    if request.seed is not None:
        params["seed"] = request.seed
    if request.frequency_penalty is not None:
        params["frequency_penalty"] = request.frequency_penalty
    if request.stop is not None:
        params["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    return params


def _plain(output: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip: huggingface_hub's outputs are dict subclasses holding the server's keys."""
    loaded: dict[str, Any] = json.loads(json.dumps(output))
    return loaded


def _fix_tool_calls(calls: Any) -> Any:
    """TGI 2.x-3.0 send ``arguments`` as a JSON object and may stream one call as a bare object."""
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, list):
        return calls
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and not isinstance(function.get("arguments"), str | None):
            function["arguments"] = json.dumps(function["arguments"])
    return calls


def decode_chat(output: Mapping[str, Any], *, provider: str, model: str) -> ChatResponse:
    """Decode a ``ChatCompletionOutput`` (TGI's, vLLM's or a router provider's chat completion).

    Raises:
        ResponseValidationError: it is not a chat completion.
    """
    body = _plain(output)
    for choice in body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and message.get("tool_calls") is not None:
            message["tool_calls"] = _fix_tool_calls(message["tool_calls"])
    return parse_completion(json.dumps(body).encode(), provider=provider, model=model, request_id=None)


def decode_chat_chunk(output: Mapping[str, Any], *, provider: str, model: str) -> list[ChatChunk]:
    """Decode one ``ChatCompletionStreamOutput`` into chunks (one per choice, plus one for usage)."""
    body = _plain(output)
    for choice in body.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and delta.get("tool_calls") is not None:
            delta["tool_calls"] = _fix_tool_calls(delta["tool_calls"])
    return parse_chunk(json.dumps(body), provider=provider, model=model)


class TextStream:
    """Turns ``/generate_stream`` events into chunks; knows whether the last event came.

    Special tokens (the closing ``</s>``) are not text. Llama's tokenizer puts a space before the
    first word of the answer; it is dropped, as ``generated_text`` (and Meta's reference code) do.
    """

    def __init__(self, provider: str, model: str, *, continues: bool = False) -> None:
        self.provider = provider
        self.model = model
        self.continues = continues
        """A continuation of text already written: its first token's space separates it from that text."""
        self.parts: list[str] = []
        self.done = False
        self.generated_text: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def add(self, event: Mapping[str, Any]) -> list[ChatChunk]:
        """Chunks for one event (``TextGenerationStreamOutput``): text, then finish reason and usage."""
        chunks: list[ChatChunk] = []
        token = event.get("token") or {}
        text = token.get("text") if not token.get("special") else None
        if text and not self.parts and not self.continues:
            text = text.lstrip()
        if text:
            self.parts.append(text)
            chunks.append(ChatChunk.model_construct(text=text, index=0, finish_reason=None, tool_calls=[], usage=None))
        details = event.get("details")
        if event.get("generated_text") is None and details is None:
            return chunks
        self.done = True
        self.generated_text = event.get("generated_text")
        finish: FinishReason | None = None
        if details is not None:  # None: a server started without details, or a proxy that strips them
            self.finish_reason = details.get("finish_reason")
            prompt, completion = details.get("input_length"), details.get("generated_tokens")
            total = prompt + completion if prompt is not None and completion is not None else None
            self.usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
            finish = finish_reason_from_wire(self.finish_reason)
        chunks.append(ChatChunk.model_construct(text=None, index=0, finish_reason=finish, tool_calls=[], usage=None))
        if self.usage is not None:
            chunks.append(self.usage_chunk())
        return chunks

    def usage_chunk(self) -> ChatChunk:
        """The chunk that carries `usage`."""
        return ChatChunk.model_construct(text=None, index=0, finish_reason=None, tool_calls=[], usage=self.usage)

    def count_prompt(self, tokens: int | None) -> ChatChunk | None:
        """After a last event without ``details``: use a ``/tokenize`` count as the prompt's; its usage chunk."""
        if tokens is None:
            return None
        self.usage = Usage(prompt_tokens=tokens)
        return self.usage_chunk()

    @property
    def warnings(self) -> list[str]:
        """What the reply lacks: usage, when the last event had no ``details``."""
        if self.usage is None:
            return ["the server sent no usage for this reply (no details in its last event)"]
        if self.usage.completion_tokens is None:
            return ["the server sent no completion token count (no details); prompt_tokens counted with /tokenize"]
        return []

    @property
    def text(self) -> str:
        """The text received so far (the final ``generated_text`` once the stream is done)."""
        joined = "".join(self.parts)
        return self.generated_text.lstrip() if self.generated_text is not None else joined

    def response(self) -> ChatResponse:
        """The whole reply (call once `done`)."""
        finish = finish_reason_from_wire(self.finish_reason)
        return ChatResponse.model_construct(
            text=self.text,
            choices=[Choice.model_construct(index=0, text=self.text, finish_reason=finish, tool_calls=[])],
            usage=self.usage or Usage(),
            cost=None,
            provider=self.provider,
            model=self.model,
            attempts=[],
            finish_reason=finish,
            tool_calls=[],
            id=None,
            request_id=None,
            warnings=self.warnings,
        )
