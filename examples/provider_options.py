"""Typed provider options: vLLM's sampling extras and structured outputs, TGI's generation parameters.

Runs offline: a vLLM-shaped fake and `FakeTGIServer` (a Llama 2 Inference Endpoint in text mode)
stand in for the servers, so the script can print exactly what each one received. Point the
``base_url``s at your own servers to use real ones (tests/vllm/ runs the same options against a
real vLLM server: a choice or regex really constrains the reply there).
"""

from __future__ import annotations

import pydantic

import turnout
from turnout import TGIGrammar, TGIOptions, VLLMOptions, VLLMStructuredOutputs
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply

LLAMA = "meta-llama/Llama-2-7b-chat-hf"
PRICE = {"input_per_million": "0.10", "output_per_million": "0.20"}
SENT_BY_TURNOUT = {"model", "messages", "max_tokens", "stream", "stream_options"}

with FakeServer(flavor="vllm", models=[LLAMA]) as vllm, FakeTGIServer(LLAMA, api_key="hf_example") as tgi:
    config = {
        "providers": {
            # options in the config apply to every call this provider sends (checked when loaded)
            "local": {"type": "vllm", "base_url": vllm.base_url, "options": {"top_k": 40, "min_p": 0.05}},
            "endpoint": {"type": "huggingface", "base_url": tgi.url, "api_key": "hf_example", "mode": "text"},
        },
        "models": {"llama": {"targets": [f"local:{LLAMA}", f"endpoint:{LLAMA}"]}},
        "prices": {f"local:{LLAMA}": PRICE, f"endpoint:{LLAMA}": PRICE},
        "defaults": {"retry": {"max_attempts": 1}},
    }
    with turnout.Client(config=config) as client:
        # 1. vLLM: the call's options are laid over the config's, as top-level fields of the body
        vllm.enqueue(Reply("yes"))
        answer = VLLMOptions(repetition_penalty=1.1, structured_outputs=VLLMStructuredOutputs(choice=["yes", "no"]))
        reply = client.chat(f"local:{LLAMA}", "Is a llama a camelid?", max_tokens=4, provider_options=answer)
        sent = {k: v for k, v in vllm.chat_requests[-1].json.items() if k not in SENT_BY_TURNOUT}
        print(f"vllm received: {sent} -> {reply.text!r}")

        # 2. One call, options for each kind of target: the route falls back from vLLM to TGI,
        #    and each provider applies its own options (TGI's /generate parameters here)
        vllm.enqueue(Fault.server_error(503))
        digits = TGIOptions(top_k=10, grammar=TGIGrammar(type="regex", value="[0-9]+"))
        reply = client.chat("llama", "How many legs has a llama?", max_tokens=4, provider_options=[answer, digits])
        route = " -> ".join(f"{a.provider} {a.outcome}" for a in reply.attempts)
        params = tgi.generate_requests[-1].json["parameters"]
        print(f"route: {route}; TGI /generate parameters: {params}")

        # 3. Options that no target of the route takes are refused before anything is sent
        try:
            client.chat(f"local:{LLAMA}", "Hi", provider_options=TGIOptions(top_k=5))
        except turnout.UnsupportedFeatureError as exc:
            print(f"refused: {exc}")

    # 4. Unknown options fail where they are written: in code, and in turnout.toml
    try:
        VLLMOptions.model_validate({"topk": 5})
    except pydantic.ValidationError as exc:
        print(f"in code: {exc.errors()[0]['msg']}")
    try:  # top_p is a standard argument of chat(), not a vLLM option
        turnout.Client(config={"providers": {"local": {"type": "vllm", "options": {"top_p": 0.9}}}})
    except turnout.ConfigError as exc:
        print(f"in config: {exc}")
