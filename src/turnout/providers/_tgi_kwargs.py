"""`TGIOptions` -> huggingface_hub keyword arguments, for the ``huggingface`` provider. Pure functions, no I/O.

- Text mode: every option is a ``/generate`` parameter (``text_generation(grammar=, top_k=,
  repetition_penalty=, truncate=)``).
- Chat mode on a TGI server: TGI's Messages API takes only the grammar, as its
  ``response_format`` (the same ``GrammarType``); ``top_k``, ``repetition_penalty`` and
  ``truncate`` are not fields of its ``ChatRequest`` (https://github.com/huggingface/text-generation-inference/blob/main/docs/openapi.json)
  and would be ignored, so they are refused.
- The HF router and ``response_format_style = "openai"`` endpoints are not TGI: no `TGIOptions`.
"""

from __future__ import annotations

from typing import Any

from ..options import ProviderOptions, TGIOptions
from ..types import ChatRequest
from ._tgi_wire import Unsupported

__all__ = ["chat_fields", "chat_problem", "text_parameters"]

_GENERATE_ONLY = ("top_k", "repetition_penalty", "truncate")


def chat_problem(options: TGIOptions, *, tgi: bool) -> str | None:
    """Why chat mode cannot send these options (None when it can).

    Args:
        options: the merged options.
        tgi: the chat route is a TGI server's (a ``base_url`` with ``response_format_style = "tgi"``).
    """
    given = sorted(options.wire_fields())
    if not given:
        return None
    if not tgi:
        return (
            f"TGIOptions ({', '.join(given)}) apply to a TGI server; this provider sends OpenAI-shaped requests "
            '(the HF router, or response_format_style = "openai"): pass such keys in extra_body instead'
        )
    for name in _GENERATE_ONLY:
        if name in given:
            return (
                f"TGIOptions.{name}: TGI's chat route (/v1/chat/completions) has no {name}; it is a /generate "
                'parameter: set mode = "text" on this provider, or drop it'
            )
    return None


def _checked(options: ProviderOptions | None, request: ChatRequest) -> TGIOptions | None:
    if not isinstance(options, TGIOptions):
        return None
    if options.grammar is not None and request.response_format is not None:
        raise Unsupported("response_format and TGIOptions.grammar both constrain the reply: give one of them")
    return options


def chat_fields(options: ProviderOptions | None, request: ChatRequest, *, tgi: bool) -> dict[str, Any]:
    """``chat_completion`` keyword arguments from the options: the grammar as ``response_format``.

    Raises:
        Unsupported: an option chat mode cannot send (`chat_problem`), or a grammar together with
            ``response_format``.
    """
    checked = _checked(options, request)
    if checked is None:
        return {}
    problem = chat_problem(checked, tgi=tgi)
    if problem is not None:
        raise Unsupported(problem)
    return {} if checked.grammar is None else {"response_format": checked.grammar.wire_fields()}


def text_parameters(options: ProviderOptions | None, request: ChatRequest) -> dict[str, Any]:
    """``text_generation`` keyword arguments (``/generate`` parameters) from the options.

    Raises:
        Unsupported: a grammar together with ``response_format``.
    """
    checked = _checked(options, request)
    return {} if checked is None else checked.wire_fields()
