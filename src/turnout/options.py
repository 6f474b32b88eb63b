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
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, model_validator

from ._checks import NoBoolNumbers
from ._lazy import lazy

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


# The option classes of each provider kind live with their provider (turnout.providers); they
# stay importable from here, the module users know, and load on first use (a client of other
# provider types never needs them).
_LAZY = {
    "TGIGrammar": "tgi_options",
    "TGIOptions": "tgi_options",
    "VLLMOptions": "vllm_options",
    "VLLMStructuredOutputs": "vllm_options",
}

if TYPE_CHECKING:
    from .providers.tgi_options import TGIGrammar, TGIOptions
    from .providers.vllm_options import VLLMOptions, VLLMStructuredOutputs


__getattr__ = lazy(__name__, {name: f"turnout.providers.{home}" for name, home in _LAZY.items()})
