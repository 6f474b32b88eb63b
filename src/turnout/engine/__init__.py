"""The route engine: one flow of decisions for every call, and a sync and an async driver.

- `call` (with `attempt_log`, `settlement`, `chat_call`, `embed_call`) / `flow`: what to do (gates,
  retries, fallback, hedging, money), free of I/O;
- `drive`: doing it, with blocking I/O or with asyncio;
- `events`: what happened, for the ledger, the budgets and the application.

See docs/architecture.md for the path of one call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ..events import AttemptFinished, AttemptStarted, CallFinished, CallStarted, Events, RetryScheduled, StreamAbandoned
from .call import Call, should_fall_back
from .chat_call import ChatCall
from .drive import adrive, adrive_stream, drive, drive_stream
from .embed_call import EmbedCall
from .flow import attempts, call_flow, embed_target, stream_attempts
from .hooks import CallHook, ReplyCheck
from .state import RouteState, Target
from .steps import Flow

if TYPE_CHECKING:
    from ..embeddings import EmbeddingResponse
    from ..types import ChatChunk, ChatResponse

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "Call",
    "CallFinished",
    "CallHook",
    "CallStarted",
    "ChatCall",
    "EmbedCall",
    "Events",
    "ReplyCheck",
    "RetryScheduled",
    "RouteState",
    "StreamAbandoned",
    "Target",
    "achat",
    "aembed",
    "astream",
    "chat",
    "embed",
    "should_fall_back",
    "stream",
]


def chat(call: ChatCall) -> ChatResponse:
    """Run a chat call to its reply (blocking)."""
    result: ChatResponse = drive(call_flow(call, attempts), call.clock)
    return result


def achat(call: ChatCall) -> Coroutine[Any, Any, ChatResponse]:
    """Async twin of `chat`: the driver's coroutine itself (no coroutine around it to resume at every await)."""
    return adrive(call_flow(call, attempts), call.clock)


def embed(call: EmbedCall) -> EmbeddingResponse:
    """Run an embeddings call (every batch on one target) to its reply."""
    result: EmbeddingResponse = drive(call_flow(call, embed_target), call.clock)
    return result


async def aembed(call: EmbedCall) -> EmbeddingResponse:
    """Async twin of `embed` (batches sent concurrently)."""
    result: EmbeddingResponse = await adrive(call_flow(call, embed_target), call.clock)
    return result


def stream(call: ChatCall, done: list[ChatResponse]) -> Generator[ChatChunk, None, None]:
    """The chunks of a streamed call; its final reply is appended to ``done`` when it ends."""
    return drive_stream(_keep_result(call_flow(call, stream_attempts), done), call.clock)


def astream(call: ChatCall, done: list[ChatResponse]) -> AsyncGenerator[ChatChunk, None]:
    """Async twin of `stream`."""
    return adrive_stream(_keep_result(call_flow(call, stream_attempts), done), call.clock)


def _keep_result(flow: Flow[ChatResponse], done: list[ChatResponse]) -> Flow[None]:
    done.append((yield from flow))
