"""Structured output: ``response_model=`` gives a validated pydantic object, on every provider.

A route of two fake servers (an OpenAI-shaped one and a vLLM one) stands in for real providers.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

import turnout
from turnout.testing import FakeServer, Reply


class Forecast(BaseModel):
    """Tomorrow's weather in one city."""

    city: str
    high_c: int = Field(ge=-60, le=60)
    sky: Literal["sunny", "cloudy", "rain"]


with FakeServer(flavor="openai") as cloud, FakeServer(flavor="vllm") as local:
    config = {
        "providers": {
            "cloud": {"type": "openai-compatible", "base_url": cloud.base_url},
            "local": {"type": "vllm", "base_url": local.base_url},
        },
        # re-ask a reply that does not fit once, then fall back to the next target
        "models": {
            "weather": {
                "targets": ["cloud:gpt-4o-mini", "local:llama"],
                "output_retries": 1,
                "fallback_on": ["retryable", "invalid_output"],
            }
        },
        "prices": {
            "cloud:gpt-4o-mini": {"input_per_million": "0.15", "output_per_million": "0.60"},
            "local:llama": {"input_per_million": "0.10", "output_per_million": "0.20"},
        },
    }
    with turnout.Client(config=config) as client:
        # 1. a valid reply: reply.parsed is a Forecast (mypy knows it too)
        cloud.enqueue(Reply('{"city": "Oslo", "high_c": 21, "sky": "sunny"}'))
        reply = client.chat("weather", "Tomorrow in Oslo?", response_model=Forecast)
        forecast: Forecast = reply.parsed
        print("parsed:", forecast.city, forecast.high_c, forecast.sky)
        print("sent:", json.dumps(cloud.chat_requests[-1].json["response_format"])[:72], "...")

        # 2. the first reply misses a field: turnout re-asks with the error; both replies are paid for
        cloud.enqueue(
            Reply('{"city": "Bergen", "sky": "rain"}'), Reply('{"city": "Bergen", "high_c": 12, "sky": "rain"}')
        )
        reply = client.chat("weather", "Tomorrow in Bergen?", response_model=Forecast)
        print("re-asked:", [a.outcome for a in reply.attempts], reply.parsed.high_c, "| cost", reply.cost)

        # 3. the cloud keeps answering prose: after its re-ask the route falls back to vLLM
        cloud.enqueue(Reply("It will be sunny!"), Reply("Sunny, 25 degrees."))
        local.enqueue(Reply('{"city": "Rome", "high_c": 25, "sky": "sunny"}'))
        reply = client.chat("weather", "Tomorrow in Rome?", response_model=Forecast)
        print("fell back:", " -> ".join(f"{a.provider} {a.outcome}" for a in reply.attempts))

        # 4. streamed: chunks as they come, the validated object at the end
        local.enqueue(Reply('{"city": "Lima", "high_c": 19, "sky": "cloudy"}'))
        with client.stream("local:llama", "Tomorrow in Lima?", response_model=Forecast) as stream:
            pieces = [chunk.text for chunk in stream if chunk.text]
        print("streamed:", len(pieces), "chunks ->", stream.response.parsed)

        # 5. nothing fits and no re-ask is left: a typed error with the raw text
        local.enqueue(Reply("no idea"))
        try:
            client.chat("local:llama", "Tomorrow on Mars?", response_model=Forecast, output_retries=0)
        except turnout.OutputValidationError as exc:
            print("invalid:", repr(exc.text), exc.errors[0]["type"])
