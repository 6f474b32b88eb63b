"""`VLLMOptions`: what a vLLM server takes beyond OpenAI's fields (vLLM 0.32 ``ChatCompletionRequest``).

Shapes: https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/openai/protocol.py
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, model_validator

from ..options import ProviderOptions, _Strict

__all__ = ["VLLMOptions", "VLLMStructuredOutputs"]


class VLLMStructuredOutputs(_Strict):
    """vLLM's ``structured_outputs``: constrain the reply to a choice, a regex, a grammar or a JSON schema.

    Set exactly one of ``choice``, ``regex``, ``grammar`` and ``json`` (``json_schema`` in Python,
    sent as ``json``). For a pydantic model's schema prefer ``response_model`` / ``response_format``
    (portable across providers); vLLM takes one constraint per request, so do not combine them.

    Example:
        ```python
        VLLMOptions(structured_outputs=VLLMStructuredOutputs(choice=["yes", "no"]))
        ```
    """

    choice: list[str] | None = Field(default=None, min_length=1, description="the reply is one of these strings")
    regex: str | None = Field(default=None, description="the reply matches this regular expression")
    grammar: str | None = Field(default=None, description="the reply follows this EBNF/GBNF grammar")
    json_schema: dict[str, Any] | str | None = Field(
        default=None,
        validation_alias=AliasChoices("json", "json_schema"),
        serialization_alias="json",
        description='a JSON schema the reply conforms to (sent as "json")',
    )
    whitespace_pattern: str | None = Field(default=None, description="JSON only: the whitespace allowed")
    disable_any_whitespace: bool | None = Field(default=None, description="JSON only: no whitespace at all")
    disable_additional_properties: bool | None = Field(
        default=None, description="JSON only: forbid properties the schema does not name"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> VLLMStructuredOutputs:
        given = [name for name in ("choice", "regex", "grammar", "json_schema") if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"set exactly one of choice, regex, grammar and json (found: {found})")
        return self


class VLLMOptions(ProviderOptions):
    """vLLM's sampling and structured-output extras, sent as top-level fields of the chat request.

    Example:
        ```python
        reply = client.chat(
            "local:meta-llama/Llama-2-7b-chat-hf",
            "Is the sky blue? Answer yes or no.",
            provider_options=turnout.VLLMOptions(
                top_k=20, structured_outputs=turnout.VLLMStructuredOutputs(choice=["yes", "no"])
            ),
        )
        ```
    """

    top_k: int | None = Field(default=None, ge=-1, description="sample from the k likeliest tokens (0 or -1: all)")
    min_p: float | None = Field(default=None, ge=0, le=1, description="drop tokens below min_p x the top probability")
    repetition_penalty: float | None = Field(default=None, gt=0, description=">1 discourages repeating tokens")
    min_tokens: int | None = Field(default=None, ge=0, description="generate at least this many tokens")
    ignore_eos: bool | None = Field(default=None, description="keep generating past the end-of-sequence token")
    stop_token_ids: list[int] | None = Field(default=None, description="token ids that end generation")
    truncate_prompt_tokens: int | None = Field(
        default=None, ge=-1, description="keep only the last N prompt tokens (-1: as many as fit)"
    )
    structured_outputs: VLLMStructuredOutputs | None = Field(
        default=None, description="constrain the reply: choice, regex, grammar or json"
    )


# -- TGI ----------------------------------------------------------------------------------------------
