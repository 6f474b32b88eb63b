"""Typed provider options over HTTP: the exact body each provider received, layering, refusals and fallback.

vLLM options go to the vLLM-shaped fake; TGI options to `FakeTGIServer` through the real
huggingface_hub client, in chat and text mode. The real vLLM server's answers are in
tests/vllm/test_provider_options_vllm.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import Client, TGIGrammar, TGIOptions, VLLMOptions, VLLMStructuredOutputs
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply, ToolCallSpec

from ..conftest import CANARY_KEY, LLAMA, Runner
from .conftest import ONE_ATTEMPT, hf_config

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
STREAM_FIELDS = {"stream": True, "stream_options": {"include_usage": True}}
OTHER = "other-model"


@pytest.fixture
def vllm() -> Any:
    with FakeServer(flavor="vllm", models=[LLAMA, OTHER]) as server:
        yield server


def vllm_config(server: FakeServer, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url, **provider}},
        "prices": {f"local:{m}": {"input_per_million": "0.1", "output_per_million": "0.2"} for m in (LLAMA, OTHER)},
        "defaults": ONE_ATTEMPT,
    }


def base_body(model: str, streamed: bool, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hi"}], **fields}
    if streamed:
        body.update(STREAM_FIELDS)
    return body


# -- vLLM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_vllm_options_are_top_level_fields_of_the_body(runner: Runner, vllm: FakeServer, streamed: bool) -> None:
    options = VLLMOptions(
        top_k=20,
        min_p=0.05,
        repetition_penalty=1.1,
        min_tokens=2,
        ignore_eos=False,
        stop_token_ids=[2],
        truncate_prompt_tokens=-1,
        structured_outputs=VLLMStructuredOutputs(choice=["yes", "no"]),
    )
    reply = runner.call(streamed, vllm_config(vllm), f"local:{LLAMA}", "Hi", max_tokens=8, provider_options=options)
    assert vllm.chat_requests[-1].json == base_body(
        LLAMA,
        streamed,
        max_tokens=8,
        top_k=20,
        min_p=0.05,
        repetition_penalty=1.1,
        min_tokens=2,
        ignore_eos=False,
        stop_token_ids=[2],
        truncate_prompt_tokens=-1,
        structured_outputs={"choice": ["yes", "no"]},
    )
    assert reply.warnings == []


def test_structured_outputs_json_is_sent_as_json(runner: Runner, vllm: FakeServer) -> None:
    options = VLLMOptions(structured_outputs=VLLMStructuredOutputs(json_schema=SCHEMA, disable_any_whitespace=True))
    runner.chat(vllm_config(vllm), f"local:{LLAMA}", "Hi", provider_options=options)
    assert vllm.chat_requests[-1].json["structured_outputs"] == {"json": SCHEMA, "disable_any_whitespace": True}


def test_layers_config_then_model_then_call_then_extra_body(runner: Runner, vllm: FakeServer) -> None:
    config = vllm_config(
        vllm,
        options={"top_k": 5, "min_p": 0.2},
        model_options={LLAMA: {"min_p": 0.1, "repetition_penalty": 1.2}},
    )
    call = VLLMOptions(repetition_penalty=1.3, structured_outputs=VLLMStructuredOutputs(regex="[a-z]+"))
    runner.chat(config, f"local:{LLAMA}", "Hi", provider_options=call, extra_body={"top_k": 7})
    assert vllm.chat_requests[-1].json == base_body(
        LLAMA,
        False,
        top_k=7,
        min_p=0.1,
        repetition_penalty=1.3,
        structured_outputs={"regex": "[a-z]+"},
    )
    runner.chat(config, f"local:{OTHER}", "Hi")  # no model_options for this one, no call options
    assert vllm.chat_requests[-1].json == base_body(OTHER, False, top_k=5, min_p=0.2)
    runner.chat(vllm_config(vllm), f"local:{LLAMA}", "Hi")  # nothing configured: nothing added
    assert vllm.chat_requests[-1].json == base_body(LLAMA, False)


def test_structured_outputs_with_a_response_format_is_refused_before_sending(runner: Runner, vllm: FakeServer) -> None:
    options = VLLMOptions(structured_outputs=VLLMStructuredOutputs(choice=["a", "b"]))
    with pytest.raises(turnout.BadRequestError, match="vLLM takes one constraint per request"):
        runner.chat(
            vllm_config(vllm),
            f"local:{LLAMA}",
            "Hi",
            provider_options=options,
            response_format={"type": "json_object"},
        )
    assert vllm.chat_requests == []


# -- TGI, chat mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_tgi_chat_sends_the_grammar_as_response_format(runner: Runner, fake_tgi: FakeTGIServer, streamed: bool) -> None:
    options = TGIOptions(grammar=TGIGrammar(type="json", value=SCHEMA))
    runner.call(streamed, hf_config(fake_tgi), f"hf:{LLAMA}", "Hi", max_tokens=16, provider_options=options)
    expected = base_body(LLAMA, streamed, max_tokens=16, response_format={"type": "json", "value": SCHEMA})
    assert fake_tgi.chat_requests[-1].json == (expected if streamed else {**expected, "stream": False})


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (TGIOptions(top_k=5), r"TGIOptions\.top_k: TGI's chat route .* set mode = \"text\""),
        (TGIOptions(truncate=100), r"TGIOptions\.truncate: TGI's chat route"),
        (TGIOptions(repetition_penalty=1.1), r"TGIOptions\.repetition_penalty"),
    ],
    ids=["top_k", "truncate", "repetition_penalty"],
)
def test_tgi_chat_refuses_generate_only_options_before_sending(
    runner: Runner, fake_tgi: FakeTGIServer, options: TGIOptions, fragment: str
) -> None:
    with pytest.raises(turnout.BadRequestError, match=fragment):
        runner.chat(hf_config(fake_tgi), f"hf:{LLAMA}", "Hi", provider_options=options)
    assert fake_tgi.chat_requests == []  # (only the context pre-check's GET /info went out)


def test_tgi_grammar_and_response_format_together_are_refused(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    options = TGIOptions(grammar=TGIGrammar(type="regex", value="[0-9]+"))
    for mode in ("chat", "text"):
        with pytest.raises(turnout.BadRequestError, match="both constrain the reply"):
            runner.chat(
                hf_config(fake_tgi, mode=mode),
                f"hf:{LLAMA}",
                "Hi",
                provider_options=options,
                response_format={"type": "json_object"},
            )
    assert fake_tgi.chat_requests == [] and fake_tgi.generate_requests == []


# -- TGI, text mode (/generate) -----------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_tgi_text_mode_sends_every_option_as_a_generate_parameter(
    runner: Runner, fake_tgi: FakeTGIServer, streamed: bool
) -> None:
    config = hf_config(fake_tgi, mode="text", options={"top_k": 10, "truncate": 500})
    options = TGIOptions(repetition_penalty=1.2, grammar=TGIGrammar(type="regex", value="[0-9]+"), top_k=12)
    runner.call(streamed, config, f"hf:{LLAMA}", "Hi", max_tokens=8, provider_options=options)
    assert fake_tgi.generate_requests[-1].json == {
        "inputs": "[INST] Hi [/INST]",
        "parameters": {
            "max_new_tokens": 8,
            "details": True,
            "grammar": {"type": "regex", "value": "[0-9]+"},
            "top_k": 12,
            "repetition_penalty": 1.2,
            "truncate": 500,
        },
        "stream": True,
    }


def test_tgi_text_mode_extra_body_overrides_options(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    config = hf_config(fake_tgi, mode="text")
    runner.chat(config, f"hf:{LLAMA}", "Hi", provider_options=TGIOptions(top_k=3), extra_body={"top_k": 4})
    assert fake_tgi.generate_requests[-1].json["parameters"]["top_k"] == 4


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"options": {"top_k": 5}}, r"providers\.hf: options: TGIOptions\.top_k: TGI's chat route"),
        ({"model_options": {LLAMA: {"truncate": 9}}}, rf"model_options\.{LLAMA}: TGIOptions\.truncate"),
        (
            {"response_format_style": "openai", "options": {"grammar": {"type": "regex", "value": "a"}}},
            "apply to a TGI server",
        ),
        ({"options": {"top_k": 0}}, r"providers\.hf\.options\.top_k: Input should be greater than 0"),
        ({"options": {"topk": 5}}, r"unknown option 'topk' for TGIOptions \(valid options: grammar, "),
    ],
    ids=["chat-top_k", "chat-model-truncate", "not-tgi", "range", "unknown"],
)
def test_tgi_options_in_config_are_checked_at_load(
    fake_tgi: FakeTGIServer, settings: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(turnout.ConfigError, match=fragment):
        Client(config=hf_config(fake_tgi, **settings))


# -- routes: what no target takes, fallback across kinds -------------------------------------------------


def test_options_no_target_takes_are_refused_before_sending(
    runner: Runner, fake_openai: FakeServer, vllm: FakeServer
) -> None:
    config = {
        "providers": {
            "cloud": {"type": "openai", "base_url": fake_openai.base_url, "api_key": CANARY_KEY},
            "local": {"type": "vllm", "base_url": vllm.base_url},
        },
        "models": {"fast": {"targets": ["cloud:gpt-4o-mini", f"local:{LLAMA}"]}},
    }
    with pytest.raises(turnout.UnsupportedFeatureError) as caught:
        runner.chat(config, "fast", "Hi", provider_options=[VLLMOptions(top_k=2), TGIOptions(top_k=2)])
    error = caught.value
    assert error.feature == "TGIOptions"
    assert error.targets == ["cloud:gpt-4o-mini", f"local:{LLAMA}"]
    assert str(error) == (
        "provider_options: TGIOptions apply to no target of 'fast': cloud:gpt-4o-mini (type 'openai') takes no "
        f"provider options; local:{LLAMA} (type 'vllm') takes VLLMOptions. Pass the options of a target's kind, "
        "route to a provider that takes TGIOptions, or drop them."
    )
    assert isinstance(error, turnout.InvalidArgumentError)
    assert fake_openai.requests == [] and vllm.requests == []


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_fallback_from_vllm_to_tgi_applies_each_kinds_options(
    runner: Runner, vllm: FakeServer, fake_tgi: FakeTGIServer, streamed: bool
) -> None:
    vllm.enqueue(Fault.server_error(500))
    config = hf_config(fake_tgi, mode="text")
    config["providers"]["local"] = {"type": "vllm", "base_url": vllm.base_url}
    config["models"] = {"llama": {"targets": [f"local:{LLAMA}", f"hf:{LLAMA}"]}}
    options = [VLLMOptions(top_k=3, min_p=0.1), TGIOptions(top_k=4)]
    reply = runner.call(streamed, config, "llama", "Hi", max_tokens=8, provider_options=options)
    assert vllm.chat_requests[-1].json == base_body(LLAMA, streamed, max_tokens=8, top_k=3, min_p=0.1)
    assert fake_tgi.generate_requests[-1].json["parameters"] == {"max_new_tokens": 8, "details": True, "top_k": 4}
    assert [a.outcome for a in reply.attempts] == ["ServerError", "ok"]
    assert reply.provider == "hf" and reply.warnings == []


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_fallback_to_a_target_without_options_of_its_kind_warns(
    runner: Runner, vllm: FakeServer, fake_openai: FakeServer, streamed: bool
) -> None:
    vllm.enqueue(Fault.server_error(503))
    fake_openai.enqueue(Reply("Hello"))
    config = {
        "providers": {
            "local": {"type": "vllm", "base_url": vllm.base_url},
            "cloud": {"type": "openai", "base_url": fake_openai.base_url, "api_key": CANARY_KEY},
        },
        "models": {"fast": {"targets": [f"local:{LLAMA}", "cloud:gpt-4o-mini"]}},
        "defaults": ONE_ATTEMPT,
    }
    reply = runner.call(streamed, config, "fast", "Hi", provider_options=VLLMOptions(top_k=3))
    assert vllm.chat_requests[-1].json["top_k"] == 3
    assert fake_openai.chat_requests[-1].json == base_body("gpt-4o-mini", streamed)
    assert reply.provider == "cloud"
    assert reply.warnings == [
        "provider_options not applied: cloud:gpt-4o-mini (type 'openai') takes no provider options, "
        "and the call gave only VLLMOptions"
    ]


# -- invalid options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"top_k": 5}, "give a provider options object"),
        ([VLLMOptions(top_k=1), VLLMOptions(min_p=0.1)], "more than one VLLMOptions: merge them into one"),
        (["top_k"], "expected provider options such as VLLMOptions or TGIOptions, got str"),
    ],
    ids=["dict", "duplicate", "str-item"],
)
def test_bad_provider_options_are_invalid_arguments(vllm: FakeServer, value: Any, fragment: str) -> None:
    with Client(config=vllm_config(vllm)) as client, pytest.raises(turnout.InvalidArgumentError, match=fragment):
        client.chat(f"local:{LLAMA}", "Hi", provider_options=value)
    assert vllm.requests == []


def test_options_in_a_config_file_are_validated_with_file_and_key(tmp_path: Path, vllm: FakeServer) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(
        f'[providers.local]\ntype = "vllm"\nbase_url = "{vllm.base_url}"\n\n'
        f'[providers.local.model_options."{LLAMA}"]\nrepetition_penalty = 1.1\ntopk = 5\n\n'
        f'[prices."local:{LLAMA}"]\ninput_per_million = 0.1\noutput_per_million = 0.2\n',
        encoding="utf-8",
    )
    with pytest.raises(turnout.ConfigError) as caught:
        turnout.load_config(path)
    assert str(caught.value) == (
        f"{path}: invalid configuration:\n  - providers.local.model_options.{LLAMA}: unknown option 'topk' for "
        "VLLMOptions (valid options: ignore_eos, min_p, min_tokens, repetition_penalty, stop_token_ids, "
        "structured_outputs, top_k, truncate_prompt_tokens)"
    )
    path.write_text(path.read_text(encoding="utf-8").replace("topk", "top_k"), encoding="utf-8")
    config = turnout.load_config(path)
    with Client(config=config) as client:
        client.chat(f"local:{LLAMA}", "Hi")
    assert vllm.chat_requests[-1].json == base_body(LLAMA, False, repetition_penalty=1.1, top_k=5)


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return f"sunny in {city}"


def test_run_tools_sends_the_options_with_every_round(vllm: FakeServer) -> None:
    vllm.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Lima"}')]), Reply("Sunny."))
    with Client(config=vllm_config(vllm)) as client:
        run = client.run_tools(f"local:{LLAMA}", "Weather?", tools=[get_weather], provider_options=VLLMOptions(top_k=2))
    assert run.response.text == "Sunny."
    assert [r.json["top_k"] for r in vllm.chat_requests] == [2, 2]


def test_async_run_tools_sends_the_options_with_every_round(vllm: FakeServer) -> None:
    vllm.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Lima"}')]), Reply("Sunny."))

    async def go() -> None:
        async with turnout.AsyncClient(config=vllm_config(vllm)) as client:
            await client.run_tools(
                f"local:{LLAMA}", "Weather?", tools=[get_weather], provider_options=VLLMOptions(min_p=0.5)
            )

    asyncio.run(go())
    assert [r.json["min_p"] for r in vllm.chat_requests] == [0.5, 0.5]
