"""Structured output: ``response_model=`` as a JSON schema sent once per class, validated, re-asked.

- `OutputSpec.of(Model)` builds the schema once per class (cached): pydantic's validation schema
  with every object closed (``additionalProperties: false``), the OpenAI ``response_format``
  that carries it, and whether it may be sent with ``strict: true``.
- `take_output` turns the call's ``response_model`` into that ``response_format``. Each provider
  sends it in its own form: OpenAI and vLLM as it is (vLLM 0.12+ maps it onto its structured
  outputs engine); a TGI server's chat route as ``{"type": "json", "value": schema}`` and TGI's
  ``/generate`` as ``parameters.grammar`` (`providers._tgi_wire.tgi_grammar`).
- `OutputCheck` validates one target's replies; a reply that does not fit is recorded as an
  attempt, priced, and sent back with the validation errors (a re-ask) until the route's
  ``output_retries`` are spent, then `OutputValidationError` is raised (a stream is never re-asked:
  its chunks already reached the caller).

`OutputSpec`, `OutputRequest` and `OutputCheck` live in `turnout._output_spec`, which the first
call with a ``response_model`` loads; a call without one never does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .engine.hooks import CallHook
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._output_spec import OutputCheck, OutputRequest
    from .engine import Call
    from .provider import Provider

__all__ = ["OutputHook", "take_output"]


def take_output(options: dict[str, Any]) -> OutputRequest | None:
    """Remove ``response_model`` / ``output_retries`` from a call's options; put the schema in ``response_format``.

    Raises:
        InvalidArgumentError: ``response_model`` with ``response_format``, ``tools`` or ``n`` > 1,
            ``output_retries`` without ``response_model``, or a ``response_model`` that is not a
            pydantic model class.
    """
    model = options.pop("response_model", None)
    retries = options.pop("output_retries", None)
    if model is None:
        if retries is not None:
            raise InvalidArgumentError(
                "output_retries needs response_model: it bounds the re-asks of a reply that does not fit it"
            )
        return None
    conflicts = [name for name in ("response_format", "tools", "tool_choice") if options.get(name) is not None]
    if conflicts:
        raise InvalidArgumentError(
            f"response_model cannot be combined with {conflicts[0]}: response_model sends its own response_format "
            "and asks for an answer, not tool calls. Drop one of them (use run_tools for tools)."
        )
    if options.get("n") not in (None, 1):
        raise InvalidArgumentError("response_model parses one answer: n must be 1")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise InvalidArgumentError(f"output_retries must be an integer >= 0, not {retries!r}")
    from ._output_spec import OutputRequest, OutputSpec  # loaded by the first call with a response_model

    spec = OutputSpec.of(model)
    options["response_format"] = spec.response_format
    return OutputRequest(spec, retries)


class OutputHook(CallHook):
    """Plugs ``response_model`` into a call: its budget hold (re-asks included) and a check per target."""

    def __init__(self, output: OutputRequest) -> None:
        self.output = output

    def worst_case(self, call: Call[Any, Any]) -> Decimal:
        """The most the call could cost, re-asks included (see `output_worst_case`).

        Raises:
            ValueError: without ``max_tokens``, or without a price for a target.
        """
        from ._output_spec import output_worst_case

        return output_worst_case(call, self.output)

    def check(self, call: Call[Any, Any], provider: Provider, model: str) -> OutputCheck:
        """A fresh check of ``provider``'s replies, with the route's (or the call's) re-asks."""
        from ._output_spec import OutputCheck

        return OutputCheck(call, provider, model, self.output)
