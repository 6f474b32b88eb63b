"""OpenAI's rate-limit response headers (``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*``).

https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers: the requests and
tokens left in the current window, and the time until it resets as a Go-style duration
(``"1s"``, ``"6m0s"``, ``"20ms"``). vLLM and other servers that do not send them give None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..types import ProviderRateLimit

__all__ = ["parse_duration", "rate_limit_from_headers"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a duration like ``"1m30.5s"`` or ``"20ms"`` (a bare number is seconds); None when unreadable."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def rate_limit_from_headers(headers: Mapping[str, str]) -> ProviderRateLimit | None:
    """What the headers say of the provider's limit, or None when they say nothing."""
    if "x-ratelimit-remaining-requests" not in headers and "x-ratelimit-remaining-tokens" not in headers:
        return None
    found = ProviderRateLimit(
        remaining_requests=_int(headers.get("x-ratelimit-remaining-requests")),
        remaining_tokens=_int(headers.get("x-ratelimit-remaining-tokens")),
        reset_requests=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens=parse_duration(headers.get("x-ratelimit-reset-tokens")),
    )
    return None if found == ProviderRateLimit() else found
