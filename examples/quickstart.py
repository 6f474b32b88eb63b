"""The README quickstart, runnable: a config file, one chat call, one stream."""

from __future__ import annotations

import tempfile
from pathlib import Path

import turnout
from turnout.testing import FakeServer

with FakeServer(flavor="vllm", models=["meta-llama/Llama-2-7b-chat-hf"]) as server:
    config_file = Path(tempfile.mkdtemp()) / "turnout.toml"
    config_file.write_text(f"""
[providers.local]
type = "vllm"
base_url = "{server.base_url}"

[models.fast]
targets = ["local:meta-llama/Llama-2-7b-chat-hf"]

[prices."local:meta-llama/Llama-2-7b-chat-hf"]
input_per_million = 0.10
output_per_million = 0.20
""")

    # --- the quickstart ---
    client = turnout.Client.from_config(config_file)
    reply = client.chat(model="fast", messages=[{"role": "user", "content": "Hi"}], max_tokens=64)
    print(reply.text, reply.usage, reply.cost, reply.provider, reply.model, sep="\n")

    with client.stream(model="fast", messages="Tell me about llamas") as stream:
        for chunk in stream:
            print(chunk.text or "", end="")
    print("\n", stream.response.cost)
    client.close()
