"""``turnout models`` and ``turnout health``: each route's targets, prices, context windows and circuits."""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from .money import USD, Usage

if TYPE_CHECKING:
    from .client import Client
    from .provider import Provider

__all__ = ["TargetInfo", "health", "models", "target_infos"]

_MILLION = 1_000_000


@dataclass(frozen=True)
class TargetInfo:
    """One target of one route, as ``turnout models`` and ``turnout health`` print it."""

    route: str
    target: str
    input_per_million: str | None
    output_per_million: str | None
    price_source: str | None
    context_window: int | None
    circuit: str
    circuit_source: str = "local"
    """Where ``circuit`` comes from: ``"local"`` (this process) or ``"shared"`` (opened by another worker, on Redis)."""


def _prices(client: Client, provider: Provider, model: str) -> tuple[str | None, str | None, str | None]:
    """USD per million input and output tokens (rounded for display), and where they come from."""
    pricing = client._pricing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown price is shown as such, not warned about
        cost_in = pricing.cost(provider, model, Usage(prompt_tokens=_MILLION, completion_tokens=0))
        cost_out = pricing.cost(provider, model, Usage(prompt_tokens=0, completion_tokens=_MILLION))
    if cost_in is None or cost_out is None:
        return None, None, None
    return USD(cost_in.input).display(), USD(cost_out.output).display(), cost_in.source


def target_infos(client: Client) -> list[TargetInfo]:
    """Every target of every ``[models]`` route, in route order (context windows may be asked over HTTP)."""
    circuits = {h.target: h for h in client.health()}
    infos = []
    for alias in sorted(client.config.models):
        for name, model in client.targets(alias):
            provider = client.provider(name)
            price_in, price_out, source = _prices(client, provider, model)
            target = f"{name}:{model}"
            circuit = circuits.get(target)
            infos.append(
                TargetInfo(
                    alias,
                    target,
                    price_in,
                    price_out,
                    source,
                    provider.context_window(model),
                    "closed" if circuit is None else circuit.state,
                    "local" if circuit is None else circuit.source,
                )
            )
    return infos


def _client(args: argparse.Namespace) -> Client:
    from .client import Client

    return Client(config=args.config)


def _window(info: TargetInfo) -> str:
    return f"{info.context_window} tokens" if info.context_window is not None else "unknown"


def models(args: argparse.Namespace) -> int:
    """Print each route's targets with their prices per 1M tokens and context windows."""
    with _client(args) as client:
        infos = target_infos(client)
    if args.json:
        hidden = ("circuit", "circuit_source")
        print(json.dumps([{k: v for k, v in asdict(i).items() if k not in hidden} for i in infos], indent=2))
        return 0
    _print_by_route(infos, lambda info: f"{_price(info)}  context window: {_window(info)}")
    return 0


def _price(info: TargetInfo) -> str:
    if info.input_per_million is None:
        return "price unknown (add it to [prices])"
    return f"${info.input_per_million} in / ${info.output_per_million} out per 1M tokens ({info.price_source})"


def health(args: argparse.Namespace) -> int:
    """Print each route's targets with their circuit state and the context window the pre-check uses."""
    with _client(args) as client:
        infos = target_infos(client)
    if args.json:
        keys = ("route", "target", "circuit", "circuit_source", "context_window")
        print(json.dumps([{k: asdict(i)[k] for k in keys} for i in infos], indent=2))
        return 0
    _print_by_route(infos, lambda info: f"circuit {_circuit(info)}  {_check(info)}")
    return 0


def _circuit(info: TargetInfo) -> str:
    return (
        f"{info.circuit} (shared state: opened by another worker)" if info.circuit_source == "shared" else info.circuit
    )


def _check(info: TargetInfo) -> str:
    if info.context_window is None:
        return "context window unknown (no pre-check)"
    return f"prompt + max_tokens checked against {info.context_window} tokens"


def _print_by_route(infos: list[TargetInfo], describe: Callable[[TargetInfo], str]) -> None:
    """Each route's name, then one line per target: its name and ``describe(info)``."""
    if not infos:
        print("no routes: add a [models.<alias>] table")
    route = None
    for info in infos:
        if info.route != route:
            route = info.route
            print(f"{route}:")
        print(f"  {info.target}  {describe(info)}")
