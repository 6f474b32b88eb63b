"""One driver per library: the same three calls, written the way each library's docs show.

``setup(name, base_url, messages)`` returns ``(chat, achat, stream)``; each makes one call (with
``messages``, by default the two of ``_wire.MESSAGES``) and returns the reply text, which the
harness checks against what the server sent. A library is imported only inside its own setup
function, so this module loads in any venv.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from _wire import MESSAGES, MODEL

Chat = Callable[[], str]
AsyncChat = Callable[[], Awaitable[str]]
Driver = tuple[Chat, AsyncChat, Chat]

#: The import statement a user writes, timed in fresh interpreters.
IMPORTS = {
    "httpx2": "import httpx2",
    "openai": "import openai",
    "turnout": "import turnout",
    "litellm": "import litellm",
}
#: The floor of a pydantic-typed client: raw httpx2 plus pydantic's model machinery, timed like
#: ``IMPORTS`` (``import pydantic`` alone loads almost nothing until a model is defined).
FLOOR_IMPORTS = {"httpx2": "import httpx2\nfrom pydantic import BaseModel"}
#: The distribution whose version is reported (and whose absence skips the client).
DISTRIBUTIONS = {"httpx2": "httpx2", "openai": "openai", "turnout": "turnout", "litellm": "litellm"}
#: Environment each client runs with. Without this, ``import litellm`` first tries to download
#: its price map (3 tries, 5 s timeout each), which an offline machine cannot do.
ENV = {"litellm": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}}
_KEY = "sk-bench"


def _httpx2(base_url: str, messages: list[dict[str, str]]) -> Driver:
    """The floor: hand-written wire calls over raw httpx2 (the HTTP stack turnout and openai use)."""
    import httpx2

    headers = {"authorization": f"Bearer {_KEY}"}
    body: dict[str, Any] = {"model": MODEL, "messages": messages}
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=100)
    client = httpx2.Client(base_url=base_url, headers=headers, limits=limits)
    aclient = httpx2.AsyncClient(base_url=base_url, headers=headers, limits=limits)

    def chat() -> str:
        response = client.post("/chat/completions", json=body)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    async def achat() -> str:
        response = await aclient.post("/chat/completions", json=body)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    def stream() -> str:
        parts = []
        with client.stream("POST", "/chat/completions", json=stream_body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    parts.append(choices[0]["delta"]["content"])
        return "".join(parts)

    return chat, achat, stream


def _openai(base_url: str, messages: list[dict[str, str]]) -> Driver:
    """The official openai SDK with its defaults."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=_KEY)
    aclient = openai.AsyncOpenAI(base_url=base_url, api_key=_KEY)
    wire: Any = messages  # the SDK's TypedDicts, as plain dicts

    def chat() -> str:
        reply = client.chat.completions.create(model=MODEL, messages=wire)
        return reply.choices[0].message.content or ""

    async def achat() -> str:
        reply = await aclient.chat.completions.create(model=MODEL, messages=wire)
        return reply.choices[0].message.content or ""

    def stream() -> str:
        chunks = client.chat.completions.create(
            model=MODEL,
            messages=wire,
            stream=True,
            stream_options={"include_usage": True},
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    return chat, achat, stream


def _turnout(base_url: str, messages: list[dict[str, str]]) -> Driver:
    """turnout as its README shows: one configured provider, one client reused for every call."""
    import turnout

    config = {"providers": {"bench": {"type": "openai", "base_url": base_url, "api_key": _KEY}}}
    client = turnout.Client(config=config)
    aclient = turnout.AsyncClient(config=config)
    target = "bench:" + MODEL

    def chat() -> str:
        return client.chat(model=target, messages=messages).text

    async def achat() -> str:
        return (await aclient.chat(model=target, messages=messages)).text

    def stream() -> str:
        with client.stream(model=target, messages=messages) as chunks:
            return "".join(c.text or "" for c in chunks)

    return chat, achat, stream


def _litellm(base_url: str, messages: list[dict[str, str]]) -> Driver:
    """LiteLLM's function API with an OpenAI-compatible ``api_base``."""
    litellm: Any = importlib.import_module("litellm")
    kwargs: dict[str, Any] = {"model": "openai/" + MODEL, "messages": messages, "api_base": base_url, "api_key": _KEY}

    def chat() -> str:
        return str(litellm.completion(**kwargs).choices[0].message.content)

    async def achat() -> str:
        return str((await litellm.acompletion(**kwargs)).choices[0].message.content)

    def stream() -> str:
        chunks = litellm.completion(**kwargs, stream=True, stream_options={"include_usage": True})
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    return chat, achat, stream


_SETUPS: dict[str, Callable[[str, list[dict[str, str]]], Driver]] = {
    "httpx2": _httpx2,
    "openai": _openai,
    "turnout": _turnout,
    "litellm": _litellm,
}


def setup(name: str, base_url: str, messages: list[dict[str, str]] = MESSAGES) -> Driver:
    """The ``(chat, achat, stream)`` driver of client ``name`` against ``base_url``, sending ``messages``."""
    return _SETUPS[name](base_url, messages)
