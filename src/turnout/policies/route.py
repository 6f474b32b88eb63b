"""The policy of one route (a model alias): retries, fallback, deadline, balancing, breakers, hedging, streams."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .. import _defaults
from .._checks import NoBoolNumbers
from .breaker import BreakerPolicy
from .retry import RetryPolicy

__all__ = ["FallbackOn", "RoutePolicy"]

FallbackOn = Literal[
    "retryable",
    "context_window",
    "connection",
    "bad_request",
    "auth",
    "not_found",
    "quota",
    "invalid_response",
    "invalid_output",
]
"""Error classes that send a call on to the next target (see docs/reliability.md)."""


_DEFAULT_FALLBACK: tuple[FallbackOn, ...] = ("retryable", "context_window", "connection")


class RoutePolicy(NoBoolNumbers):
    """Reliability settings of a route. ``[defaults]`` sets them for every route; a model alias overrides."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    retry: RetryPolicy = Field(default_factory=RetryPolicy.model_construct)  # defaults: valid, built unvalidated
    fallback_on: list[FallbackOn] = Field(
        default_factory=lambda: list(_DEFAULT_FALLBACK),
        description="errors, once retries are spent, that move the call to the next target",
    )
    deadline: float | None = Field(
        default=None, gt=0, le=_defaults.MAX_TIMEOUT, description="seconds for the whole call, all tries included"
    )
    balance: Literal["ordered", "weighted", "least-latency", "lowest-cost"] = "ordered"
    weights: list[float] | None = Field(default=None, description="with balance = 'weighted': one per target")
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy.model_construct)
    wait_for_recovery: bool = Field(default=False, description="when every circuit is open, wait for the first probe")
    precheck_context: bool = Field(default=True, description="skip targets whose known window cannot fit the call")
    hedge_after: float | None = Field(
        default=None,
        gt=0,
        le=_defaults.MAX_TIMEOUT,
        description="seconds: if the first target has not answered, also ask the next one",
    )
    first_token_timeout: float | None = Field(
        default=None,
        gt=0,
        le=_defaults.MAX_TIMEOUT,
        description="streams: seconds from sending until the first content chunk, else a retryable timeout",
    )
    stall_timeout: float | None = Field(
        default=None,
        gt=0,
        le=_defaults.MAX_TIMEOUT,
        description="streams: the longest silence between chunks once content has started",
    )
    resume: Literal["off", "continue"] = Field(
        default="off",
        description="streams: 'continue' asks a target that can continue a cut answer to finish it",
    )
    resume_across_targets: bool = Field(
        default=False, description="with resume: later targets that can continue may finish a cut answer"
    )
    output_retries: int = Field(
        default=1,
        ge=0,
        description="response_model: times a target is re-asked after a reply that does not fit (each is paid for)",
    )
