"""`ChatCall`: the decisions of a chat call, plain or streamed, that an embeddings call does not have. No I/O here.

The context pre-check (is the prompt worth counting? does it fit?), pricing the reply, what a
stream cut after content costs and raises, and how a cut answer is resumed (``resume``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._construct import replace
from ..errors import ContextWindowExceededError, ProviderError, StreamInterruptedError
from ..events import StreamAbandoned
from ..types import ChatRequest, ChatResponse, Cost, Message, Usage
from .call import Call

if TYPE_CHECKING:
    from decimal import Decimal

    from ..provider import Provider
    from .accumulate import Accumulator
    from .state import Target

__all__ = ["ChatCall"]


class ChatCall(Call[ChatRequest, ChatResponse]):
    """A chat call (plain or streamed)."""

    def worst_case(self) -> Decimal:
        """The most the call could cost on any target (prompt bounded by its UTF-8 size, output by ``max_tokens``).

        Raises:
            ValueError: without ``max_tokens``, or without a price for a target.
        """
        from ..cost.estimate import worst_case

        return worst_case(self.state.pricing, self.targets, self.request)

    def needs_precheck(self) -> bool:
        """Whether targets' context windows are checked before sending (the route's ``precheck_context``)."""
        return self.policy.precheck_context

    def request_tokens(self, request: ChatRequest) -> int:
        """The prompt's estimated tokens (from its UTF-8 size) plus ``max_tokens``."""
        from ..cost.estimate import heuristic_tokens

        return heuristic_tokens(request)[0] + (request.max_tokens or request.max_completion_tokens or 0)

    def needs_token_count(self, window: int | None) -> bool:
        """Whether the prompt might not fit ``window``, so it is worth counting exactly.

        Byte-level tokenizers never make more tokens than bytes, so a prompt whose UTF-8 size
        plus ``max_tokens`` fits the window surely fits; only bigger ones are counted.
        """
        if window is None:
            return False
        return _utf8_size(self.request.messages) + (self.request.max_tokens or 0) > window

    def context_problem(
        self, provider: Provider, model: str, window: int, prompt_tokens: int | None
    ) -> ContextWindowExceededError | None:
        """The reason to skip a target whose window cannot hold the prompt plus ``max_tokens``, or None."""
        if prompt_tokens is None:
            return None
        wanted = prompt_tokens + (self.request.max_tokens or 1)
        if wanted <= window:
            return None
        return ContextWindowExceededError(
            f"skipped before sending: the prompt is {prompt_tokens} tokens and max_tokens is "
            f"{self.request.max_tokens or 0}, more than the {window}-token context window",
            provider=provider.name,
            model=model,
        )

    def accepted(
        self, provider: Provider, model: str, started: float, reply: ChatResponse, first_chunk: float | None = None
    ) -> ChatResponse:
        """Record the successful attempt; return the reply with its cost and attempts filled in."""
        self.record_success(provider, model, started, reply, first_chunk)
        cost = self.state.pricing.cost(provider, model, reply.usage)
        update: dict[str, object] = {"attempts": list(self.attempts)}
        if self.tags:
            update["tags"] = self.tags
        if self.paid:  # replies rejected by response_model before this one: paid for, so counted
            update["usage"] = Usage.sum([*(u for u, _ in self.paid), reply.usage])
            cost = Cost.sum([*(c for _, c in self.paid), cost])
        update["cost"] = cost
        finished = replace(reply, **update)
        for hook in self.hooks:
            finished = hook.finish_reply(self, provider, model, finished)
        return finished

    def interrupted(self, exc: ProviderError, partial_text: str) -> StreamInterruptedError:
        """The error for a stream that failed after content was delivered (never retried or re-routed).

        ``exc`` itself when it is a `StreamInterruptedError` (its cause, what cut the stream, kept;
        raise it without ``from``, which would make it its own cause), else a new one caused by ``exc``.
        """
        if isinstance(exc, StreamInterruptedError):
            wrapped = exc
            wrapped.partial_text = partial_text
        else:
            wrapped = StreamInterruptedError(
                f"stream failed after content was delivered: {exc.message}",
                partial_text=partial_text,
                provider=exc.provider,
                model=exc.model,
                status_code=exc.status_code,
                request_id=exc.request_id,
            )
            wrapped.__cause__ = exc
        wrapped.after_content = True
        wrapped.attempts = exc.attempts
        return wrapped

    def stream_cut(self, provider: Provider, model: str, acc: Accumulator) -> None:
        """A stream failed after content: what was generated is paid for (the server's usage, else unknown)."""
        if acc.usage is not None:
            self.paid.append((acc.usage, self.state.pricing.cost(provider, model, acc.usage)))
        else:
            self.cost_unknown = True

    def abandoned(self, provider: Provider, model: str, acc: Accumulator, started: float) -> None:
        """The caller left the stream: record the attempt and what it cost (estimated when the server did not say)."""
        self._note(provider, model, "abandoned", started, "the caller stopped reading the stream")
        usage, cost = self._piece_paid(provider, model, acc, self.request)
        events = self.state.events
        if events.wants(StreamAbandoned):
            first = None if acc.first is None else acc.first - started
            events.publish(StreamAbandoned(self.route, provider.name, model, usage, cost, started, first, id(self)))

    def _piece_paid(
        self, provider: Provider, model: str, acc: Accumulator, request: ChatRequest
    ) -> tuple[Usage, Cost | None]:
        """Pay for the piece of a stream in ``acc``: the server's usage, else an estimate (flagged)."""
        from ..cost.estimate import heuristic_tokens

        usage = acc.usage
        if usage is None:
            prompt, _ = heuristic_tokens(request)
            completion = -(-len(acc.piece_text().encode()) // 4)  # ~4 bytes a token (OpenAI's rule of thumb)
            usage = Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, estimated=True
            )
        cost = self.state.pricing.cost(provider, model, usage)  # estimated when the usage is
        self.paid.append((usage, cost))
        if cost is None:
            self.cost_unknown = True
        return usage, cost

    # -- resuming a cut stream (resume = "continue") --------------------------------------------

    def stream_request(self, provider: Provider, model: str, request: ChatRequest) -> ChatRequest:
        """``request`` as streamed to this target: with running token counts when resuming or under a budget."""
        budgets = self.state.budgets
        if self.policy.resume == "off" and (budgets is None or not budgets.applies(self.route)):
            return request
        return provider.with_running_usage(model, request)

    def piece_cut(self, provider: Provider, model: str, acc: Accumulator, request: ChatRequest) -> None:
        """A piece of a resumed stream failed: pay for what it generated (estimated when the server did not say).

        A continuation that failed before sending anything back (an error status) generated nothing.
        """
        if acc.usage is None and not acc.piece_text():
            return
        self._piece_paid(provider, model, acc, request)

    def continuers(self, provider: Provider, model: str) -> list[Target]:
        """Who may continue a cut answer, in order: this target, then (``resume_across_targets``) later ones."""
        found: list[Target] = [(provider, model)]
        if self.policy.resume_across_targets:
            later = False
            for target in self.targets:
                if later:
                    found.append(target)
                later = later or (target[0] is provider and target[1] == model)
        return found

    def continuation(self, provider: Provider, model: str, acc: Accumulator) -> ChatRequest | None:
        """The request that continues the answer in ``acc`` on this target, or None when it cannot be continued.

        Never inside a tool call, never for several choices; ``max_tokens`` becomes what is left
        of it after the pieces paid for so far.
        """
        partial = acc.text()
        if acc.in_tool_call or not partial or len(acc.texts) > 1 or (self.request.n or 1) > 1:
            return None
        request = self.request
        if request.max_tokens is not None:
            left = request.max_tokens - sum(u.completion_tokens or 0 for u, _ in self.paid)
            if left <= 0:
                return None
            update: dict[str, object] = {"max_tokens": left}
            if request.max_completion_tokens is not None:
                update["max_completion_tokens"] = left
            request = request.model_copy(update=update)
        return provider.continuation(model, request, partial)


def _utf8_size(messages: list[Message]) -> int:
    """The messages' UTF-8 size plus 8 bytes each: more than their tokens (ASCII text is not encoded to count)."""
    contents = [m.content for m in messages]
    try:  # the usual case, all text: measured in one pass, in C
        text = "".join(contents)  # type: ignore[arg-type]
    except TypeError:  # None, or content parts
        return sum(len(str(c or "").encode()) + 8 for c in contents)
    return (len(text) if text.isascii() else len(text.encode())) + 8 * len(contents)
