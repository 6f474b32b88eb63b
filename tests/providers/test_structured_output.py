"""``response_model=`` on every backend: a pydantic model round-trips; each provider gets the schema in its own form.

Runs for every backend in ``conftest.BACKENDS`` (OpenAI, vLLM and Together fakes, TGI chat and text
mode, the HF provider on a vLLM endpoint), sync and async, as ``chat()`` and as a stream, over real
HTTP. The exact JSON body each server received is asserted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import turnout
from turnout.testing import Reply

from ..conftest import Runner
from .conftest import Backend

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
QUESTION = "Weather in Oslo?"


class Forecast(BaseModel):
    city: str
    high_c: int
    sky: Literal["sunny", "cloudy"]


#: What pydantic makes of `Forecast`, with the object closed (``additionalProperties: false``).
SCHEMA = {
    "properties": {
        "city": {"title": "City", "type": "string"},
        "high_c": {"title": "High C", "type": "integer"},
        "sky": {"enum": ["sunny", "cloudy"], "title": "Sky", "type": "string"},
    },
    "required": ["city", "high_c", "sky"],
    "title": "Forecast",
    "type": "object",
    "additionalProperties": False,
}
OPENAI_FORMAT = {"type": "json_schema", "json_schema": {"name": "Forecast", "schema": SCHEMA, "strict": True}}
TGI_GRAMMAR = {"type": "json", "value": SCHEMA}
GOOD = '{"city": "Oslo", "high_c": 21, "sky": "sunny"}'


def expected_body(backend: Backend, streamed: bool, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The exact JSON body ``backend``'s server must receive for a ``Forecast`` call with ``max_tokens=64``."""
    if backend.text_mode:  # TGI /generate: the rendered Llama 2 prompt, the schema as parameters.grammar
        return {
            "inputs": "[INST] Weather in Oslo? [/INST]",
            "parameters": {"details": True, "grammar": TGI_GRAMMAR, "max_new_tokens": 64},
            "stream": True,
        }
    model = "my-mini" if backend.name == "azure" else backend.model  # Azure: the deployment's name
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 64}
    if backend.name == "huggingface-chat":  # TGI's Messages API: its GrammarType
        body["response_format"] = TGI_GRAMMAR
    elif backend.name == "huggingface-vllm":  # vLLM behind huggingface_hub: vLLM's structured_outputs
        body["structured_outputs"] = {"json": SCHEMA}
    else:  # OpenAI, Azure, vLLM, Together: OpenAI's json_schema
        body["response_format"] = OPENAI_FORMAT
    if streamed:
        body.update(stream=True, stream_options={"include_usage": True})
    elif backend.name.startswith("huggingface"):
        body["stream"] = False  # huggingface_hub says so
    return body


@STREAMED
def test_a_pydantic_model_round_trips(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Reply(GOOD, prompt_tokens=20, completion_tokens=15))
    reply = runner.call(streamed, backend.config(), backend.target, QUESTION, max_tokens=64, response_model=Forecast)

    assert reply.parsed == Forecast(city="Oslo", high_c=21, sky="sunny")
    assert isinstance(reply.parsed, Forecast)
    assert reply.text == GOOD
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("p", "ok")]
    price_in, price_out = backend.price
    assert reply.cost is not None and reply.cost.total == (price_in * 20 + price_out * 15) / 1_000_000
    [sent] = backend.chat_requests
    assert sent.json == expected_body(backend, streamed, [{"role": "user", "content": QUESTION}])


def test_a_reply_that_does_not_fit_is_re_asked(runner: Runner, backend: Backend) -> None:
    backend.server.enqueue(
        Reply('{"city": "Oslo", "sky": "rainy"}', prompt_tokens=20, completion_tokens=10),
        Reply(GOOD, prompt_tokens=60, completion_tokens=15),
    )
    reply = runner.chat(backend.config(), backend.target, QUESTION, max_tokens=64, response_model=Forecast)

    assert reply.parsed == Forecast(city="Oslo", high_c=21, sky="sunny")
    assert [a.outcome for a in reply.attempts] == ["OutputValidationError", "ok"]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (80, 25)  # both replies were paid for
    price_in, price_out = backend.price
    assert reply.cost is not None
    assert reply.cost.total == (price_in * 80 + price_out * 25) / 1_000_000
    first, second = backend.chat_requests
    feedback = (
        "Your reply does not match the required JSON schema: high_c: Field required; sky: Input should be "
        "'sunny' or 'cloudy'. Reply again with only the corrected JSON object."
    )
    if backend.text_mode:
        assert second.json["inputs"] == (
            '[INST] Weather in Oslo? [/INST] {"city": "Oslo", "sky": "rainy"} </s><s>[INST] ' + feedback + " [/INST]"
        )
        assert second.json["parameters"] == first.json["parameters"]
    else:
        assert second.json == expected_body(
            backend,
            False,
            [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": '{"city": "Oslo", "sky": "rainy"}'},
                {"role": "user", "content": feedback},
            ],
        )


@STREAMED
def test_no_re_ask_left_raises_output_validation_error(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Reply("Sunny and 21 degrees", prompt_tokens=20, completion_tokens=6))
    with pytest.raises(turnout.OutputValidationError) as info:
        runner.call(
            streamed,
            backend.config(),
            backend.target,
            QUESTION,
            max_tokens=64,
            response_model=Forecast,
            output_retries=0,
        )
    exc = info.value
    assert exc.text == "Sunny and 21 degrees"
    assert [e["type"] for e in exc.errors] == ["json_invalid"]
    assert exc.provider == "p" and exc.model == backend.model and not exc.retryable
    assert [a.outcome for a in exc.attempts] == ["OutputValidationError"]
    assert exc.response is not None and exc.response.cost is not None
    price_in, price_out = backend.price
    assert exc.response.cost.total == (price_in * 20 + price_out * 6) / 1_000_000
    assert exc.after_content is streamed
    assert len(backend.chat_requests) == 1


def test_cost_sums_exactly_in_decimal(runner: Runner, backend: Backend) -> None:
    backend.server.enqueue(
        Reply("{}", prompt_tokens=1, completion_tokens=1), Reply(GOOD, prompt_tokens=1, completion_tokens=1)
    )
    reply = runner.chat(backend.config(), backend.target, QUESTION, response_model=Forecast)
    price_in, price_out = backend.price
    assert reply.cost is not None and isinstance(reply.cost.total, Decimal)
    assert reply.cost.input == price_in * 2 / 1_000_000 and reply.cost.output == price_out * 2 / 1_000_000
