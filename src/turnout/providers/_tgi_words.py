"""The words TGI's server uses, read by every decoder that may face a TGI server.

TGI answers on its own routes (``/generate``, through huggingface_hub's ``text_generation``) and
on its OpenAI-compatible Messages API (``/v1/chat/completions``), which the ``huggingface``
provider and any OpenAI-compatible provider pointed at TGI both read. So this module imports
neither decoder: the TGI and the OpenAI-wire decoders each read it. Source:
https://github.com/huggingface/text-generation-inference (``router/src/infer/mod.rs`` for the
error types, ``router/src/validation.rs`` for the validation messages, ``router/src/lib.rs``
for ``FinishReason``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..types import FinishReason

__all__ = ["TGI_CONTEXT_MARKERS", "TGI_ERROR_STATUS", "TGI_FINISH_REASONS"]

#: HTTP status of each TGI ``error_type``.
TGI_ERROR_STATUS = {
    "validation": 422,
    "template_error": 422,
    "missing_template_variable": 422,
    "tool_error": 422,
    "generation": 424,
    "overloaded": 429,
    "incomplete_generation": 500,
    "incomplete_generation_stream": 500,
}
#: Substrings of TGI's validation errors for a prompt (plus ``max_new_tokens``) over the model's limits.
TGI_CONTEXT_MARKERS = ("`inputs` tokens + `max_new_tokens`", "`inputs` must have less than")
#: TGI's ``FinishReason`` words that OpenAI spells ``"stop"`` (``length`` is the same word).
TGI_FINISH_REASONS: dict[str, FinishReason] = {"eos_token": "stop", "stop_sequence": "stop"}
