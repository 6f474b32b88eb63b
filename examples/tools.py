"""Tool calling: define a tool from a function, read the model's calls, and let run_tools loop.

Runs against turnout's in-process vLLM-shaped fake server, scripted to call the tool and then answer.
"""

from __future__ import annotations

from typing import Literal

import turnout
from turnout.testing import FakeServer, Reply, ToolCallSpec
from turnout.tools import tool

LLAMA = "meta-llama/Llama-2-7b-chat-hf"


@tool
def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """Current weather in a city.

    Args:
        city: the city's name, e.g. "Paris".
        unit: degrees Celsius or Fahrenheit.
    """
    return f"18 {unit} and sunny in {city}"


with FakeServer(flavor="vllm", models=[LLAMA]) as server:
    config = {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {"llama": {"targets": [f"local:{LLAMA}"]}},
        "prices": {f"local:{LLAMA}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
    }
    call = ToolCallSpec("get_weather", '{"city": "Paris"}', id="call_1")
    server.enqueue(
        Reply(tool_calls=[call]),  # one chat call: the model asks for the tool
        Reply(tool_calls=[call]),  # run_tools, round 1: the same request
        Reply("It is 18 C and sunny in Paris."),  # run_tools, round 2: the answer
    )

    with turnout.Client(config=config) as client:
        # 1. One call: the reply's tool calls, parsed, whatever the provider.
        reply = client.chat("llama", "Weather in Paris?", tools=[get_weather])
        for made in reply.tool_calls:
            print(f"{reply.finish_reason}: {made.name}({made.args}) -> {get_weather.invoke(made)}")

        # 2. The loop: run each call, send the result back, until the model answers.
        run = client.run_tools("llama", "Weather in Paris?", tools=[get_weather], max_rounds=3)
        print("answer:", run.text)
        print("transcript:", " -> ".join(m.role for m in run.messages))
        print(f"rounds: {run.rounds}, tokens: {run.usage.total_tokens}, cost: {run.cost}")
    print("sent:", server.chat_requests[0].json["tools"][0]["function"]["parameters"]["required"])
