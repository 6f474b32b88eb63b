"""The ``huggingface`` provider: what it sends, how it maps TGI's errors, and its endpoint helpers.

Every test drives the real huggingface_hub client over HTTP to `FakeTGIServer`; nothing in
huggingface_hub is patched. The shared scenarios (replies, usage, cost, errors, streams) are in
test_shared_scenarios.py.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import turnout
from turnout import Client
from turnout.config import ProviderConfig
from turnout.providers import provider_class
from turnout.providers.huggingface import (
    HuggingFaceChatProvider,
    HuggingFaceConfig,
    HuggingFaceProvider,
    HuggingFaceTextProvider,
)
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply
from turnout.testing._faults import refused_url
from turnout.types import ChatRequest, Message

from ..conftest import CANARY_KEY, LLAMA, Runner
from .conftest import hf_config

TARGET = f"hf:{LLAMA}"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


@contextmanager
def provider(config: dict[str, Any]) -> Iterator[HuggingFaceProvider]:
    with Client(config=config) as client:
        found = client.provider("hf")
        assert isinstance(found, HuggingFaceProvider)
        yield found


# -- configuration and the optional extra --------------------------------------------------------


def test_missing_extra_is_a_config_error_naming_the_install(
    fake_tgi: FakeTGIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails
    client = Client(config=hf_config(fake_tgi))  # the config itself loads without the extra
    with pytest.raises(turnout.ConfigError, match=r"providers\.hf: .*pip install 'turnout\[huggingface\]'"):
        client.provider("hf")
    with pytest.raises(turnout.ConfigError, match="turnout.huggingface"):
        client.chat(TARGET, "Hi")
    assert fake_tgi.requests == []


def test_import_turnout_and_loading_a_config_do_not_import_huggingface_hub() -> None:
    code = (
        "import sys, turnout\n"
        "c = turnout.Client(config={'providers': {'hf': {'type': 'huggingface', 'base_url': 'http://h:1'}}})\n"
        "print('huggingface_hub' in sys.modules)\n"
        "c.provider('hf')\n"
        "print('huggingface_hub' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({}, "set exactly one of base_url"),
        ({"base_url": "http://h", "provider": "together", "api_key": "k"}, "set exactly one of base_url"),
        ({"provider": "together"}, "provider needs api_key"),
        ({"provider": "together", "api_key": "hf_x", "mode": "text"}, 'mode = "text" needs base_url'),
        ({"base_url": "http://h", "mode": "raw"}, "providers.hf.mode"),
        ({"base_url": "http://h", "max_new_tokens": 0}, "providers.hf.max_new_tokens"),
    ],
    ids=["neither", "both", "router-without-key", "router-text", "bad-mode", "zero-tokens"],
)
def test_invalid_settings_fail_when_the_config_loads(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(turnout.ConfigError, match=fragment):
        turnout.Config.from_dict({"providers": {"hf": {"type": "huggingface", **settings}}})


def test_bill_to_and_the_auto_router_need_an_hf_token(fake_tgi: FakeTGIServer) -> None:
    with pytest.raises(turnout.ConfigError, match=r"providers\.hf\.bill_to: .*HF token"):
        Client(config=hf_config(fake_tgi, bill_to="my-org")).provider("hf")
    router = {"providers": {"hf": {"type": "huggingface", "provider": "auto", "api_key": "tgp_together_key"}}}
    with pytest.raises(turnout.ConfigError, match=r'providers\.hf\.provider: "auto" .*HF token'):
        Client(config=router).provider("hf")


def test_unknown_chat_template_fails_when_the_provider_is_created(fake_tgi: FakeTGIServer) -> None:
    with pytest.raises(turnout.ConfigError, match="unknown chat template 'chatml'. Use one of: .*llama2"):
        Client(config=hf_config(fake_tgi, chat_template="chatml")).provider("hf")


def test_reprs_hide_the_key(fake_tgi: FakeTGIServer) -> None:
    with provider(hf_config(fake_tgi, api_key="hf_" + CANARY_KEY, scale_up_timeout=600, bill_to="my-org")) as hf:
        for text in (repr(hf), repr(hf.config), str(hf.config.model_dump())):
            assert CANARY_KEY not in text
        assert repr(hf) == f"HuggingFaceProvider(name='hf', base_url='{fake_tgi.url}', mode='chat')"


# -- one class per mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "cls"), [("chat", HuggingFaceChatProvider), ("text", HuggingFaceTextProvider)], ids=["chat", "text"]
)
def test_the_config_mode_picks_the_class(
    fake_tgi: FakeTGIServer, mode: str, cls: type[HuggingFaceChatProvider | HuggingFaceTextProvider]
) -> None:
    config = hf_config(fake_tgi, mode=mode)
    with provider(config) as hf:
        assert type(hf) is cls and isinstance(hf, HuggingFaceProvider)
    # the registry's class, which user code may also create directly, gives the mode's class
    hf_settings = HuggingFaceConfig.model_validate(config["providers"]["hf"])
    made = provider_class("huggingface")("hf", hf_settings)
    assert provider_class("huggingface") is HuggingFaceProvider
    assert type(made) is cls and type(cls("hf", hf_settings)) is cls
    assert type(copy.copy(made)) is cls  # copy (and pickle) make one without constructor arguments


def test_each_mode_says_what_it_can(fake_tgi: FakeTGIServer) -> None:
    request = ChatRequest(messages=[Message(role="user", content="Hi")])
    with provider(hf_config(fake_tgi)) as chat, provider(hf_config(fake_tgi, mode="text")) as text:
        assert chat.supports_tools(LLAMA) and not text.supports_tools(LLAMA)
        assert chat.continuation(LLAMA, request, "Hel") is None
        resumed = text.continuation(LLAMA, request, "Hel")
        assert resumed is not None and resumed.messages[-1] == Message(role="assistant", content="Hel")
        assert chat.count_tokens(LLAMA, request) is None
        assert text.count_tokens(LLAMA, request) == text.count_prompt_tokens([{"role": "user", "content": "Hi"}])


def test_the_base_refuses_another_types_config() -> None:
    config = ProviderConfig(type="openai", base_url="http://127.0.0.1:9")
    with pytest.raises(turnout.ConfigError, match=r"providers\.x: expected a huggingface config, got type 'openai'"):
        provider_class("huggingface")("x", config)


# -- chat mode: what is sent -----------------------------------------------------------------------


def test_chat_mode_request(runner: Runner) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    key = "hf_" + CANARY_KEY
    with FakeTGIServer(LLAMA, api_key=key) as fake_tgi:
        config = hf_config(fake_tgi, api_key=key, scale_up_timeout=600, bill_to="my-org", headers={"x-team": "ml"})
        runner.chat(
            config,
            TARGET,
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            temperature=0.5,
            top_p=0.9,
            max_tokens=32,
            stop="\n",
            seed=7,
            user="u-1",
            tools=tools,
            tool_choice="auto",
            extra_body={"top_logprobs": 2, "logprobs": True},
        )
    [sent] = fake_tgi.chat_requests
    assert sent.json == {
        "model": LLAMA,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 32,
        "stop": ["\n"],
        "seed": 7,
        "tools": tools,
        "tool_choice": "auto",
        "user": "u-1",
        "top_logprobs": 2,
        "logprobs": True,
        "stream": False,
    }
    headers = sent.headers
    assert headers["authorization"] == f"Bearer {key}"
    assert headers["x-scale-up-timeout"] == "600" and headers["x-hf-bill-to"] == "my-org"
    assert headers["x-team"] == "ml" and headers["user-agent"].startswith("turnout/")


def test_chat_mode_sends_penalties_and_logprobs(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    options = {"frequency_penalty": 0.5, "presence_penalty": 0.25, "logprobs": True, "top_logprobs": 3}
    runner.chat(hf_config(fake_tgi), TARGET, "Hi", max_completion_tokens=9, **options)
    sent = fake_tgi.chat_requests[0].json
    assert {k: sent[k] for k in options} == options and sent["max_tokens"] == 9


@pytest.mark.parametrize(
    "option", [{"logit_bias": {"1": 5}}, {"parallel_tool_calls": False}, {"reasoning_effort": "low"}]
)
def test_chat_mode_refuses_what_tgi_ignores(runner: Runner, fake_tgi: FakeTGIServer, option: dict[str, Any]) -> None:
    with pytest.raises(turnout.BadRequestError, match=f"TGI's chat API does not take {next(iter(option))}"):
        runner.chat(hf_config(fake_tgi), TARGET, "Hi", **option)
    assert fake_tgi.chat_requests == []


def test_chat_stream_asks_for_usage(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    runner.stream(hf_config(fake_tgi), TARGET, "Hi")
    [sent] = fake_tgi.chat_requests
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("response_format", "sent"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}},
            {"type": "json", "value": SCHEMA},
        ),
        ({"type": "json_object"}, {"type": "json", "value": {"type": "object"}}),
        ({"type": "regex", "value": "[a-z]+"}, {"type": "regex", "value": "[a-z]+"}),
        ({"type": "json_schema", "value": {"name": "p", "schema": SCHEMA}}, None),  # TGI's own form, unchanged
    ],
    ids=["json_schema", "json_object", "regex", "tgi-json_schema"],
)
def test_response_format_becomes_tgis_grammar(
    runner: Runner, fake_tgi: FakeTGIServer, response_format: dict[str, Any], sent: dict[str, Any] | None
) -> None:
    fake_tgi.enqueue(Reply('{"name": "Kuzco"}'))
    if sent is None:
        # huggingface_hub 2.4 rewrites any "json_schema" format for a URL endpoint and needs OpenAI's key
        with pytest.raises(KeyError, match="json_schema"):
            runner.chat(hf_config(fake_tgi), TARGET, "Name a llama", response_format=response_format)
        return
    reply = runner.chat(hf_config(fake_tgi), TARGET, "Name a llama", response_format=response_format)
    assert json.loads(reply.text) == {"name": "Kuzco"}
    assert fake_tgi.chat_requests[0].json["response_format"] == sent


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_a_response_format_tgi_cannot_express(runner: Runner, fake_tgi: FakeTGIServer, streamed: bool) -> None:
    with pytest.raises(turnout.BadRequestError, match="response_format type 'xml' has no TGI grammar") as info:
        runner.call(streamed, hf_config(fake_tgi), TARGET, "Hi", response_format={"type": "xml"})
    assert info.value.provider == "hf" and fake_tgi.chat_requests == []


def test_openai_style_response_format_for_a_vllm_endpoint(runner: Runner) -> None:
    with FakeServer(flavor="vllm", models=[LLAMA]) as vllm:
        config = {
            "providers": {"hf": {"type": "huggingface", "base_url": vllm.base_url, "response_format_style": "openai"}},
            "prices": {TARGET: {"input_per_million": "0.1", "output_per_million": "0.2"}},
            "defaults": {"retry": {"max_attempts": 1}, "precheck_context": False},
        }
        runner.chat(config, TARGET, "Hi", response_format={"type": "json_object"})
        assert vllm.chat_requests[0].json["response_format"] == {"type": "json_object"}
        assert "authorization" not in vllm.chat_requests[0].headers


def test_no_key_configured_sends_no_token_even_with_hf_token_set(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_" + CANARY_KEY)  # huggingface_hub would send it by default
    with FakeTGIServer(LLAMA) as tgi:
        config = hf_config(tgi, api_key=None)
        runner.chat(config, TARGET, "Hi")
        runner.chat(config | {"providers": {"hf": config["providers"]["hf"] | {"mode": "text"}}}, TARGET, "Hi")
        with provider(config) as hf:
            hf.info()
    assert all("authorization" not in r.headers for r in tgi.requests)


# -- text mode: the raw prompt -----------------------------------------------------------------------


def test_text_mode_sends_the_llama2_prompt_and_explicit_parameters(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi [INST]"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a llama."},
    ]
    runner.chat(hf_config(fake_tgi, mode="text"), TARGET, messages, temperature=0.7, top_p=1.0, stop="###")
    [sent] = fake_tgi.generate_requests
    assert sent.path == "/"  # huggingface_hub posts to the endpoint root, TGI's compat route
    assert sent.json == {
        "inputs": "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Name a llama. [/INST]",
        "parameters": {"max_new_tokens": 512, "details": True, "temperature": 0.7, "do_sample": True, "stop": ["###"]},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("options", "parameters"),
    [
        ({"temperature": 0, "max_tokens": 10}, {"max_new_tokens": 10, "details": True, "do_sample": False}),
        ({"top_p": 0.9, "seed": 3}, {"max_new_tokens": 100, "details": True, "top_p": 0.9, "seed": 3}),
        (
            {"extra_body": {"top_k": 20, "repetition_penalty": 1.1}},
            {"max_new_tokens": 100, "details": True, "top_k": 20, "repetition_penalty": 1.1},
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}},
            {"max_new_tokens": 100, "details": True, "grammar": {"type": "json", "value": SCHEMA}},
        ),
        (
            {"frequency_penalty": 0.5, "max_completion_tokens": 7},
            {"max_new_tokens": 7, "details": True, "frequency_penalty": 0.5},
        ),
    ],
    ids=["greedy", "top_p-seed", "extra_body", "grammar", "frequency_penalty-max_completion_tokens"],
)
def test_text_mode_parameters(
    runner: Runner, fake_tgi: FakeTGIServer, options: dict[str, Any], parameters: dict[str, Any]
) -> None:
    runner.chat(hf_config(fake_tgi, mode="text", max_new_tokens=100), TARGET, "Hi", **options)
    assert fake_tgi.generate_requests[0].json["parameters"] == parameters


def test_prompt_bos_sends_the_leading_bos(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    reply = runner.chat(hf_config(fake_tgi, mode="text", prompt_bos=True), TARGET, "Hi")
    assert fake_tgi.generate_requests[0].json["inputs"] == "<s>[INST] Hi [/INST]"
    assert reply.usage.prompt_tokens == 10  # the fake, like TGI, adds its own BOS: <s> <s> [ INST ] Hi [ / INST ]


@pytest.mark.parametrize(
    ("messages", "options", "fragment"),
    [
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], {}, "last message must be"),
        ("Hi", {"n": 2}, "n must be 1"),
        ("Hi", {"extra_body": {"best_of": 2}}, "extra_body key 'best_of' is not a TGI /generate parameter"),
        ("Hi", {"response_format": {"type": "xml"}}, "response_format type 'xml' has no TGI grammar"),
        ("Hi", {"logprobs": True}, r"text mode \(TGI /generate\) cannot send logprobs"),
        ("Hi", {"presence_penalty": 1.0, "logit_bias": {1: 5}}, "cannot send presence_penalty, logit_bias"),
        ("Hi", {"reasoning_effort": "low"}, "cannot send reasoning_effort"),
    ],
    ids=["assistant-last", "n", "extra_body", "response_format", "logprobs", "penalty-bias", "reasoning"],
    # tools: tests/providers/test_tool_calling.py
)
def test_text_mode_refuses_what_it_cannot_send(
    runner: Runner, fake_tgi: FakeTGIServer, messages: Any, options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(turnout.BadRequestError, match=fragment) as info:
        runner.chat(hf_config(fake_tgi, mode="text"), TARGET, messages, **options)
    assert info.value.provider == "hf" and info.value.status_code is None and not info.value.retryable
    assert fake_tgi.generate_requests == []


def test_text_mode_drops_the_space_before_the_first_word(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Reply("Hello there"))
    chunks, reply = runner.stream(hf_config(fake_tgi, mode="text"), TARGET, "Hi")
    assert [c.text for c in chunks if c.text] == ["Hello", " there"]
    assert reply.text == "Hello there" and reply.finish_reason == "stop"
    assert reply.usage.completion_tokens == 3  # two words and the closing </s>


def test_text_mode_length_finish(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Reply("cut short here", finish_reason="length"))
    reply = runner.chat(hf_config(fake_tgi, mode="text"), TARGET, "Hi", max_tokens=3)
    assert reply.text == "cut short here" and reply.finish_reason == "length"


# -- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chat", "text"])
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_generation_error_424_is_not_retryable(
    runner: Runner, fake_tgi: FakeTGIServer, mode: str, streamed: bool
) -> None:
    fake_tgi.enqueue(Fault.status(424, "Request failed during generation: CUDA out of memory"))
    with pytest.raises(turnout.APIStatusError) as info:
        runner.call(streamed, hf_config(fake_tgi, mode=mode), TARGET, "Hi")
    exc = info.value
    assert type(exc) is turnout.APIStatusError and exc.status_code == 424 and not exc.retryable
    assert "CUDA out of memory" in exc.message
    # the Messages API reports an error inside its stream as {"message", "http_status_code"}, without a type
    assert exc.error_type == (None if streamed and mode == "chat" else "generation")
    assert type(exc.__cause__).__module__.startswith("huggingface_hub")  # kept as the cause, never raised


def test_cold_start_503_is_retryable(runner: Runner) -> None:
    with FakeTGIServer(LLAMA, scaled_to_zero=True) as tgi:
        with pytest.raises(turnout.ServerError) as info:
            runner.chat(hf_config(tgi, api_key=None), TARGET, "Hi")
        assert info.value.status_code == 503 and info.value.retryable and not tgi.warm


@pytest.mark.parametrize("mode", ["chat", "text"])
def test_scale_up_timeout_lets_a_cold_endpoint_start(runner: Runner, mode: str) -> None:
    with FakeTGIServer(LLAMA, scaled_to_zero=True) as tgi:
        reply = runner.chat(hf_config(tgi, mode=mode, api_key=None, scale_up_timeout=600), TARGET, "Hello")
    assert reply.text == "Hello" and tgi.warm
    assert all(r.headers["x-scale-up-timeout"] == "600" for r in tgi.requests)


def test_overloaded_429_and_the_routers_ratelimit_header(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Fault.rate_limit(headers={"RateLimit": '"api";r=0;t=55'}))
    with pytest.raises(turnout.RateLimitError) as info:
        runner.chat(hf_config(fake_tgi), TARGET, "Hi")
    assert info.value.retryable and info.value.retry_after == 55.0 and info.value.error_type == "overloaded"


@pytest.mark.parametrize("mode", ["chat", "text"])
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_too_long_for_the_window_is_context_window_exceeded(runner: Runner, mode: str, streamed: bool) -> None:
    with FakeTGIServer(LLAMA, max_input_tokens=15, max_total_tokens=16) as tgi:
        config = hf_config(tgi, mode=mode, api_key=None)
        config["defaults"] = {**config["defaults"], "precheck_context": False}  # let the server refuse it
        with pytest.raises(turnout.ContextWindowExceededError, match="Input validation error: `inputs`"):
            runner.call(streamed, config, TARGET, "one two three four five six", max_tokens=8)


def test_validation_422_is_a_bad_request(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Fault.status(422, "Input validation error: `top_p` must be > 0.0 and < 1.0"))
    with pytest.raises(turnout.BadRequestError) as info:
        runner.chat(hf_config(fake_tgi), TARGET, "Hi")
    assert type(info.value) is turnout.BadRequestError and info.value.error_type == "validation"


def test_in_stream_generation_error_after_content(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Fault.stream_error(after_chunks=2, message="Request failed during generation: boom", status=424))
    fake_tgi.default_reply = Reply("one two three")
    with pytest.raises(turnout.StreamInterruptedError, match="boom") as info:
        runner.stream(hf_config(fake_tgi, mode="text"), TARGET, "Hi")
    assert info.value.partial_text == "one two"
    assert isinstance(info.value.__cause__, turnout.APIStatusError) and info.value.__cause__.status_code == 424


@pytest.mark.parametrize("mode", ["chat", "text"])
def test_timeout(runner: Runner, fake_tgi: FakeTGIServer, mode: str) -> None:
    fake_tgi.enqueue(Fault.slow(2.0))
    with pytest.raises(turnout.APITimeoutError):
        runner.chat(hf_config(fake_tgi, mode=mode), TARGET, "Hi", timeout=0.3)


def test_stalled_stream_times_out_as_interrupted(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Fault.stall_stream(after_chunks=1, seconds=2.0, reply=Reply("one two three")))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        runner.stream(hf_config(fake_tgi), TARGET, "Hi", timeout=0.3)
    assert info.value.partial_text == "one"


def test_unreachable_endpoint(runner: Runner) -> None:
    config = {
        "providers": {"hf": {"type": "huggingface", "base_url": refused_url("")}},
        "defaults": {"retry": {"max_attempts": 1}},
    }
    with pytest.raises(turnout.APIConnectionError, match="ConnectError") as info:
        runner.chat(config, TARGET, "Hi")
    assert info.value.retryable


def test_router_provider_errors_are_mapped() -> None:
    """``provider = "together"`` looks the model up on the Hub first; HF_ENDPOINT points that at the fake."""
    code = (
        "import turnout\n"
        "c = turnout.Client(config={'providers': {'hf': {'type': 'huggingface', 'provider': 'together', "
        "'api_key': 'hf_test'}}, 'defaults': {'retry': {'max_attempts': 1}}})\n"
        "assert c.provider('hf').price_catalogue() == 'huggingface_together'\n"
        "try:\n    c.chat('hf:meta-llama/Llama-2-70b-chat-hf', 'Hi')\n"
        "except turnout.NotFoundError as e:\n    print(type(e).__name__, e.status_code, type(e.__cause__).__name__)\n"
    )
    with FakeTGIServer(LLAMA) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.split() == ["NotFoundError", "404", "HfHubHTTPError"], result.stderr
    [lookup] = hub.requests
    assert lookup.path == "/api/models/meta-llama/Llama-2-70b-chat-hf"


@pytest.mark.parametrize(
    "fault", [Fault.unauthorized(), Fault.server_error(500), Fault.drop(), Fault.rate_limit(retry_after=1)]
)
def test_errors_and_logs_hide_the_key(
    runner: Runner, fake_tgi: FakeTGIServer, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    fake_tgi.enqueue(fault)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(turnout.ProviderError) as info:
        runner.chat(hf_config(fake_tgi), TARGET, "Hi")
    said = "".join(traceback.format_exception(info.value)) + repr(info.value) + str(info.value.attempts)
    assert CANARY_KEY not in said and CANARY_KEY not in caplog.text
    assert fake_tgi.chat_requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"
