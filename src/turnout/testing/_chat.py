"""What a chat request means to the fake: validating its body, and resolving a `Reply` against it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.testing import _errors
from turnout.testing._errors import ErrorContext, WireError
from turnout.testing._script import Fault, Reply, ToolCallSpec
from turnout.testing._wire import Flavor, Generation, count_chat_tokens, count_tokens, message_text, new_tool_call_id

if TYPE_CHECKING:
    from turnout.testing._openai_handler import OpenAIWireServer

__all__ = ["NO_MESSAGES", "ChatRequest", "error_context", "parse_chat", "resolve"]

_INVALID_JSON = {
    "openai": (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
        "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
        "If you have trouble figuring out how to fix this, please contact us through our help center at "
        "help.openai.com.)"
    ),
    "vllm": "1 validation error:\n  {'type': 'json_invalid', 'loc': ('body', 0), 'msg': 'JSON decode error'}\n",
}
#: The 400 message for a body without a `messages` list, per flavor.
NO_MESSAGES = {
    "openai": "Missing required parameter: 'messages'.",
    "vllm": "1 validation error:\n  {'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}\n",
}
#: OpenAI's reasoning models (o-series, gpt-5) answer `max_tokens` with this 400.
_REASONING_MODEL = re.compile(r"(ft:)?(o\d|gpt-5)(\b|[-.])")
_MAX_TOKENS_UNSUPPORTED = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
)
#: vLLM's 400 for a body asking to continue the last message and to start a new one (its
#: ChatCompletionRequest.check_generation_prompt validator, vllm/entrypoints/openai/protocol.py).
_BOTH_GENERATION_PROMPTS = (
    "1 validation error:\n  {'type': 'value_error', 'loc': ('body',), 'msg': 'Value error, Cannot set both "
    "`continue_final_message` and `add_generation_prompt` to True.'}\n"
)
_STREAM_OPTIONS = (
    "1 validation error:\n  {'type': 'value_error', 'loc': ('body',), "
    "'msg': 'Value error, Stream options can only be defined when `stream=True`.'}\n"
)


@dataclass(frozen=True)
class ChatRequest:
    """A validated `POST /v1/chat/completions` body."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    n: int
    max_tokens: int | None
    prompt_tokens: int
    logprobs: int | None = None
    """`None`: no logprobs asked; else how many `top_logprobs` per token."""
    continues: str | None = None
    """vllm ``continue_final_message``: the final assistant message the answer continues."""
    running_usage: bool = False
    """vllm ``stream_options.continuous_usage_stats``: usage in every chunk."""


def error_context(fake: OpenAIWireServer, model: str = "", **values: Any) -> ErrorContext:
    """The `ErrorContext` for a request to `fake` naming `model`."""
    return ErrorContext(fake.flavor, model, fake.max_model_len, served=tuple(fake.models), **values)


def _check_fields(body: dict[str, Any], fake: OpenAIWireServer) -> tuple[list[dict[str, Any]], str] | WireError:
    """Check `messages`, `stream_options` and `model`; return the messages and the model."""
    flavor = fake.flavor
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        code = "missing_required_parameter" if messages is None else None
        return _errors.bad_request(error_context(fake), NO_MESSAGES[flavor], param="messages", code=code)
    if flavor == "vllm" and body.get("stream_options") is not None and body.get("stream") is not True:
        return _errors.bad_request(error_context(fake), _STREAM_OPTIONS)
    if flavor == "vllm" and body.get("continue_final_message") and body.get("add_generation_prompt"):
        return _errors.bad_request(error_context(fake), _BOTH_GENERATION_PROMPTS)
    model = body.get("model")
    if not isinstance(model, str):
        if flavor == "openai":
            return _errors.bad_request(error_context(fake), "you must provide a model parameter")
        model = fake.models[0]  # vLLM serves its (first) model when none is named
    if not fake._serves(model):
        return _errors.render_fault(Fault.not_found(model), error_context(fake, model))
    return messages, model


def _check_length(fake: OpenAIWireServer, ctx: ErrorContext, param: str) -> WireError | None:
    """The flavor's error if the prompt plus `max_tokens` does not fit `max_model_len`."""
    limit, max_tokens = fake.max_model_len, ctx.max_tokens
    if limit is None:
        return None
    if fake.flavor == "vllm" and max_tokens is not None and max_tokens > limit:
        return _errors.max_tokens_error(ctx, limit, param, max_tokens)
    if ctx.prompt_tokens + (max_tokens or 0) > limit:
        return _errors.context_error(ctx, limit, ctx.prompt_tokens)
    return None


def parse_chat(body: Any, fake: OpenAIWireServer) -> ChatRequest | WireError:
    """Validate a chat request body as the flavor's server would.

    Args:
        body: The parsed JSON body (`None` if it was not JSON).
        fake: The server answering.

    Returns:
        The request, or the error response to send instead.
    """
    if not isinstance(body, dict):
        return _errors.bad_request(error_context(fake), _INVALID_JSON[fake.flavor])
    fields = _check_fields(body, fake)
    if isinstance(fields, WireError):
        return fields
    messages, model = fields
    if fake.flavor == "openai" and "max_tokens" in body and _REASONING_MODEL.match(model):
        ctx = error_context(fake, model)
        return _errors.bad_request(ctx, _MAX_TOKENS_UNSUPPORTED, param="max_tokens", code="unsupported_parameter")
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(param) if isinstance(body.get(param), int) else None
    prompt = count_chat_tokens(messages)
    ctx = error_context(fake, model, prompt_tokens=prompt, max_tokens=max_tokens)
    error = _check_length(fake, ctx, param)
    if error is not None:
        return error
    stream = body.get("stream") is True
    options = body.get("stream_options")
    default_usage = fake.flavor == "vllm"  # vLLM's StreamOptions.include_usage defaults to true
    include = stream and isinstance(options, dict) and options.get("include_usage", default_usage) is True
    n = body.get("n")
    top = body.get("top_logprobs")
    logprobs = (top if isinstance(top, int) else 0) if body.get("logprobs") is True else None
    n = n if isinstance(n, int) and n > 0 else 1
    last = messages[-1] if messages else {}
    continues = None
    if fake.flavor == "vllm" and body.get("continue_final_message") is True and last.get("role") == "assistant":
        continues = message_text(last.get("content"))
    running = fake.flavor == "vllm" and include and isinstance(options, dict) and options.get("continuous_usage_stats")
    return ChatRequest(model, messages, stream, include, n, max_tokens, prompt, logprobs, continues, running is True)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def _call_text(call: dict[str, Any]) -> str:
    arguments = call["arguments"]
    return f"{call['name']} {arguments if isinstance(arguments, str) else json.dumps(arguments)}"


def _usage(reply: Reply, req: ChatRequest, content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    prompt = req.prompt_tokens if reply.prompt_tokens is None else reply.prompt_tokens
    completion = reply.completion_tokens
    if completion is None:
        one = count_tokens(content or "") + sum(count_tokens(_call_text(c)) for c in calls)
        completion = (one + (reply.reasoning_tokens or 0)) * req.n
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage["total_tokens"] = prompt + completion
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    if reply.reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
    return usage


def _call(spec: ToolCallSpec, flavor: Flavor) -> dict[str, Any]:
    call_id = new_tool_call_id(flavor) if spec.id is None else spec.id
    arguments = spec.arguments if isinstance(spec.arguments, str) else dict(spec.arguments)
    return {"id": call_id, "name": spec.name, "arguments": arguments, "type": spec.type}


def resolve(reply: Reply, req: ChatRequest, flavor: Flavor) -> Generation:
    """Turn a `Reply` into what the fake model answers to `req`, counting tokens where not given."""
    calls = [_call(c, flavor) for c in reply.tool_calls or ()]
    legacy = _call(reply.function_call, flavor) if reply.function_call is not None else None
    counted = calls + ([legacy] if legacy is not None else [])
    silent = bool(counted)
    content = reply.text if reply.text is not None else (None if silent else _last_user_text(req.messages))
    if content is not None and req.continues and content.startswith(req.continues):
        content = content[len(req.continues) :]  # vLLM continues the final assistant message: only the rest
    finish = reply.finish_reason or ("tool_calls" if calls else "function_call" if legacy else "stop")
    return Generation(
        model=reply.model or req.model,
        content=content,
        finish_reason=finish,
        usage=_usage(reply, req, content, counted) if reply.usage else None,
        n=req.n,
        chunks=reply.chunks,
        tool_calls=calls,
        logprobs=req.logprobs,
        function_call=legacy,
    )
