"""Argument checks shared by requests and the config: header fields, and numbers that are not bools.

Header names must be RFC 9110 tokens (section 5.6.2) and values printable ASCII, spaces and
tabs (section 5.5; https://www.rfc-editor.org/rfc/rfc9110#section-5.5; httpx2 encodes header
values as ASCII). A header that breaks these rules is the caller's mistake: it is rejected
before anything is sent, so it never reaches a server nor counts against a target.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["NoBoolNumbers", "check_headers"]

# Patterns compiled on first use (re's cache): a config without headers never needs them.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE = r"[\t\x20-\x7e]*"
_NUMBERS = (int, float, Decimal)


def check_headers(headers: Mapping[Any, Any]) -> dict[str, str]:
    """``headers`` as a dict, after checking each name and value can be sent as an HTTP header.

    Raises:
        ValueError: naming the header and what is wrong with it.
    """
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not re.fullmatch(_TOKEN, name):
            raise ValueError(
                f"header name {name!r} is not valid: use letters, digits and !#$%&'*+-.^_`|~ "
                "(no spaces, colons or line breaks)"
            )
        if not isinstance(value, str):
            raise ValueError(f"header {name!r}: the value must be a string, not {type(value).__name__}")
        if not re.fullmatch(_VALUE, value):
            bad = next(c for c in value if not re.fullmatch(_VALUE, c))
            raise ValueError(
                f"header {name!r}: the value contains {bad!r}; header values are printable ASCII "
                "on one line (no line breaks or control characters)"
            )
        checked[name] = value
    return checked


def _leaves(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaves(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return {leaf for arg in typing.get_args(annotation) for leaf in _leaves(arg)}
    return {annotation}


class NoBoolNumbers(BaseModel):
    """Rejects ``True``/``False`` given for a number field (pydantic would read them as 1 and 0)."""

    model_config = ConfigDict(defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            numbers = _number_fields(cls)
            for name, value in data.items():
                if type(value) is bool and name in numbers:
                    raise ValueError(f"{name}: must be a number, not {value} (a bool)")
        return data


_NUMBER_FIELDS: dict[type[BaseModel], frozenset[str]] = {}


def _number_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of ``cls`` that take a number and not a bool (computed once per class)."""
    found = _NUMBER_FIELDS.get(cls)
    if found is None:
        names = set()
        for name, field in cls.model_fields.items():
            leaves = _leaves(field.annotation)
            if bool not in leaves and Any not in leaves and leaves & set(_NUMBERS):
                names.add(name)
                if field.alias:
                    names.add(field.alias)
        found = _NUMBER_FIELDS[cls] = frozenset(names)
    return found
