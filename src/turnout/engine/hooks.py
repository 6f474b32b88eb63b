"""How features plug into a call without the engine importing them.

A `CallHook` is offered each decision that a feature may want to change: the amount held
against budgets, a check of each reply (structured output re-asks), and the reply itself once
a target answered (provider options add a warning). The client attaches hooks when it plans a
call; the engine only calls them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..provider import Provider
    from ..types import ChatRequest, ChatResponse, Cost
    from .call import Call

__all__ = ["CallHook", "ReplyCheck", "ReplyStore"]


class ReplyCheck(Protocol):
    """One target's replies checked by a feature (e.g. against ``response_model``)."""

    def request(self, request: ChatRequest) -> ChatRequest:
        """The request to send now, given the call's (e.g. with a re-ask's turns added)."""

    def verify(self, response: ChatResponse, started: float) -> ChatResponse | None:
        """The accepted reply, or None to ask the same target again; may raise a `ProviderError`."""

    def verify_streamed(self, response: ChatResponse, started: float) -> ChatResponse:
        """The accepted reply of a finished stream (never re-asked); may raise a `ProviderError`."""


class ReplyStore(Protocol):
    """One call's place in a response cache (`turnout.cache.CacheSlot`): what the cache steps use."""

    def get(self) -> ChatResponse | None:
        """The stored reply, or None."""

    async def aget(self) -> ChatResponse | None:
        """Async twin of `get`."""

    def put(self, reply: ChatResponse) -> None:
        """Store the call's reply."""

    async def aput(self, reply: ChatResponse) -> None:
        """Async twin of `put`."""

    def served(self, stored: ChatResponse) -> tuple[ChatResponse, Cost | None]:
        """The reply a hit returns, and the cost the hit saved."""

    def replayer(self, stored: ChatResponse) -> Provider:
        """A provider whose stream is ``stored`` in chunks (a stream served from the cache)."""


class CallHook:
    """A feature's say in a call; every method's default changes nothing."""

    def worst_case(self, call: Call[Any, Any]) -> Decimal | None:  # noqa: ARG002 - a default
        """The most the call could cost, if this feature changes it (None: the engine's own bound).

        Raises:
            ValueError: the cost has no upper bound.
        """
        return None

    def check(self, call: Call[Any, Any], provider: Provider, model: str) -> ReplyCheck | None:  # noqa: ARG002
        """A check of this target's replies, or None."""
        return None

    def finish_reply(
        self,
        call: Call[Any, Any],  # noqa: ARG002 - a default that changes nothing
        provider: Provider,  # noqa: ARG002
        model: str,  # noqa: ARG002
        reply: ChatResponse,
    ) -> ChatResponse:
        """The reply as the caller gets it (after pricing)."""
        return reply

    def cache_slot(self, call: Call[Any, Any]) -> ReplyStore | None:  # noqa: ARG002 - a default
        """Where the call's reply is looked up before sending and stored after (a response cache), or None."""
        return None
