"""Typed provider-specific options: `VLLMOptions` and `TGIOptions`, instead of untyped ``extra_body`` dicts.

A provider type declares the options it takes (``Provider.options_model``); each provider applies
only the options of its own kind and ignores the others, so one call can carry options for every
kind of target on its route::

    client.chat("fast", "Hi", provider_options=[VLLMOptions(top_k=20), TGIOptions(top_k=20)])

They can also be set per provider, or per model of a provider, in turnout.toml (validated when the
file is loaded)::

    [providers.local.options]
    top_k = 20

    [providers.local.model_options."meta-llama/Llama-2-7b-chat-hf"]
    repetition_penalty = 1.1

Later layers win, field by field: ``options``, then ``model_options``, then the call's. ``extra_body``
stays the untyped escape hatch: its keys override everything. An unknown option is an error that
names it and the valid ones. Shapes: vLLM 0.32 ``ChatCompletionRequest`` and
``StructuredOutputsParams``; TGI ``GenerateParameters`` and ``GrammarType``
(https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/openai/protocol.py,
https://github.com/huggingface/text-generation-inference/blob/main/docs/openapi.json).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ._checks import NoBoolNumbers

__all__ = [
    "ProviderOptions",
    "ProviderOptionsInput",
    "TGIGrammar",
    "TGIOptions",
    "VLLMOptions",
    "VLLMStructuredOutputs",
]


class _Strict(NoBoolNumbers):
    """Frozen, no unknown keys; an unknown key's error names it and lists the valid ones."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            valid = _names(cls)
            unknown = [str(key) for key in data if key not in valid]
            if unknown:
                listed = ", ".join(sorted(f.serialization_alias or n for n, f in cls.model_fields.items()))
                raise ValueError(f"unknown option {unknown[0]!r} for {cls.__name__} (valid options: {listed})")
        return data

    def wire_fields(self) -> dict[str, Any]:
        """The values as the provider's JSON names them (unset ones left out)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


def _names(cls: type[BaseModel]) -> set[str]:
    names = set(cls.model_fields)
    for field in cls.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(str(choice) for choice in field.validation_alias.choices)
    return names


class ProviderOptions(_Strict):
    """Base class of a provider kind's options; a plugin subclasses it and names it in ``options_model``."""

    def fields_set(self) -> dict[str, Any]:
        """The options this object sets (by field name), for merging layers."""
        return {name: getattr(self, name) for name in self.model_fields_set}


# -- vLLM ---------------------------------------------------------------------------------------------


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


# -- what calls accept ----------------------------------------------------------------------------------


def _coerce(value: Any) -> Any:
    """One options object or a sequence of them -> a tuple with at most one per kind."""
    items = [value] if isinstance(value, ProviderOptions) else value
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise ValueError("give a provider options object (e.g. VLLMOptions(top_k=5)) or a list of them")
    seen: set[type[ProviderOptions]] = set()
    for item in items:
        if not isinstance(item, ProviderOptions):
            raise ValueError(f"expected provider options such as VLLMOptions or TGIOptions, got {type(item).__name__}")
        if type(item) in seen:
            raise ValueError(f"more than one {type(item).__name__}: merge them into one")
        seen.add(type(item))
    return tuple(items)


ProviderOptionsInput: TypeAlias = ProviderOptions | Sequence[ProviderOptions]
"""What ``provider_options=`` takes: one options object, or a list with one per provider kind."""

ProviderOptionsField: TypeAlias = Annotated[tuple[ProviderOptions, ...], BeforeValidator(_coerce)]
"""The type of ``ChatRequest.provider_options``."""
