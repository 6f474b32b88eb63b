"""turnout's exceptions: one tree, built from HTTP status and the provider's error body.

```
TurnoutError
├── ConfigError                  bad turnout.toml, unknown provider or model alias, missing extra
├── InvalidArgumentError         a call argument is invalid (also a ValueError); nothing was sent
│   └── UnsupportedFeatureError  no target of the route can do what the call asks (e.g. tools)
├── BudgetExceededError          the call could overspend a budget; nothing was sent
├── ClientClosedError            the client was closed; create a new one
├── ProviderError                .provider .model .status_code .request_id .retryable
│   ├── APIConnectionError       could not reach the server, or it hung up (retryable)
│   │   └── APITimeoutError      connect/read timeout (retryable)
│   │       └── StreamTimeoutError   a stream's first token or next chunk came too late (retryable)
│   ├── APIStatusError           any HTTP error status; .body .error_type .error_code
│   │   ├── BadRequestError      400, 413, 422
│   │   │   ├── ContextWindowExceededError   prompt + max_tokens do not fit the model
│   │   │   ├── EmbeddingsNotSupportedError  the provider or model serves no embeddings
│   │   │   └── ContentFilterError           a content filter blocked the prompt; .categories
│   │   ├── AuthenticationError  401, 403
│   │   ├── NotFoundError        404, unknown model
│   │   ├── RateLimitError       429 (retryable) .retry_after
│   │   │   └── LocalRateLimitError  turnout's own [limits] had no room in time; nothing was sent
│   │   ├── QuotaExceededError   429 insufficient_quota / billing: not retryable
│   │   ├── RedirectError        3xx: base_url points at an old or wrong address
│   │   └── ServerError          >= 500 (retryable)
│   ├── ResponseValidationError  2xx reply that is not what the protocol promises
│   ├── OutputValidationError    the reply does not fit response_model; .text .errors .response
│   ├── StreamInterruptedError   a stream that broke or ended without its terminator
│   └── CircuitOpenError         skipped: the target's circuit is open (retryable later)
├── AllTargetsFailedError        every target of a route failed; also an ExceptionGroup
├── ToolCallError                a tool call cannot be run (unknown tool) .tool .call_id
│   └── ToolArgumentsError       its arguments are not valid JSON or do not fit the schema
└── ToolRoundsExceededError      run_tools hit max_rounds; .messages holds the transcript
```

Whether an error is worth retrying is decided once, when the error is built
(`ProviderError.retryable`); retry and fallback logic only read the flag. Each provider reads its
own server's error bodies (`turnout.providers.http.HTTPProvider.classify_error`);
`error_from_response` here is the reading of OpenAI-compatible servers.

Example:
    ```python
    try:
        reply = client.chat(model="openai:gpt-4o-mini", messages="Hi")  # one target
    except turnout.RateLimitError as exc:
        print("slow down for", exc.retry_after, "s")
    except turnout.TurnoutError as exc:
        print("failed:", exc)
    ```

    A route with several targets falls back instead, and raises `AllTargetsFailedError` (an
    ``ExceptionGroup`` of the causes, for ``except*``) when every target has failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._lazy import lazy

if TYPE_CHECKING:
    from decimal import Decimal

    from .providers._http_errors import describe_body, parse_retry_after, redirect_error
    from .providers._openai_errors import error_from_response, error_in_body
    from .types import Attempt, ChatResponse, Message, Usage

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ClientClosedError",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "EmbeddingsNotSupportedError",
    "InvalidArgumentError",
    "LocalRateLimitError",
    "NotFoundError",
    "OutputValidationError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "ServerError",
    "StreamInterruptedError",
    "StreamTimeoutError",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolRoundsExceededError",
    "TurnoutError",
    "UnsupportedFeatureError",
    "describe_body",
    "error_from_response",
    "error_in_body",
    "parse_retry_after",
    "redirect_error",
]


class TurnoutError(Exception):
    """Base of every error turnout raises."""


class ConfigError(TurnoutError):
    """The configuration is invalid, or names something that cannot be used.

    The message names the file, the key and the fix.
    """


class ClientClosedError(TurnoutError):
    """The client was closed (``close()``, ``aclose()`` or the end of its ``with`` block); nothing was sent.

    A closed client does not reopen connections behind your back: create a new client.
    """


class InvalidArgumentError(TurnoutError, ValueError):
    """A call argument is invalid (e.g. ``temperature=-1``, empty ``messages``). Nothing was sent."""


class UnsupportedFeatureError(InvalidArgumentError):
    """No target of the route can do what the call asks (e.g. tools on a raw-prompt endpoint); nothing was sent.

    Targets that cannot are skipped when the route has one that can (recorded as skipped attempts).

    Attributes:
        feature: what was asked for (``"tools"``).
        targets: the ``"provider:model"`` targets that cannot do it.
    """

    def __init__(self, message: str, *, feature: str, targets: Sequence[str]) -> None:
        super().__init__(message)
        self.feature, self.targets = feature, list(targets)


class BudgetExceededError(TurnoutError):
    """The call could cost more than a budget has left, so nothing was sent.

    Attributes:
        budget: which limit (``"client"`` or ``"models.<alias>"``); needed/remaining: USD.
    """

    def __init__(self, message: str, *, budget: str, needed: Decimal | None, remaining: Decimal) -> None:
        super().__init__(message)
        self.budget, self.needed, self.remaining = budget, needed, remaining


class ProviderError(TurnoutError):
    """A provider could not give an answer.

    Attributes:
        provider: the configured provider name (e.g. ``"openai"``).
        model: the model id sent to that provider.
        status_code: the HTTP status, or None when no response came.
        request_id: the server's request id (``x-request-id``), when it sent one.
        retryable: whether trying again (here or elsewhere) may succeed.
        attempts: every attempt of the call that ended in this error, when known.
        after_content: True when part of the answer had already reached the caller (a stream
            cut mid-way): such an error is never retried or re-routed.
    """

    retryable: bool = False
    after_content: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        if retryable is not None:
            self.retryable = retryable
        self.attempts: list[Attempt] = []

    def __str__(self) -> str:
        where = ":".join(p for p in (self.provider, self.model) if p)
        parts = [f"[{where}]" if where else "", self.message]
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code})")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(p for p in parts if p)


class APIConnectionError(ProviderError):
    """The server could not be reached, or closed the connection before replying."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """Connecting to, or reading from, the server took longer than the timeout."""


class StreamTimeoutError(APITimeoutError):
    """A stream went quiet: past the route's ``first_token_timeout`` or ``stall_timeout``.

    No content came within ``first_token_timeout`` seconds of sending, or, once content had
    started, the server was silent for longer than ``stall_timeout``.

    Before content it is retried and falls back like any timeout; after content it is the
    ``__cause__`` of the `StreamInterruptedError` raised (or the stream is resumed, with
    ``resume = "continue"``).
    """


class APIStatusError(ProviderError):
    """The server answered with an HTTP error status.

    Attributes:
        body: the parsed error body (or the raw text when it was not JSON).
        error_type: the body's error type (OpenAI ``type``, TGI ``error_type``), if any.
        error_code: the body's error code (OpenAI ``code``; an int status on vLLM), if any.
        retry_after: seconds the server asked to wait (``retry-after-ms`` / ``Retry-After``) on a
            retryable status (429, 503, any retryable 5xx, 408, 409; RFC 9110 section 10.2.3), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        body: object = None,
        error_type: str | None = None,
        error_code: str | int | None = None,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.body = body
        self.error_type = error_type
        self.error_code = error_code
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """The request was rejected as invalid (400, 413, 422). Fix the request; do not retry."""


class ContextWindowExceededError(BadRequestError):
    """The prompt plus ``max_tokens`` do not fit the model's context window.

    A model with a larger window may succeed, so routes fall back on it.
    """


class EmbeddingsNotSupportedError(BadRequestError):
    """The provider, or the model it serves, does not make embeddings (a chat model, a TGI text endpoint).

    Raised by the server's answer (vLLM serving a generation model: 404 for ``/v1/embeddings``)
    or before sending, by a provider type without an embeddings route (``status_code`` None).
    Route ``embed`` calls to an embedding model (vLLM: ``--runner pooling``). Not retryable.
    """


class ContentFilterError(BadRequestError):
    """A content filter refused the prompt (Azure OpenAI: 400 with code ``content_filter``).

    Not retryable: the same prompt is refused again. Routes do not fall back on it unless their
    ``fallback_on`` lists ``"bad_request"``.

    Attributes:
        categories: the filter categories that fired (``"violence"``, ``"jailbreak"``, ...), sorted.
        results: the filter's verdict per category as the server sent it
            (``{"violence": {"filtered": True, "severity": "medium"}, ...}``).
    """

    def __init__(
        self, message: str, *, categories: Sequence[str] = (), results: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.categories = sorted(categories)
        self.results = dict(results or {})


class AuthenticationError(APIStatusError):
    """The API key is missing, wrong, or lacks access (401, 403)."""


class NotFoundError(APIStatusError):
    """The model (or route) does not exist on this provider (404)."""


class RateLimitError(APIStatusError):
    """Too many requests (429). Retryable after ``retry_after`` seconds, when the server said."""

    retryable = True


class LocalRateLimitError(RateLimitError):
    """turnout's own rate limit (``[limits]``) had no room for the request in time; nothing was sent.

    Raised before sending, so it never counts against the target's circuit breaker or retry
    budget; the attempt in ``attempts`` is marked ``skipped``. ``retry_after`` is how long until
    the limiter expected room. A route falls back on it like on a 429 (``fallback_on`` ``"retryable"``).
    """


class QuotaExceededError(APIStatusError):
    """The account is out of quota or credit (429 ``insufficient_quota``). Retrying will not help."""


class RedirectError(APIStatusError):
    """The server answered with a redirect (3xx): ``base_url`` points at an old or wrong address.

    turnout does not follow redirects (a POST is not safely re-sent elsewhere); set the
    provider's ``base_url`` to the address in ``location``. Not retryable.

    Attributes:
        location: where the server redirected to (credentials masked), when it said.
    """

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


class ServerError(APIStatusError):
    """The server failed (>= 500). Usually retryable."""

    retryable = True


class ResponseValidationError(ProviderError):
    """A successful HTTP reply whose body is not what the protocol promises."""


class OutputValidationError(ProviderError):
    """The reply does not fit the call's ``response_model``: not JSON, or not its schema.

    Raised once the route's ``output_retries`` re-asks are spent (a stream is never re-asked). Not
    retryable; a route falls back on it when its ``fallback_on`` lists ``"invalid_output"``.

    Attributes:
        text: the reply's text, exactly as the model wrote it.
        errors: pydantic's validation errors (``loc``, ``msg``, ``type``), as ``ValidationError.errors()``.
        response: the rejected reply, with its ``usage`` and ``cost``: it was paid for.
        after_content: True for a stream whose text reached the caller: no fallback then.
    """

    after_content = False

    def __init__(
        self,
        message: str,
        *,
        text: str,
        errors: Sequence[Mapping[str, Any]],
        response: ChatResponse | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.text = text
        self.errors = [dict(e) for e in errors]
        self.response = response


class StreamInterruptedError(ProviderError):
    """A stream failed after it started: dropped, errored, or ended without its terminator.

    Attributes:
        partial_text: the text received before the failure (never presented as an answer).
        usage: the usage known at the failure, if any.
        after_content: True when content had reached the caller: turnout then neither retries
            nor falls back, so an answer is never duplicated.
    """

    retryable = True
    after_content = False

    def __init__(self, message: str, *, partial_text: str = "", usage: Usage | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.partial_text = partial_text
        self.usage = usage


class CircuitOpenError(ProviderError):
    """A target was skipped without sending: its circuit is open after repeated failures.

    Attributes:
        retry_in: seconds until the circuit lets a probe through, when known.
    """

    retryable = True

    def __init__(self, message: str, *, retry_in: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_in = retry_in


class AllTargetsFailedError(TurnoutError, ExceptionGroup[ProviderError]):
    """Every target of a route failed; ``.exceptions`` holds each cause in order.

    Attributes:
        attempts: every attempt made, in order.
    """

    attempts: list[Attempt]

    def __new__(cls, message: str, exceptions: Sequence[ProviderError]) -> AllTargetsFailedError:
        """Group ``exceptions`` (one per failed target) under ``message``."""
        self = super().__new__(cls, message, exceptions)
        self.attempts = [a for exc in exceptions for a in exc.attempts[-1:]]
        return self

    if TYPE_CHECKING:

        @property
        def exceptions(self) -> tuple[ProviderError, ...]:
            """The error of each failed target, in the order they were tried."""

    def derive(self, excs: Sequence[ProviderError]) -> AllTargetsFailedError:  # type: ignore[override]
        """Rebuild the group around a subset of its errors (used by ``except*``)."""
        return AllTargetsFailedError(self.message, excs)


class ToolCallError(TurnoutError):
    """A tool call the model made cannot be run: it names no tool that was offered.

    `Client.run_tools` sends this back to the model as an error result (unless ``on_error="raise"``).

    Attributes:
        tool: the tool name the model used.
        call_id: the call's id.
    """

    def __init__(self, message: str, *, tool: str, call_id: str | None = None) -> None:
        super().__init__(message)
        self.tool, self.call_id = tool, call_id


class ToolArgumentsError(ToolCallError, ValueError):
    """The model's arguments for a tool are not a JSON object, or do not fit the tool's parameters.

    Attributes:
        arguments: the arguments exactly as the model wrote them.
    """

    def __init__(self, message: str, *, tool: str, call_id: str | None = None, arguments: str = "") -> None:
        super().__init__(message, tool=tool, call_id=call_id)
        self.arguments = arguments


class ToolRoundsExceededError(TurnoutError):
    """`Client.run_tools` sent ``max_rounds`` requests and the model still asked for tools.

    Attributes:
        max_rounds: the limit that was hit.
        messages: the transcript so far (ends with the assistant's unanswered tool calls);
            pass it to another call to go on.
        responses: every reply, in order (their ``cost`` and ``attempts`` add up to the run's).
    """

    def __init__(
        self, message: str, *, max_rounds: int, messages: list[Message], responses: list[ChatResponse]
    ) -> None:
        super().__init__(message)
        self.max_rounds, self.messages, self.responses = max_rounds, messages, responses


#: The functions that build these errors from an HTTP reply, kept importable from here; they
#: live with the HTTP provider code that uses them (`turnout.providers`).
_BUILDERS = {
    "describe_body": "_http_errors",
    "parse_retry_after": "_http_errors",
    "redirect_error": "_http_errors",
    "error_from_response": "_openai_errors",
    "error_in_body": "_openai_errors",
}


__getattr__ = lazy(__name__, {name: f"turnout.providers.{home}" for name, home in _BUILDERS.items()})
