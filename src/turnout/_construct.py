"""Build pydantic models from trusted values, fast (the hot path's replies, chunks, attempts, costs).

``Model.model_construct`` is already unvalidated, but it walks every field, its aliases and
defaults on each call: several µs for the small models turnout creates once or more per call
or streamed chunk. `construct` takes a value for every field (in any order) and sets the
instance's state directly, in declaration order (the same state ``model_construct`` would set);
given anything else it falls back to ``model_construct``, so a field added to a model later
cannot be left unset.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["builder", "construct", "construct_set", "replace"]

M = TypeVar("M", bound=BaseModel)

#: The instance slots every model has (`BaseModel`'s), as their descriptors' setters: calling one
#: skips the attribute lookup that ``object.__setattr__`` does first.
_SETTERS = {
    "set_dict": BaseModel.__dict__["__dict__"].__set__,
    "set_fields": BaseModel.__dict__["__pydantic_fields_set__"].__set__,
    "set_extra": BaseModel.__dict__["__pydantic_extra__"].__set__,
    "set_private": BaseModel.__dict__["__pydantic_private__"].__set__,
}
_NAMES = frozenset({"new", "cls", "instance", *_SETTERS})  # the generated function's own names


@cache
def _names(cls: type[BaseModel]) -> tuple[str, ...]:
    """The field names of ``cls``, in declaration order."""
    return tuple(cls.model_fields)


@cache
def _maker(cls: type[M]) -> Callable[..., M] | None:
    """A function taking every field of ``cls`` by name that builds it, or None when ``cls`` needs ``model_construct``.

    Written once per model (like `dataclasses` writes ``__init__``), so that a call is a dict and a
    set display in field order, with no loop and no check beyond Python's own argument binding.
    """
    if cls.__pydantic_post_init__ or cls.model_config.get("extra") == "allow" or cls.__private_attributes__:
        return None
    fields = _names(cls)
    if not all(n.isidentifier() and not keyword.iskeyword(n) and n not in _NAMES for n in fields):
        return None
    source = (
        f"def make(*, {', '.join(fields)}):\n"
        "    instance = new(cls)\n"
        f"    set_dict(instance, {{{', '.join(f'{n!r}: {n}' for n in fields)}}})\n"
        f"    set_fields(instance, {{{', '.join(map(repr, fields))}}})\n"
        "    set_extra(instance, None)\n"
        "    set_private(instance, None)\n"
        "    return instance\n"
    )
    namespace: dict[str, Any] = {"new": cls.__new__, "cls": cls, **_SETTERS}
    exec(source, namespace)  # noqa: S102 - the source is built above from the model's own field names
    make: Callable[..., M] = namespace["make"]
    return make


@cache
def builder(cls: type[M]) -> Callable[..., M]:
    """The fast builder of ``cls`` itself, for a call site that builds many (a stream's chunks).

    It takes every field by keyword, in any order; a field left out or a name that is not one is
    a ``TypeError`` (`construct` would fall back to ``model_construct`` instead). A model the fast
    builder cannot take gets its ``model_construct``.
    """
    return _maker(cls) or cls.model_construct


def construct(cls: type[M], /, **values: Any) -> M:
    """``cls.model_construct(**values)``, in a fraction of the time when ``values`` gives every field."""
    make = _maker(cls)
    if make is not None:
        try:
            built: M = make(**values)
        except TypeError:  # a field left out, or a name that is not a field: the general path
            pass
        else:
            return built
    return cls.model_construct(**values)


_SHAREABLE = (type(None), bool, int, float, str, tuple, frozenset)  # defaults one instance can share with the next


@cache
def _defaults(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]] | None:
    """Each field's default in declaration order, and the required fields (a placeholder there).

    None when a default is a factory or mutable: each instance needs its own.
    """
    defaults, required = {}, set()
    for name, field in cls.model_fields.items():
        default = field.default
        if default is PydanticUndefined and field.default_factory is None:
            required.add(name)
        elif field.default_factory is not None or type(default) not in _SHAREABLE:
            return None
        defaults[name] = default
    return defaults, frozenset(required)


def construct_set(cls: type[M], /, **values: Any) -> M:
    """``cls.model_construct(**values)``, fast; only ``values`` count as set, as after ``cls(**values)``.

    The fields not given take their defaults. For a model whose defaults are immutable (shared
    by every instance) and whose required fields are all given; any other goes through
    ``model_construct``.
    """
    known = _defaults(cls)
    if known is None or _maker(cls) is None:
        return cls.model_construct(**values)
    defaults, required = known
    if not required <= values.keys() or not values.keys() <= defaults.keys():
        return cls.model_construct(**values)
    return _instance(cls, {**defaults, **values}, set(values))


def _instance(cls: type[M], state: dict[str, Any], fields_set: set[str]) -> M:
    """An instance of ``cls`` with ``state`` as its fields, the way `construct`'s makers build one."""
    instance = cls.__new__(cls)
    _SETTERS["set_dict"](instance, state)
    _SETTERS["set_fields"](instance, fields_set)
    _SETTERS["set_extra"](instance, None)
    _SETTERS["set_private"](instance, None)
    return instance


def replace(model: M, /, **changes: Any) -> M:
    """``construct(type(model), **{**model.__dict__, **changes})``: a copy with ``changes``, without a second pass.

    The copy has the state `construct` gives (every field set, in declaration order). A model
    `construct` cannot build fast, or whose state is not exactly its fields in order, goes through it.
    """
    cls = type(model)
    state = model.__dict__
    names = _names(cls)
    if _maker(cls) is None or tuple(state) != names or not changes.keys() <= state.keys():
        return construct(cls, **{**state, **changes})
    return _instance(cls, {**state, **changes}, set(names))
