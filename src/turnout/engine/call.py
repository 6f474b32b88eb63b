"""`Call`: the bookkeeping and decisions of one call along its route. No I/O here.

The flow (`turnout.engine.flow`) asks a `Call` what to do at each turn (is this target open?
retry or fall back? which error to raise?) and tells it what happened; the drivers do the I/O.
`Call` is generic over the request it sends and the reply it returns: `ChatCall` for chat and
streams, `EmbedCall` for embeddings (several batches to one target).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from .._construct import construct
from ..errors import (
    AllTargetsFailedError,
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContextWindowExceededError,
    LocalRateLimitError,
    NotFoundError,
    OutputValidationError,
    ProviderError,
    QuotaExceededError,
    ResponseValidationError,
    StreamInterruptedError,
)
from ..events import (
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    CallStarted,
    Operation,
    RetryScheduled,
    StreamAbandoned,
)
from ..policies.route import FallbackOn, RoutePolicy
from ..types import Attempt, ChatRequest, ChatResponse, Cost, Message, Usage
from .state import Retries, RouteState, Target, label

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..cost.budgets import Reservation
    from ..embeddings import EmbeddingRequest, EmbeddingResponse
    from ..limits import Limiter
    from ..provider import Provider
    from .accumulate import Accumulator
    from .hooks import CallHook, ReplyCheck, ReplyStore
    from .steps import Store

__all__ = ["Call", "ChatCall", "EmbedCall", "should_fall_back"]

logger = logging.getLogger("turnout")
RequestT = TypeVar("RequestT", bound="ChatRequest | EmbeddingRequest")
ResponseT = TypeVar("ResponseT", bound="ChatResponse | EmbeddingResponse")

_FALLBACK_CLASSES: dict[FallbackOn, type[ProviderError]] = {
    "context_window": ContextWindowExceededError,
    "connection": APIConnectionError,
    "bad_request": BadRequestError,
    "auth": AuthenticationError,
    "not_found": NotFoundError,
    "quota": QuotaExceededError,
    "invalid_response": ResponseValidationError,
    "invalid_output": OutputValidationError,
}


def should_fall_back(exc: ProviderError, fallback_on: list[FallbackOn]) -> bool:
    """Whether ``exc`` (after its target's retries) sends the call on to the next target."""
    if exc.after_content:  # content reached the caller: never re-routed
        return False
    if "retryable" in fallback_on and exc.retryable:
        return True
    return any(isinstance(exc, _FALLBACK_CLASSES[name]) for name in fallback_on if name in _FALLBACK_CLASSES)


class Call(Generic[RequestT, ResponseT]):
    """The bookkeeping of one call across its route: attempts in order, and what to do next."""

    embeds = False
    """Whether attempts send embeddings requests (else chat)."""

    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        request: RequestT,
        targets: list[Target],
        state: RouteState,
        hooks: Sequence[CallHook] = (),
    ) -> None:
        self.route = route
        self.policy = policy
        self.request = request
        self.targets = state.order(targets, policy)
        self.state = state
        self.clock = state.clock
        self.hooks = hooks
        self.attempts: list[Attempt] = []
        self.errors: list[ProviderError] = []
        self.started = self.clock.now()
        self.deadline = None if policy.deadline is None else self.started + policy.deadline
        self.paid: list[tuple[Usage, Cost | None]] = []
        """Usage and cost of what the call paid for without returning it (rejected replies, a stream left early)."""
        self.cost_unknown = False
        self.saved: Cost | None = None
        """What a reply served from the response cache would have cost (its original cost)."""
        self._hold: Reservation | None = None
        self.tags: dict[str, str] | None = None
        """The caller's ``tags=``: on the reply, in the ledger, and the key of tag budgets."""
        self.open_elsewhere: dict[str, float] = {}
        """Targets whose circuit is open in the shared state ([state]): seconds until they may be tried."""
        self._read_store: Callable[[object], tuple[Reservation | None, dict[str, float]]] | None = None

    def begin(self, operation: Operation) -> None:
        """Publish `CallStarted` (for subscribers such as telemetry), once the budget hold is taken."""
        events = self.state.events
        if events.wants(CallStarted):
            events.publish(CallStarted(self.route, operation, self.request, id(self)))

    # -- money ----------------------------------------------------------------------------------

    def worst_case(self) -> Decimal:
        """The most this call could cost (for budgets; no I/O).

        Raises:
            ValueError: the cost has no upper bound.
        """
        raise NotImplementedError

    def reserve(self) -> Store | None:
        """Hold the call's worst-case cost against its budgets, before anything is sent.

        Returns None when that is done (in-process budgets), or, with ``[state]`` on Redis, the
        one round trip to perform first (budget hold and open circuits); its outcome goes to `stored`.

        Raises:
            BudgetExceededError: a budget has less left than the call could cost, or the cost
                cannot be bounded (no ``max_tokens``, or no price for a target).
        """
        budgets = self.state.budgets
        shared = self.state.shared
        applies = budgets is not None and budgets.applies(self.route, self.tags)
        if not applies and shared is None:
            return None
        amount = None
        if budgets is not None and applies:
            try:
                amount = next((a for a in (h.worst_case(self) for h in self.hooks) if a is not None), None)
                if amount is None:
                    amount = self.worst_case()
            except ValueError as exc:
                raise budgets.unbounded(self.route, str(exc), self.tags) from None
        if shared is None:
            assert budgets is not None and amount is not None
            self._hold = budgets.reserve(self.route, amount, self.tags)
            return None
        from ..shared import SharedBudgets

        step, self._read_store = shared.before(
            budgets if isinstance(budgets, SharedBudgets) else None,
            self.route,
            amount,
            [label(*t) for t in self.targets],
            self.tags,
            self.state.shared_latency() if self.policy.balance == "least-latency" else None,
            self.policy.deadline,
            lambda target, tokens: self.state.retry_tokens(target, self.policy, tokens),
        )
        return step

    def stored(self, outcome: object) -> None:
        """Take the shared store's answer to `reserve`'s round trip: the budget hold, the open circuits.

        Raises:
            BudgetExceededError: a shared budget is short, or Redis failed and budgets refuse then.
        """
        assert self._read_store is not None
        self._hold, self.open_elsewhere = self._read_store(outcome)
        if self.policy.balance == "least-latency":  # ordered again with every worker's latency averages
            self.targets = self.state.order(self.targets, self.policy)

    def finish(self, response: ResponseT | None, error: BaseException | None) -> None:
        """Publish `CallFinished` (the budgets settle, the ledger writes its row).

        A failed call spends what it paid for (rejected replies, a stream left early) and frees
        the rest; a stream cut after content without usage spends the whole hold.
        """
        if logger.isEnabledFor(logging.DEBUG):
            self._log_finish(response, error)
        events = self.state.events
        if not events.wants(CallFinished):
            return
        usage: Usage | None
        cost: Cost | None
        if response is not None:
            usage, cost = response.usage, response.cost
        elif self.paid:
            usage, cost = Usage.sum(u for u, _ in self.paid), Cost.sum(c for _, c in self.paid)
        else:
            usage = cost = None
        cut = isinstance(error, ProviderError) and error.after_content
        cost_unknown = response is None and (self.cost_unknown or cut)
        events.publish(
            CallFinished(
                self.route,
                self.attempts,
                response,
                error,
                self.clock.now() - self.started,
                usage,
                cost,
                cost_unknown and not self.paid,
                self._hold,
                id(self),
                self.saved,
                self.tags,
            )
        )

    def _log_finish(self, response: ResponseT | None, error: BaseException | None) -> None:
        cost = None if response is None or response.cost is None else str(response.cost.total)
        outcome = "ok" if error is None else type(error).__name__
        latency = self.clock.now() - self.started
        logger.debug(
            "route %s: call %s after %d attempt(s) in %.3fs",
            self.route,
            outcome,
            len(self.attempts),
            latency,
            extra={
                "alias": self.route,
                "outcome": outcome,
                "attempt": len(self.attempts),
                "latency": latency,
                "cost": cost,
            },
        )

    # -- time -----------------------------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds left before the call's deadline (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - self.clock.now()

    def in_time(self, request: RequestT) -> RequestT:
        """``request`` with its network timeout shortened to the time left, if the call has a deadline."""
        if self.deadline is None:
            return request
        left = max(self.remaining(), 0.001)
        if request.timeout is not None and request.timeout <= left:
            return request
        return cast("RequestT", request.model_copy(update={"timeout": left}))

    # -- targets --------------------------------------------------------------------------------

    def gate(self, provider: Provider, model: str) -> CircuitOpenError | None:
        """Why this target must be skipped before sending (an open circuit, the deadline), or None."""
        name = label(provider, model)
        if self.remaining() <= 0:
            return CircuitOpenError(
                f"skipped {name}: the call's deadline has passed", provider=provider.name, model=model, retry_in=None
            )
        elsewhere = self.open_elsewhere.get(name)
        if elsewhere is not None:
            return CircuitOpenError(
                f"skipped {name}: circuit open (shared state)", provider=provider.name, model=model, retry_in=elsewhere
            )
        breaker = self.state.breaker(name, self.policy)
        if breaker.allow():
            self.state.budget(name, self.policy).deposit()
            return None
        return CircuitOpenError(
            f"skipped {name}: circuit open ({breaker.health().reason})",
            provider=provider.name,
            model=model,
            retry_in=breaker.retry_in(),
        )

    def needs_precheck(self) -> bool:
        """Whether targets' context windows are checked before sending (chat, when the route says so)."""
        return False

    def request_tokens(self, request: RequestT) -> int:  # noqa: ARG002 - the subclasses read it
        """What one request counts against a ``tokens_per_minute`` limit, before its reply says."""
        return 0

    def wait_limit(self, limiter: Limiter) -> float:
        """The longest this call waits for room under a rate limit: until its deadline, else ``max_wait``."""
        return self.remaining() if self.deadline is not None else limiter.limit.max_wait

    def provider_limits(self, provider: Provider, model: str, reply: ResponseT) -> None:
        """Slow down before a 429: the provider's headers said its requests or tokens are used up until a reset."""
        said = getattr(reply, "rate_limit", None)
        limiter = None if said is None else self.state.limiter(provider, model)
        if said is None or limiter is None:
            return
        for remaining, reset in (
            (said.remaining_requests, said.reset_requests),
            (said.remaining_tokens, said.reset_tokens),
        ):
            if remaining == 0 and reset:
                logger.debug("route %s: %s says its limit resets in %.3fs; pausing", self.route, limiter.name, reset)
                limiter.pause(self.clock.now(), reset)

    def rate_limited(self, provider: Provider, model: str, limiter: Limiter, wait: float) -> LocalRateLimitError:
        """The error for a request the rate limiter had no room for in time (recorded as a skipped attempt)."""
        exc = LocalRateLimitError(
            f"{label(provider, model)}: no room under [limits.{limiter.name!r}] for {wait:.3g}s more, longer "
            "than this call may wait (its deadline, else max_wait); nothing was sent",
            provider=provider.name,
            model=model,
            retry_after=wait,
        )
        self._record(provider.name, model, exc, 0.0, skipped=True)
        return exc

    def recovery_wait(self) -> float | None:
        """With ``wait_for_recovery``: seconds to wait when every target was skipped for an open circuit."""
        if not self.policy.wait_for_recovery or not self.errors:
            return None
        if not all(isinstance(e, CircuitOpenError) and e.retry_in is not None for e in self.errors):
            return None
        wait = min(e.retry_in for e in self.errors if isinstance(e, CircuitOpenError) and e.retry_in is not None)
        if wait >= self.remaining():
            return None
        logger.debug("route %s: every circuit is open; waiting %.3fs for the first probe", self.route, wait)
        self.errors = []
        return wait

    def skipped(self, provider: Provider, model: str, exc: ProviderError, more: bool) -> BaseException | None:
        """Record a target skipped before sending; return None to go on, else the error to raise."""
        self._record(provider.name, model, exc, 0.0, skipped=True)
        return self.target_failed(exc, more)

    def target_failed(self, exc: ProviderError, more: bool) -> BaseException | None:
        """After a target's last attempt: None to fall back to the next target, else the error to raise."""
        self.errors.append(exc)
        fall_back = more and should_fall_back(exc, self.policy.fallback_on)
        extra = {
            "alias": self.route,
            "target": f"{exc.provider}:{exc.model}",
            "attempt": len(self.attempts),
            "outcome": type(exc).__name__,
        }
        if fall_back:
            logger.info(
                "route %s: %s:%s gave %s; falling back to the next target",
                self.route,
                exc.provider,
                exc.model,
                type(exc).__name__,
                extra=extra,
            )
            return None
        logger.debug(
            "route %s: %s:%s gave %s; giving up", self.route, exc.provider, exc.model, type(exc).__name__, extra=extra
        )
        if exc.after_content or more:
            return exc
        return self.exhausted()

    def exhausted(self) -> ProviderError | AllTargetsFailedError:
        """The error to raise when no target is left: the only one, or all of them (one per target) as a group."""
        if len(self.errors) == 1:
            return self.errors[0]
        group = AllTargetsFailedError(
            f"all {len(self.errors)} targets of {self.route!r} failed: "
            + "; ".join(f"{e.provider}:{e.model} {type(e).__name__}" for e in self.errors),
            self.errors,
        )
        group.attempts = list(self.attempts)
        return group

    # -- attempts -------------------------------------------------------------------------------

    def retries(self, provider: Provider, model: str) -> Retries:
        """The retry decisions for one target, made after its first failure (the success path skips them)."""
        name = label(provider, model)

        def note(seconds: float, attempt: int, exc: ProviderError) -> None:
            logger.debug(
                "route %s: retrying %s in %.3fs (attempt %d failed)",
                self.route,
                name,
                seconds,
                attempt,
                extra={"alias": self.route, "target": name, "attempt": attempt, "outcome": type(exc).__name__},
            )
            events = self.state.events
            if events.wants(RetryScheduled):
                events.publish(RetryScheduled(self.route, provider.name, model, seconds, attempt, exc, id(self)))

        return Retries(self.policy, self.remaining, self.state.budget(name, self.policy), note)

    def cache_slot(self) -> ReplyStore | None:
        """The call's place in a response cache (a hook's), or None when it is not cached."""
        for hook in self.hooks:
            found = hook.cache_slot(self)
            if found is not None:
                return found
        return None

    def from_cache(self, reply: ResponseT, saved: Cost | None) -> ResponseT:
        """A reply served from the cache: record it (and the cost it saved); ``response_model`` parses it again."""
        self.attempts = list(reply.attempts)
        self.saved = saved
        if self.targets:
            check = self.check(*self.targets[0])
            if check is not None:
                return cast("ResponseT", check.verify_streamed(cast("ChatResponse", reply), self.clock.now()))
        return reply

    def check(self, provider: Provider, model: str) -> ReplyCheck | None:
        """A hook's check of this target's replies (``response_model``), or None."""
        for hook in self.hooks:
            found = hook.check(self, provider, model)
            if found is not None:
                return found
        return None

    def starting(self, provider: Provider, model: str, request: RequestT | None = None) -> float:
        """Note that an attempt sending ``request`` starts now (an event for subscribers); return the start time."""
        started = self.clock.now()
        events = self.state.events
        if events.wants(AttemptStarted):
            events.publish(AttemptStarted(self.route, provider.name, model, request, provider, started, id(self)))
        return started

    def validate(self, provider: Provider, model: str, request: RequestT, reply: ResponseT) -> None:
        """Check a reply before accepting it (raise a `ProviderError` to count the attempt as failed)."""

    def attempt_failed(self, provider: Provider, model: str, exc: ProviderError, started: float) -> None:
        """Record one failed attempt and tell the target's breaker when the failure is the target's."""
        self._record(provider.name, model, exc, self.clock.now() - started, started=started)
        breaker = self.state.breaker(label(provider, model), self.policy)
        if exc.retryable or isinstance(exc, APIConnectionError):
            breaker.record(False, type(exc).__name__)
            shared = self.state.shared
            if shared is not None and breaker.retry_in() > 0:  # it opened: the other workers skip it too
                shared.opened(breaker.target, type(exc).__name__, breaker.retry_in())
        else:
            breaker.record(True)

    def record_success(
        self,
        provider: Provider,
        model: str,
        started: float,
        reply: ResponseT | None = None,
        first_chunk: float | None = None,
    ) -> None:
        """Record a successful attempt that started at ``started``: its attempt, circuit and latency.

        ``reply`` (the target's, as it came) and ``first_chunk`` (a stream's time to its first
        chunk) only go to `AttemptFinished` subscribers.
        """
        latency = self.clock.now() - started
        name = label(provider, model)
        attempt = construct(
            Attempt,
            provider=provider.name,
            model=model,
            outcome="ok",
            latency=latency,
            status_code=None,
            error=None,
            skipped=False,
        )
        self.attempts.append(attempt)
        self.state.breaker(name, self.policy).record(True)
        self.state.observe(name, latency)
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(self.route, attempt, len(self.attempts))
        events = self.state.events
        if events.wants(AttemptFinished):
            events.publish(AttemptFinished(self.route, attempt, reply, None, started, first_chunk, id(self)))

    def accepted(
        self, provider: Provider, model: str, started: float, reply: ResponseT, first_chunk: float | None = None
    ) -> ResponseT:
        """A target's reply is accepted: record it and return the reply the flow goes on with."""
        raise NotImplementedError

    def lost_race(self, reply: ResponseT, provider: Provider, model: str, started: float) -> ResponseT:
        """Record the hedge's losing request (sent, dropped; a provider may still bill it)."""
        self._note(provider, model, "cancelled", started, "lost the hedge: another target answered first")
        return cast("ResponseT", reply.model_copy(update={"attempts": list(self.attempts)}))

    def _note(self, provider: Provider, model: str, outcome: str, started: float, why: str) -> None:
        """Record an attempt that ended without a reply or an error of its own (cancelled, abandoned)."""
        self.attempts.append(
            Attempt(provider=provider.name, model=model, outcome=outcome, latency=self.clock.now() - started, error=why)
        )

    def _record(
        self,
        provider: str,
        model: str,
        exc: ProviderError,
        latency: float,
        skipped: bool = False,
        started: float = 0.0,
    ) -> None:
        attempt = Attempt(
            provider=provider,
            model=model,
            outcome=type(exc).__name__,
            latency=latency,
            status_code=exc.status_code,
            error=exc.message,
            skipped=skipped,
        )
        self.attempts.append(attempt)
        exc.attempts = list(self.attempts)
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(self.route, attempt, len(self.attempts))
        events = self.state.events
        if events.wants(AttemptFinished):
            events.publish(AttemptFinished(self.route, attempt, None, exc, started, None, id(self)))


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
        finished = construct(type(reply), **{**reply.__dict__, **update})
        for hook in self.hooks:
            finished = hook.finish_reply(self, provider, model, finished)
        return finished

    def interrupted(self, exc: ProviderError, partial_text: str) -> StreamInterruptedError:
        """The error for a stream that failed after content was delivered (never retried or re-routed)."""
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


class EmbedCall(Call["EmbeddingRequest", "EmbeddingResponse"]):
    """An embeddings call: the input split into batches, all sent to one target."""

    embeds = True

    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        request: EmbeddingRequest,
        targets: list[Target],
        state: RouteState,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(route, policy, request, targets, state)
        self.batch_size = batch_size

    def request_tokens(self, request: EmbeddingRequest) -> int:
        """The batch's estimated tokens (about 4 UTF-8 bytes a token, OpenAI's rule of thumb)."""
        return sum(-(-len(text.encode()) // 4) for text in request.input)

    def batches(self, provider: Provider) -> list[EmbeddingRequest]:
        """The request split for ``provider`` (``batch_size``, else the provider's own limit)."""
        from ..embeddings import split

        return split(self.request, self.batch_size or provider.embed_batch_size)

    def worst_case(self) -> Decimal:
        """The most the texts could cost on any target (tokens never outnumber UTF-8 bytes).

        Raises:
            ValueError: a target has no price.
        """
        ceiling = sum(len(text.encode()) + 1 for text in self.request.input)
        highs = []
        for provider, model in self.targets:
            _, high = self.state.pricing.bounds(provider, model, ceiling, 0)
            if high is None:
                raise ValueError(f"no price is known for {label(provider, model)}; add [prices]")
            highs.append(high.total)
        return max(highs)

    def validate(self, provider: Provider, model: str, request: EmbeddingRequest, reply: EmbeddingResponse) -> None:
        """One vector per input, or the attempt failed.

        Raises:
            ResponseValidationError: the server sent another number of vectors.
        """
        if len(reply.vectors) != len(request.input):
            raise ResponseValidationError(
                f"sent {len(request.input)} inputs but got {len(reply.vectors)} vectors back",
                provider=provider.name,
                model=model,
            )

    def accepted(
        self,
        provider: Provider,
        model: str,
        started: float,
        reply: EmbeddingResponse,
        first_chunk: float | None = None,  # noqa: ARG002 - streams only
    ) -> EmbeddingResponse:
        """One batch answered: record the attempt (the call is priced once all batches are in)."""
        self.record_success(provider, model, started, reply)
        return reply

    def done(self, provider: Provider, model: str, parts: list[EmbeddingResponse]) -> EmbeddingResponse:
        """The whole reply: batches joined, priced once on the summed usage, attempts filled in."""
        from ..embeddings import combine

        joined = combine(parts, provider.name, model)
        usage = joined.usage
        priced = usage if usage.completion_tokens is not None else usage.model_copy(update={"completion_tokens": 0})
        cost = self.state.pricing.cost(provider, model, priced) if usage.prompt_tokens is not None else None
        return joined.model_copy(update={"cost": cost, "attempts": list(self.attempts), "tags": self.tags})


def _log_attempt(route: str, attempt: Attempt, number: int) -> None:
    """One DEBUG record per attempt, its fields also as ``extra`` (for structured log handlers)."""
    target = f"{attempt.provider}:{attempt.model}"
    logger.debug(
        "route %s: attempt on %s: %s in %.3fs",
        route,
        target,
        attempt.outcome,
        attempt.latency,
        extra={
            "alias": route,
            "target": target,
            "attempt": number,
            "outcome": attempt.outcome,
            "latency": attempt.latency,
        },
    )


def _utf8_size(messages: list[Message]) -> int:
    """The messages' UTF-8 size plus 8 bytes each: more than their tokens (ASCII text is not encoded to count)."""
    contents = [m.content for m in messages]
    try:  # the usual case, all text: measured in one pass, in C
        text = "".join(contents)  # type: ignore[arg-type]
    except TypeError:  # None, or content parts
        return sum(len(str(c or "").encode()) + 8 for c in contents)
    return (len(text) if text.isascii() else len(text.encode())) + 8 * len(contents)
