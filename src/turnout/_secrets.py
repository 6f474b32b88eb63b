"""Keep credentials out of what turnout says: error messages, reprs, logs and CLI output.

`mask` hides the secrets a provider is configured with (its API key, its header values, a
password in its ``base_url``) and anything shaped like an API key (``sk-...``, ``hf_...``,
``Bearer ...``), as a server may echo a key back in an error body. `mask_url` hides the
userinfo of a URL (``http://user:pw@host`` -> ``http://***@host``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MASK", "header_secrets", "mask", "mask_url", "split_userinfo", "url_secrets"]

MASK = "***"
# OpenAI-style keys (sk-, sk-proj-, rk-, pk-), Hugging Face tokens, and bearer credentials. The
# patterns are compiled on first use (re's cache), not when turnout is imported.
_KEY_LIKE = r"\b(sk|rk|pk)-[A-Za-z0-9_\-]{6,}|\b(hf)_[A-Za-z0-9]{8,}|\b([Bb]earer)\s+[A-Za-z0-9._~+/\-]{6,}=*"
_SHORTEST = 4  # a configured secret shorter than this is not searched for (it would mask ordinary words)
_SECRET_NAME = r"auth|key|token|secret|pass|cookie|sign|session|credential"
_OPAQUE = 16  # a header value this long is masked whatever its name: it is likely a token


def _key_like(match: re.Match[str]) -> str:
    prefix, hf, bearer = match.groups()
    if prefix:
        return f"{prefix}-{MASK}"
    return f"hf_{MASK}" if hf else f"{bearer} {MASK}"


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets``, and every key-like token, replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _SHORTEST and secret in text:
            text = text.replace(secret, MASK)
    return re.sub(_KEY_LIKE, _key_like, text)


def header_secrets(headers: dict[str, str]) -> list[str]:
    """The header values to mask in messages: those of secret-sounding names, and long opaque ones."""
    return [v for k, v in headers.items() if re.search(_SECRET_NAME, k, re.IGNORECASE) or len(v) >= _OPAQUE]


def mask_url(url: str) -> str:
    """``url`` with its userinfo (``user:password@``) replaced by ``***@``."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def url_secrets(url: str | None) -> list[str]:
    """The credentials written into ``url`` (its userinfo, and its password or lone user name), to mask elsewhere."""
    if not url or "@" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    userinfo = parts.netloc.rpartition("@")[0]
    secret = parts.password if parts.password else parts.username  # a token alone is written as the user name
    return [s for s in (userinfo, secret) if s]


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its userinfo, and the (user, password) it held, percent-decoded; None without any.

    HTTP clients log request URLs whole: the credentials travel as an ``Authorization`` header instead.
    """
    if "@" not in url:
        return url, None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=host)), credentials
