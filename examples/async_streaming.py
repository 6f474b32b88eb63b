"""AsyncClient: concurrent calls and an async stream."""

from __future__ import annotations

import asyncio

import turnout
from turnout.testing import FakeServer


async def main(base_url: str) -> None:
    config = {
        "providers": {"local": {"type": "vllm", "base_url": base_url}},
        "prices": {"local:llama": {"input_per_million": "0.10", "output_per_million": "0.20"}},
    }
    async with turnout.AsyncClient(config=config) as client:
        replies = await asyncio.gather(*(client.chat("local:llama", f"Question {i}") for i in range(8)))
        print([r.text for r in replies])
        async with client.stream("local:llama", "Stream me a story") as stream:
            async for chunk in stream:
                print(chunk.text or "", end="", flush=True)
        print("\nusage:", stream.response.usage)


if __name__ == "__main__":
    with FakeServer(flavor="vllm") as server:
        asyncio.run(main(server.base_url))
