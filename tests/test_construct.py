"""`construct`: the hot path's fast model construction gives the same models as validation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from tests.conftest import LLAMA
from turnout import Client
from turnout._construct import builder, construct, construct_set, replace
from turnout.testing import FakeServer, Reply
from turnout.types import USD, Attempt, ChatChunk, ChatResponse, Choice, Cost, Usage

FULL: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        ChatChunk,
        {
            "text": "hi",
            "index": 0,
            "finish_reason": None,
            "tool_calls": [],
            "usage": None,
            "model": "m",
            "logprobs": None,
            "function_call": None,
            "rate_limit": None,
        },
    ),
    # the hot path gives USD amounts (validation turns a Decimal into one)
    (Cost, {"input": USD("0.1"), "output": USD("0.2"), "total": USD("0.3"), "source": "config", "estimated": False}),
    (
        Attempt,
        {
            "provider": "p",
            "model": "m",
            "outcome": "ok",
            "latency": 0.5,
            "status_code": None,
            "error": None,
            "skipped": False,
        },
    ),
    (
        Usage,
        {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "cached_tokens": None,
            "reasoning_tokens": 0,
            "estimated": False,
        },
    ),
]


@pytest.mark.parametrize(("cls", "values"), FULL, ids=[c.__name__ for c, _ in FULL])
def test_every_field_given_equals_the_validated_model(cls: type[BaseModel], values: dict[str, Any]) -> None:
    assert set(values) == set(cls.model_fields), "the case must give every field (update it with the model)"
    built, validated = construct(cls, **values), cls.model_validate(values)
    assert built == validated
    assert repr(built) == repr(validated)
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set == set(values)
    assert hash(built.model_dump_json()) == hash(validated.model_dump_json())


def test_every_field_in_order_skips_model_construct(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: Any) -> None:
        raise AssertionError("the fast path was not taken")

    monkeypatch.setattr(Cost, "model_construct", refuse)
    cost = construct(Cost, input=Decimal(1), output=Decimal(2), total=Decimal(3), source="config", estimated=False)
    assert cost.total == Decimal(3)


@pytest.mark.parametrize(("cls", "values"), FULL, ids=[c.__name__ for c, _ in FULL])
def test_fields_out_of_order_give_the_same_model(cls: type[BaseModel], values: dict[str, Any]) -> None:
    built = construct(cls, **dict(reversed(values.items())))
    assert built == cls.model_validate(values)
    assert repr(built) == repr(cls.model_validate(values))


def test_missing_fields_fall_back_to_model_construct_with_defaults() -> None:
    usage = Usage()
    choice = construct(Choice, index=0, text="x")  # finish_reason and tool_calls left to their defaults
    reply = construct(
        ChatResponse, text="x", choices=[choice], usage=usage, provider="p", model="m", finish_reason="stop"
    )
    assert choice == Choice(index=0, text="x")
    assert choice.model_fields_set == {"index", "text"}
    assert reply.attempts == [] and reply.cost is None and reply.warnings == []
    assert reply.model_fields_set == {"text", "choices", "usage", "provider", "model", "finish_reason"}


def test_an_unknown_name_is_not_stored_as_a_field() -> None:
    cost = construct(Cost, input=Decimal(1), output=Decimal(1), total=Decimal(2), sauce="config")
    assert "sauce" not in cost.__dict__
    with pytest.raises(AttributeError):
        _ = cost.source


def test_constructed_models_stay_frozen() -> None:
    cost = construct(Cost, input=Decimal(1), output=Decimal(1), total=Decimal(2), source="config")
    with pytest.raises(ValueError, match="frozen"):
        cost.total = Decimal(3)


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_the_hot_path_takes_the_fast_path(
    monkeypatch: pytest.MonkeyPatch, fake_vllm: FakeServer, config: dict[str, Any], streamed: bool
) -> None:
    """A call over HTTP builds its reply (or chunks), usage, attempt and cost without ``model_construct``."""
    fake_vllm.enqueue(Reply("fast path", prompt_tokens=3, completion_tokens=2))
    with Client(config=config) as client:
        client.provider("local")  # created (and its first-use work done) before the guard
        per_chunk_or_reply = (ChatChunk,) if streamed else (ChatResponse, Choice)  # a stream's reply: once per stream
        for cls in (*per_chunk_or_reply, Usage, Attempt, Cost):

            def refuse(cls: type[BaseModel] = cls, **_: Any) -> None:
                raise AssertionError(f"{cls.__name__}.model_construct on the hot path: pass every field in order")

            monkeypatch.setattr(cls, "model_construct", refuse)
        if streamed:
            with client.stream(f"local:{LLAMA}", "Hi") as stream:
                assert "".join(c.text or "" for c in stream) == "fast path"
            reply = stream.response
        else:
            reply = client.chat(f"local:{LLAMA}", "Hi")
    assert reply.text == "fast path" and reply.cost is not None and reply.attempts[0].outcome == "ok"


@pytest.mark.parametrize(("cls", "values"), FULL, ids=[c.__name__ for c, _ in FULL])
def test_a_models_builder_gives_what_construct_gives(cls: type[BaseModel], values: dict[str, Any]) -> None:
    """`builder` hands out the function `construct` calls: the same model, without the lookup per call."""
    built = builder(cls)(**values)
    assert built == construct(cls, **values) == cls.model_validate(values)
    assert built.model_fields_set == set(values) and list(built.__dict__) == list(cls.model_fields)
    with pytest.raises(TypeError, match="missing"):
        builder(cls)(**dict(list(values.items())[1:]))  # a field left out: an error, not a default


def test_models_whose_field_names_the_fast_builder_cannot_take_are_still_built() -> None:
    """A field named like one of the generated builder's own names goes through ``model_construct``."""

    class Odd(BaseModel):
        instance: int
        name: str

    built = construct(Odd, instance=1, name="n")
    assert built == Odd(instance=1, name="n") and built.model_fields_set == {"instance", "name"}
    assert builder(Odd) == Odd.model_construct


def test_fields_in_any_order_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field given, in any order: built without ``model_construct``, its fields in declaration order."""
    values = dict(reversed(FULL[0][1].items()))

    def refuse(**_: Any) -> None:
        raise AssertionError("model_construct")

    monkeypatch.setattr(ChatChunk, "model_construct", refuse)
    built = construct(ChatChunk, **values)
    assert list(built.__dict__) == list(ChatChunk.model_fields) and built.model_fields_set == set(values)


def _state(model: BaseModel) -> tuple[object, ...]:
    return (type(model), list(model.__dict__.items()), model.model_fields_set, model.__pydantic_extra__)


@pytest.mark.parametrize("validated", [False, True], ids=["constructed", "validated"])
def test_replace_gives_what_construct_gives(validated: bool) -> None:
    """`replace` (a reply given its cost and attempts) sets the same state as `construct` over the merged fields."""
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    choice = Choice(index=0, text="x", finish_reason="stop")
    reply = (
        ChatResponse(text="x", choices=[choice], usage=usage, provider="p", model="m", finish_reason="stop")
        if validated  # only some fields set: the copy has them all set, as construct gives
        else construct(
            ChatResponse, **ChatResponse(text="x", choices=[choice], usage=usage, provider="p", model="m").__dict__
        )
    )
    cost = Cost(input=Decimal(1), output=Decimal(2), total=Decimal(3), source="config")
    changes = {
        "attempts": [Attempt(provider="p", model="m", outcome="ok", latency=0.1)],
        "cost": cost,
        "tags": {"a": "b"},
    }
    copied, expected = replace(reply, **changes), construct(ChatResponse, **{**reply.__dict__, **changes})
    assert _state(copied) == _state(expected)
    assert copied == expected and repr(copied) == repr(expected)
    assert reply.cost is None and reply.attempts == []  # the original is left as it was
    with pytest.raises(ValueError, match="frozen"):
        copied.text = "y"


def test_replace_of_a_model_construct_cannot_build_goes_through_it() -> None:
    class Private(BaseModel):
        value: int
        _note: str = "n"

    built = replace(Private(value=1), value=2)
    assert built.value == 2 and built._note == "n"


class _Shareable(BaseModel):
    name: str
    size: int = 3
    tags: tuple[str, ...] = ()


class _Mutable(BaseModel):
    name: str
    items: list[int] = []


def test_construct_set_is_model_construct_with_only_the_given_fields_set(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _Shareable.model_construct(name="a")
    monkeypatch.setattr(_Shareable, "model_construct", None)  # the fast path must not need it
    built = construct_set(_Shareable, name="a")
    assert list(built.__dict__.items()) == list(expected.__dict__.items()) == [("name", "a"), ("size", 3), ("tags", ())]
    assert built.model_fields_set == expected.model_fields_set == {"name"}


def test_construct_set_falls_back_where_a_default_cannot_be_shared_or_a_field_is_missing() -> None:
    built = construct_set(_Mutable, name="a")
    other = construct_set(_Mutable, name="b")
    assert built.items == [] and built.items is not other.items  # each its own list, as model_construct gives
    assert construct_set(_Shareable, size=4).model_fields_set == {"size"}  # name left out: model_construct's state
    assert "name" not in construct_set(_Shareable, size=4).__dict__
