"""State shared by every worker on Redis (``[state]``): USD budgets, open circuits, retry budgets, latency.

Without ``[state] url`` a client keeps its budgets and circuit breakers in its own process, as
before. With it, every client pointing at the same Redis and ``prefix`` shares:

- the USD budgets (``[budget]`` and per-alias ``budget``), keyed by their UTC period: a call's
  worst case is reserved by one Lua script that checks and holds it atomically on the server
  (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/), and committed or
  released after the call; a hold not settled within ``hold_ttl`` seconds (a worker that died)
  expires and its money comes back;
- open circuits: when a worker's breaker opens a target, the others skip it on their next call
  until its cooldown ends (and `SharedState.open_circuits` lists them for ``health()``);
- retry budgets and the latency averages of ``least-latency`` routes.

The connection is `SharedState` (`turnout._state_client`), the scripts and key names are in
`turnout._state_scripts` (every key hash-tagged ``{prefix}`` for Redis Cluster), the budgets in
`turnout._state_budgets`, the background writes and the commits kept while Redis is down in
`turnout._state_writes`. They load only for a client whose config has ``[state] url``.

Before sending, one round trip (one script) reserves the budget and reads the open circuits of
the call's targets; after it, the commit and circuit updates go to Redis from a background
thread, off the caller's thread and event loop. Every Redis operation times out after
``timeout`` seconds; what happens then is ``[state.on_failure]``.

```toml
[state]
url = "redis://127.0.0.1:6379/0"
prefix = "myapp"
hold_ttl = 600            # longer than your longest call
[state.on_failure]
budgets = "refuse"        # or "local": this process's own budget while Redis is down
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._checks import NoBoolNumbers
from ._lazy import lazy

if TYPE_CHECKING:
    from ._state_budgets import SharedBudgets
    from ._state_client import SharedState

__all__ = ["HOLD_MARGIN_S", "OnFailure", "SharedBudgets", "SharedState", "StateConfig"]

HOLD_MARGIN_S = 5.0
"""How long a budget hold outlives its call's deadline (time to settle it)."""


class OnFailure(BaseModel):
    """What each shared feature does when Redis cannot be reached within ``timeout``."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    budgets: Literal["refuse", "local"] = Field(
        default="refuse",
        description='"refuse": the call raises BudgetExceededError, nothing sent; "local": this process\'s own budget',
    )
    breakers: Literal["local"] = Field(default="local", description="this process's own circuits (the only choice)")


class StateConfig(NoBoolNumbers):
    """``[state]``: where budgets and circuits are shared between workers (absent: in each process)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, description='Redis or Valkey, e.g. "redis://127.0.0.1:6379/0"')
    prefix: str = Field(
        default="turnout",
        min_length=1,
        description="start of every key, one per application (keys are {prefix}:..., a Redis Cluster hash tag)",
    )
    timeout: float = Field(default=0.05, gt=0, le=10, description="seconds each Redis operation may take")
    hold_ttl: float = Field(
        default=600.0, gt=0, description="seconds a budget hold lives unsettled (a dead worker's money comes back)"
    )
    on_failure: OnFailure = Field(  # the defaults, built unvalidated
        default_factory=OnFailure.model_construct, description="behaviour per feature when Redis fails"
    )

    @field_validator("prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                f"{value!r} has a brace: write the prefix alone, turnout puts it in braces itself "
                "(keys are {prefix}:..., a Redis Cluster hash tag)"
            )
        return value


# The Redis side (`SharedState`, `SharedBudgets`, the scripts, the background writes) loads when a
# client has ``[state] url``: a client without it never imports it.
_LAZY = {"SharedBudgets": "_state_budgets", "SharedState": "_state_client"}


__getattr__ = lazy(__name__, {name: f"turnout.{home}" for name, home in _LAZY.items()})
