"""Which provider options apply where: layering per target, the route check, and the not-applied warning.

No I/O. `Provider.options_for` merges a target's layers (config ``options``, ``model_options``,
the call's); the client checks a call's options against its route before sending; and a reply
from a target that applied none of the call's options says so in ``reply.warnings``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .engine.hooks import CallHook
from .errors import UnsupportedFeatureError
from .options import ProviderOptions

if TYPE_CHECKING:
    from .engine import Call
    from .provider import Provider
    from .types import ChatRequest, ChatResponse

__all__ = ["OptionsHook", "check_route", "not_applied", "resolve"]

logger = logging.getLogger("turnout")


def resolve(provider: Provider, model: str, request: ChatRequest) -> ProviderOptions | None:
    """``provider``'s options for one call to ``model``: its config's, the model's, then the call's (later wins).

    Layers merge field by field (a nested value such as ``structured_outputs`` is replaced whole).
    None when no layer sets any.
    """
    kind = type(provider).options_model
    config = provider.config
    base = getattr(config, "options", None)
    per_model = getattr(config, "model_options", None)
    if kind is None or (base is None and not per_model and not request.provider_options):
        return None  # the common case, kept cheap: nothing configured, nothing passed
    layers: list[ProviderOptions] = [base] if isinstance(base, ProviderOptions) else []
    if per_model and isinstance(found := per_model.get(model), ProviderOptions):
        layers.append(found)
    layers.extend(item for item in request.provider_options if isinstance(item, kind))
    if len(layers) <= 1:
        return layers[0] if layers else None
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer.fields_set())
    return kind.model_validate(merged)


def _takes(provider: Provider) -> str:
    kind = type(provider).options_model
    return "no provider options" if kind is None else kind.__name__


def check_route(route: str, request: ChatRequest, targets: Sequence[tuple[Provider, str]]) -> None:
    """Refuse, before sending, options that no target of the route takes.

    Raises:
        UnsupportedFeatureError: an options object of the call applies to no target (``feature``
            is its class name, ``targets`` every target of the route).
    """
    for item in request.provider_options:
        if any(kind is not None and isinstance(item, kind) for kind in (type(p).options_model for p, _ in targets)):
            continue
        name = type(item).__name__
        labels = [f"{p.name}:{m}" for p, m in targets]
        takes = "; ".join(f"{p.name}:{m} (type {p.config.type!r}) takes {_takes(p)}" for p, m in targets)
        raise UnsupportedFeatureError(
            f"provider_options: {name} apply to no target of {route!r}: {takes}. "
            f"Pass the options of a target's kind, route to a provider that takes {name}, or drop them.",
            feature=name,
            targets=labels,
        )


def not_applied(provider: Provider, model: str, request: ChatRequest) -> str | None:
    """The warning for a reply from a target that applied none of the call's provider options, else None."""
    if not request.provider_options:
        return None
    kind = type(provider).options_model
    if kind is not None and any(isinstance(item, kind) for item in request.provider_options):
        return None
    names = ", ".join(type(item).__name__ for item in request.provider_options)
    message = (
        f"provider_options not applied: {provider.name}:{model} (type {provider.config.type!r}) "
        f"takes {_takes(provider)}, and the call gave only {names}"
    )
    logger.debug("%s", message)
    return message


class OptionsHook(CallHook):
    """Plugs ``provider_options`` into a call: a reply from a target that applied none of them says so."""

    def finish_reply(self, call: Call[Any, Any], provider: Provider, model: str, reply: ChatResponse) -> ChatResponse:
        """The reply, with a warning when ``provider`` took none of the call's options."""
        warning = not_applied(provider, model, call.request)
        if warning is None:
            return reply
        return reply.model_copy(update={"warnings": [*reply.warnings, warning]})
