"""What ``response_model=`` sends and checks (see `turnout._response_model`).

Loaded by the first call that passes ``response_model``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .errors import InvalidArgumentError, OutputValidationError
from .types import ChatRequest, ChatResponse, JSONObject, Message

if TYPE_CHECKING:
    from .engine import Call
    from .provider import Provider

__all__ = ["OutputCheck", "OutputRequest", "OutputSpec", "output_worst_case"]

logger = logging.getLogger("turnout")

# JSON Schema keywords OpenAI's strict mode rejects (platform.openai.com structured-outputs guide,
# "Supported schemas"; the same list as pydantic-ai's OpenAI transformer, 2026).
_NOT_STRICT_KEYS = frozenset(
    {
        "minLength",
        "maxLength",
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "oneOf",
        "default",
    }
)
_STRICT_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
_CHILD_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_MAX_ERRORS = 10
_MAX_FEEDBACK = 4000


@dataclass(frozen=True)
class OutputSpec:
    """What turnout sends and checks for one ``response_model`` class (build it with `of`)."""

    model: type[BaseModel]
    name: str
    schema: JSONObject
    strict: bool
    not_strict: str | None
    """Why the schema is sent with ``strict: false`` (None when it is strict)."""

    @staticmethod
    def of(model: type[BaseModel]) -> OutputSpec:
        """The spec of ``model``, built on first use and cached per class.

        Raises:
            InvalidArgumentError: ``model`` is not a pydantic model class.
        """
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidArgumentError(
                f"response_model must be a pydantic model class (a BaseModel subclass), not {model!r}"
            )
        return _spec(model)

    @property
    def response_format(self) -> JSONObject:
        """OpenAI's ``response_format`` carrying the schema."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": self.strict}}

    def parse(self, text: str) -> BaseModel:
        """Validate a reply's text (a Markdown code fence around the JSON is tolerated).

        Raises:
            pydantic.ValidationError: not JSON, or not the schema.
        """
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        return self.model.model_validate_json(fenced.group(1) if fenced else stripped)


@lru_cache(maxsize=256)
def _spec(model: type[BaseModel]) -> OutputSpec:
    schema = model.model_json_schema()
    problems = list(_close_objects(schema, "#"))
    if schema.get("type") != "object":
        problems.insert(0, "the root is not an object")
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", model.__name__)[:64] or "output"
    if problems:
        logger.debug("response_model %s is sent with strict=false: %s", model.__name__, problems[0])
    return OutputSpec(model, name, schema, not problems, problems[0] if problems else None)


def _close_objects(node: Any, where: str) -> Iterator[str]:
    """Set ``additionalProperties: false`` on every object that does not say; yield what is not strict-compatible."""
    if not isinstance(node, dict):
        return
    yield from _node_problems(node, where)
    for key in ("properties", "$defs"):
        for name, child in (node.get(key) or {}).items():
            yield from _close_objects(child, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties"):
        yield from _close_objects(node.get(key), f"{where}/{key}")
    for key in _CHILD_LISTS:
        for i, child in enumerate(node.get(key) or ()):
            yield from _close_objects(child, f"{where}/{key}/{i}")


def _node_problems(node: dict[str, Any], where: str) -> Iterator[str]:
    """Close ``node`` if it is an object; yield why it cannot be sent in strict mode."""
    if node.get("type") == "object" or "properties" in node:
        if node.setdefault("additionalProperties", False) is not False:
            yield f"{where} allows extra keys (additionalProperties)"
        optional = [k for k in node.get("properties", {}) if k not in node.get("required", ())]
        if optional:
            yield f"{where}: field {optional[0]!r} is optional (strict mode needs every field required, no defaults)"
    found = sorted(_NOT_STRICT_KEYS.intersection(node))
    if found:
        yield f"{where} uses {found[0]!r}, which strict mode does not support"
    if "format" in node and node["format"] not in _STRICT_FORMATS:
        yield f"{where} uses format {node['format']!r}, which strict mode does not support"
    if "$ref" in node and len(node) > 1:
        yield f"{where} has keys beside '$ref'"


@dataclass(frozen=True)
class OutputRequest:
    """A call's ``response_model`` and its own ``output_retries`` (None: the route's)."""

    spec: OutputSpec
    retries: int | None = None


class OutputCheck:
    """One target's replies checked against the call's ``response_model``, with the re-asks a bad one gets."""

    def __init__(self, call: Call[Any, Any], provider: Provider, model: str, output: OutputRequest) -> None:
        self._call, self._provider, self._model, self._spec = call, provider, model, output.spec
        self._left = output.retries if output.retries is not None else call.policy.output_retries
        self._turns: list[Message] = []

    def request(self, request: ChatRequest) -> ChatRequest:
        """The request to send now: the call's, plus each rejected reply and what was wrong with it."""
        if not self._turns:
            return request
        return request.model_copy(update={"messages": [*request.messages, *self._turns]})

    def verify(self, response: ChatResponse, started: float) -> ChatResponse | None:
        """The reply with ``parsed`` set; None when it did not fit and is re-asked.

        Raises:
            OutputValidationError: it did not fit and no re-ask is left.
        """
        try:
            parsed = self._spec.parse(response.text)
        except ValidationError as exc:
            error = self._rejected(response, exc, started, streamed=False)
            if self._left <= 0:
                raise error from None
            self._left -= 1
            self._turns += [Message(role="assistant", content=response.text), Message(role="user", content=_ask(exc))]
            return None
        return response.model_copy(update={"parsed": parsed})

    def verify_streamed(self, response: ChatResponse, started: float) -> ChatResponse:
        """`verify` for a finished stream: no re-ask (its chunks reached the caller).

        Raises:
            OutputValidationError: the reply does not fit (``after_content`` when it had text).
        """
        try:
            parsed = self._spec.parse(response.text)
        except ValidationError as exc:
            raise self._rejected(response, exc, started, streamed=True) from None
        return response.model_copy(update={"parsed": parsed})

    def _rejected(
        self, response: ChatResponse, exc: ValidationError, started: float, *, streamed: bool
    ) -> OutputValidationError:
        """Price the rejected reply (it was paid for), record it as an attempt, and build the error."""
        call = self._call
        cost = call.state.pricing.cost(self._provider, self._model, response.usage)
        call.paid.append((response.usage, cost))
        errors = exc.errors(include_url=False, include_input=False)
        cut = " (the reply stopped at max_tokens: raise max_tokens)" if response.finish_reason == "length" else ""
        error = OutputValidationError(
            f"the reply does not fit {self._spec.model.__name__}: {_summary(exc)}{cut}",
            text=response.text,
            errors=[dict(e) for e in errors],
            response=response.model_copy(update={"cost": cost}),
            provider=self._provider.name,
            model=self._model,
        )
        error.after_content = streamed and bool(response.text)
        call.attempt_failed(self._provider, self._model, error, started)
        return error


def _summary(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:_MAX_ERRORS]]
    more = f"; and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
    return "; ".join(parts) + more


def _ask(exc: ValidationError) -> str:
    """The user turn of a re-ask: what was wrong, and what to send instead."""
    summary = _summary(exc)[: _MAX_FEEDBACK - 200]
    return (
        f"Your reply does not match the required JSON schema: {summary}. "
        "Reply again with only the corrected JSON object."
    )


def output_worst_case(call: Call[Any, Any], output: OutputRequest) -> Decimal:
    """The most a call with ``response_model`` could cost, re-asks included (for budgets; no I/O).

    Each re-ask's prompt grows by the rejected reply (at most ``max_tokens``) and the feedback
    (at most `_MAX_FEEDBACK` characters). The targets' costs add up when the route falls back
    on ``invalid_output`` (each target's replies are paid for); otherwise the dearest counts.

    Raises:
        ValueError: without ``max_tokens``, or without a price for a target.
    """
    from .cost.estimate import worst_case

    request = call.request
    retries = output.retries if output.retries is not None else call.policy.output_retries
    grown = [
        request.model_copy(
            update={
                "messages": [
                    *request.messages,
                    *[Message(role="assistant", content="x" * (request.max_tokens or 0))] * k,  # the rejected replies
                    *[Message(role="user", content="x" * _MAX_FEEDBACK)] * k,  # and what was wrong with each
                ]
            }
        )
        for k in range(retries + 1)
    ]
    per_target = [sum((worst_case(call.state.pricing, [t], r) for r in grown), Decimal(0)) for t in call.targets]
    if "invalid_output" in call.policy.fallback_on:
        return sum(per_target, start=Decimal(0))
    return max(per_target)
