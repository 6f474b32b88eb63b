"""turnout.options: the typed provider options' validation and wire names (no I/O; HTTP proofs are in
tests/providers/test_provider_options.py and tests/vllm/test_provider_options_vllm.py)."""

from __future__ import annotations

import pydantic
import pytest

from turnout import ChatRequest, Message, TGIGrammar, TGIOptions, VLLMOptions, VLLMStructuredOutputs
from turnout.options import ProviderOptions

VLLM_FIELDS = (
    "ignore_eos, min_p, min_tokens, repetition_penalty, stop_token_ids, structured_outputs, top_k, "
    "truncate_prompt_tokens"
)


def test_an_unknown_option_names_it_and_the_valid_ones() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        VLLMOptions.model_validate({"topk": 5})
    assert caught.value.errors()[0]["msg"] == (
        f"Value error, unknown option 'topk' for VLLMOptions (valid options: {VLLM_FIELDS})"
    )
    with pytest.raises(pydantic.ValidationError, match=r"unknown option 'choices' for VLLMStructuredOutputs \("):
        VLLMOptions.model_validate({"structured_outputs": {"choices": ["a"]}})
    with pytest.raises(pydantic.ValidationError, match="valid options: grammar, repetition_penalty, top_k, truncate"):
        TGIOptions.model_validate({"max_new_tokens": 5})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"top_k": -2}, "top_k\n  Input should be greater than or equal to -1"),
        ({"min_p": 1.5}, "min_p\n  Input should be less than or equal to 1"),
        ({"repetition_penalty": 0}, "repetition_penalty\n  Input should be greater than 0"),
        ({"structured_outputs": {"choice": []}}, "List should have at least 1 item"),
        ({"structured_outputs": {"choice": ["a"], "regex": "a"}}, "(found: choice, regex)"),
        ({"structured_outputs": {}}, "set exactly one of choice, regex, grammar and json (found: none)"),
    ],
    ids=["top_k", "min_p", "repetition_penalty", "empty-choice", "two-constraints", "no-constraint"],
)
def test_vllm_values_are_checked(value: dict[str, object], fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        VLLMOptions.model_validate(value)
    assert fragment in str(caught.value)


def test_tgi_values_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="a regex grammar's value is the regular expression"):
        TGIGrammar.model_validate({"type": "regex", "value": {"type": "object"}})
    with pytest.raises(pydantic.ValidationError, match="top_k\n  Input should be greater than 0"):
        TGIOptions(top_k=0)
    with pytest.raises(pydantic.ValidationError, match="type\n  Input should be 'json' or 'regex'"):
        TGIGrammar.model_validate({"type": "xml", "value": "<a/>"})


def test_wire_fields_use_the_servers_names_and_leave_out_unset_ones() -> None:
    schema = {"type": "object"}
    assert VLLMOptions(structured_outputs=VLLMStructuredOutputs(json_schema=schema)).wire_fields() == {
        "structured_outputs": {"json": schema}
    }
    from_toml = VLLMOptions.model_validate({"top_k": 3, "structured_outputs": {"json": schema}})
    assert from_toml.wire_fields() == {"top_k": 3, "structured_outputs": {"json": schema}}
    assert TGIOptions(grammar=TGIGrammar(type="json", value=schema), truncate=9).wire_fields() == {
        "grammar": {"type": "json", "value": schema},
        "truncate": 9,
    }
    assert VLLMOptions().wire_fields() == {}


def test_options_are_frozen_and_know_what_they_set() -> None:
    options = VLLMOptions(top_k=3, min_p=None)
    assert options.fields_set() == {"top_k": 3, "min_p": None}
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        options.top_k = 4


def test_chat_request_takes_one_object_or_one_per_kind() -> None:
    messages = [Message(role="user", content="Hi")]
    one = VLLMOptions(top_k=1)
    assert ChatRequest(messages=messages, provider_options=one).provider_options == (one,)  # type: ignore[arg-type]
    both = [one, TGIOptions(top_k=1)]
    assert ChatRequest(messages=messages, provider_options=both).provider_options == tuple(both)  # type: ignore[arg-type]
    assert ChatRequest(messages=messages).provider_options == ()
    with pytest.raises(pydantic.ValidationError, match="more than one VLLMOptions"):
        ChatRequest(messages=messages, provider_options=(one, VLLMOptions()))
    with pytest.raises(pydantic.ValidationError, match="got dict"):
        ChatRequest(messages=messages, provider_options=[{"top_k": 1}])  # type: ignore[arg-type]


def test_a_plugin_subclasses_provider_options() -> None:
    class MyOptions(ProviderOptions):
        beam_width: int | None = None

    with pytest.raises(
        pydantic.ValidationError, match=r"unknown option 'beam' for MyOptions \(valid options: beam_width\)"
    ):
        MyOptions.model_validate({"beam": 2})
    assert MyOptions(beam_width=2).wire_fields() == {"beam_width": 2}
