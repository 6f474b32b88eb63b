"""Money: token counts (`Usage`) and what a call cost (`Cost`), in exact US dollars (`USD`).

Both add up with ``+`` or their ``sum``, one way for every caller (the engine's attempts, embedding
batches, ``run_tools`` rounds). Unknown counts are ``None``, never a made-up ``0``; an unknown cost
makes the sum ``None``. `turnout.types` imports every name from here, so the old imports still work.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, localcontext
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt

__all__ = ["USD", "Cost", "USDField", "Usage", "fixed_point", "to_usd"]


class _Model(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")


class Usage(_Model):
    """Token counts as the server reported them; ``None`` where it did not say.

    ``estimated`` is True when turnout counted the tokens itself because the server did not say
    (a stream the caller left early). Usages add up with ``+`` or `Usage.sum`.
    """

    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    total_tokens: NonNegativeInt | None = None
    cached_tokens: NonNegativeInt | None = None
    reasoning_tokens: NonNegativeInt | None = None
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage.sum((self, other))

    @staticmethod
    def sum(usages: Iterable[Usage]) -> Usage:
        """Field-wise sums; a count is None when any usage lacks it; estimated when any is."""
        items = list(usages)
        totals: dict[str, Any] = {}
        for name in _COUNTS:
            values = [getattr(u, name) for u in items]
            totals[name] = None if not items or None in values else sum(values)
        return Usage(**totals, estimated=any(u.estimated for u in items))


class USD(Decimal):
    """An exact amount of US dollars that prints in plain fixed-point: ``USD('0.0000009')``, not ``9E-7``.

    It is a `Decimal` (arithmetic and comparisons are Decimal's, and give plain `Decimal`
    results); only ``str()`` and ``repr()`` differ: every significant digit, no exponent,
    trailing zeros trimmed (``"0"`` for zero). `display` rounds for a terminal.

    Example:
        ```python
        from decimal import Decimal
        from turnout import USD

        assert str(USD(Decimal("9E-7"))) == "0.0000009"
        assert repr(USD("0E-8")) == "USD('0')"
        ```
    """

    __slots__ = ()

    def __str__(self) -> str:
        return fixed_point(self)

    def __repr__(self) -> str:
        return f"USD('{fixed_point(self)}')"

    def display(self, places: int = 10) -> str:
        """The amount rounded half-even to ``places`` decimal places (default 1e-10 dollars), fixed-point.

        Hourly prices divide into amounts with 28 significant digits; ten decimal places keep
        every amount of a token-priced call exact (prices per 1M tokens have at most 4 decimals).
        """
        with localcontext() as context:
            context.prec = max(context.prec, self.adjusted() + places + 2)
            return fixed_point(self.quantize(Decimal(1).scaleb(-places)))


def fixed_point(value: Decimal) -> str:
    """Every significant digit of ``value``, no exponent: Decimal('3.7E-6') -> '0.0000037', 0 -> '0'."""
    if not value:
        return "0"
    text = Decimal.__str__(value)  # already fixed-point and trimmed for most amounts (about 3x faster)
    if "E" in text or ("." in text and text[-1] == "0"):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return text


def to_usd(value: Decimal) -> USD:
    """``value`` as a `USD` (unchanged when it already is one)."""
    return value if type(value) is USD else USD(value)


USDField = Annotated[Decimal, AfterValidator(to_usd)]
"""A pydantic field type: validated like `Decimal` (and serialised as one), held as a `USD`."""


class Cost(_Model):
    """What a call cost in US dollars, exactly, from the price in ``source``.

    The amounts are `USD` values: exact Decimals that print as fixed-point dollars.
    ``estimated`` is True when the tokens it prices were counted by turnout, not the server.
    Costs add up with ``+`` or `Cost.sum`; sources are joined with ``" + "``.
    """

    input: USDField
    output: USDField
    total: USDField
    source: str = Field(description="where the price came from, e.g. 'config' or 'genai-prices 0.2.3'")
    estimated: bool = False

    def __str__(self) -> str:
        flag = ", estimated" if self.estimated else ""
        parts = (fixed_point(self.total), fixed_point(self.input), fixed_point(self.output))
        return "${} (in ${} + out ${}; {}{})".format(*parts, self.source, flag)

    def __add__(self, other: Cost) -> Cost:
        total = Cost.sum((self, other))
        assert total is not None
        return total

    @staticmethod
    def sum(costs: Iterable[Cost | None]) -> Cost | None:
        """The sum of several costs; None when there are none or any is unknown."""
        items = list(costs)
        if not items or any(c is None for c in items):
            return None
        known = [c for c in items if c is not None]
        return Cost(
            input=sum((c.input for c in known), Decimal(0)),
            output=sum((c.output for c in known), Decimal(0)),
            total=sum((c.total for c in known), Decimal(0)),
            source=" + ".join(dict.fromkeys(c.source for c in known)),
            estimated=any(c.estimated for c in known),
        )
