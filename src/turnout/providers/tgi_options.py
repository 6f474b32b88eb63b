"""`TGIOptions`: what a TGI server's ``/generate`` takes (``GenerateParameters``, ``GrammarType``).

Shapes: https://github.com/huggingface/text-generation-inference/blob/main/docs/openapi.json
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..options import ProviderOptions, _Strict

__all__ = ["TGIGrammar", "TGIOptions"]


class TGIGrammar(_Strict):
    """TGI's grammar (``GrammarType``): ``{"type": "json", "value": schema}`` or ``{"type": "regex", "value": str}``."""

    type: Literal["json", "regex"]
    value: dict[str, Any] | str

    @model_validator(mode="after")
    def _value_fits(self) -> TGIGrammar:
        if self.type == "regex" and not isinstance(self.value, str):
            raise ValueError("a regex grammar's value is the regular expression (a string)")
        return self


class TGIOptions(ProviderOptions):
    """Text Generation Inference's generation parameters for the ``huggingface`` provider.

    ``mode = "text"`` sends all of them as ``/generate`` parameters. TGI's chat route
    (``/v1/chat/completions``) takes only ``grammar`` (as its ``response_format``); the others are
    refused before sending there. They do not apply to the HF router or an endpoint running vLLM
    (``response_format_style = "openai"``): use ``extra_body`` for those.

    Example:
        ```python
        turnout.TGIOptions(top_k=10, repetition_penalty=1.1, grammar=turnout.TGIGrammar(type="regex", value="[0-9]+"))
        ```
    """

    grammar: TGIGrammar | None = Field(default=None, description="constrain the reply to a JSON schema or regex")
    top_k: int | None = Field(default=None, gt=0, description="sample from the k likeliest tokens")
    repetition_penalty: float | None = Field(default=None, gt=0, description=">1 discourages repeating tokens")
    truncate: int | None = Field(default=None, gt=0, description="keep only the last N prompt tokens")
