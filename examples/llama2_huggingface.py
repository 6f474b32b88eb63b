"""Llama 2 on a Hugging Face Inference Endpoint (TGI), in chat mode and in text mode.

Runs offline: `FakeTGIServer` stands in for the endpoint (a scaled-to-zero one, so the first
request needs `scale_up_timeout`), and an OpenAI-shaped fake stands in for Together. Point
`base_url` at your endpoint's URL and `api_key` at "${HF_TOKEN}" to use a real one.
"""

from __future__ import annotations

import turnout
from turnout.providers.huggingface import HuggingFaceProvider
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply

LLAMA = "meta-llama/Llama-2-7b-chat-hf"
LLAMA_70B = "meta-llama/Llama-2-70b-chat-hf"

with (
    FakeTGIServer(LLAMA, api_key="hf_example", scaled_to_zero=True) as endpoint,
    FakeServer(flavor="openai", models=[LLAMA_70B], api_key="together-key") as together,
):
    config = {
        "providers": {
            # a dedicated endpoint, through its Messages API (TGI applies Llama 2's chat template)
            "endpoint": {
                "type": "huggingface",
                "base_url": endpoint.url,
                "api_key": "hf_example",
                "scale_up_timeout": 600,  # hold requests while a scaled-to-zero endpoint starts
            },
            # the same endpoint, raw: turnout renders the Llama 2 prompt itself
            "endpoint-raw": {"type": "huggingface", "base_url": endpoint.url, "api_key": "hf_example", "mode": "text"},
            # Together's OpenAI-compatible API (base_url defaults to https://api.together.xyz/v1)
            "together": {"type": "together", "base_url": together.base_url, "api_key": "together-key"},
        },
        "models": {"llama": {"targets": [f"endpoint:{LLAMA}", f"together:{LLAMA_70B}"]}},
        # a dedicated endpoint is billed per hour: price its tokens yourself
        "prices": {
            f"endpoint:{LLAMA}": {"input_per_million": "0.50", "output_per_million": "0.50"},
            f"endpoint-raw:{LLAMA}": {"input_per_million": "0.50", "output_per_million": "0.50"},
        },
    }
    with turnout.Client(config=config) as client:
        endpoint.enqueue(Reply("Llamas are camelids from South America."))
        messages = [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "What is a llama?"},
        ]
        reply = client.chat("llama", messages, max_tokens=64)
        usage = reply.usage
        print(f"chat mode: {reply.text} [{usage.prompt_tokens}+{usage.completion_tokens} tokens, {reply.cost}]")

        raw = client.provider("endpoint-raw")
        assert isinstance(raw, HuggingFaceProvider)
        print(f"text-mode prompt: {raw.render(messages)!r}")
        info = raw.info()
        print(
            f"endpoint limits: {info.max_input_tokens} input / {info.max_total_tokens} total tokens ({info.model_id})"
        )
        with client.stream(f"endpoint-raw:{LLAMA}", messages, max_tokens=64) as stream:
            print("text mode: ", end="")
            for chunk in stream:
                print(chunk.text or "", end="")
        print(f" [usage {stream.response.usage.prompt_tokens}+{stream.response.usage.completion_tokens}]")

        # a generation error (TGI 424) is not retryable: the route stops there
        endpoint.enqueue(Fault.status(424, "Request failed during generation: CUDA out of memory"))
        try:
            client.chat(f"endpoint:{LLAMA}", "Hi")
        except turnout.APIStatusError as exc:
            print(f"424: {type(exc).__name__} retryable={exc.retryable} error_type={exc.error_type}")

        # a prompt too long for the endpoint's 4096-token window falls back to Together's Llama 2 70B
        endpoint.enqueue(Fault.context_length())
        together.enqueue(Reply("From Together.", prompt_tokens=20, completion_tokens=4))
        reply = client.chat("llama", "What is a llama?")
        route = " -> ".join(f"{a.provider} {a.outcome}" for a in reply.attempts)
        print(f"fallback: {route}; cost {reply.cost}")
