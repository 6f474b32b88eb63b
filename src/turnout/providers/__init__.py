"""The provider registry: provider type name -> provider class.

This is the only place that knows provider names. Built-in types are imported lazily; other
packages add types through the ``turnout.providers`` entry-point group::

    [project.entry-points."turnout.providers"]
    mycloud = "mycloud_turnout:MyCloudProvider"
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..provider import Provider

__all__ = ["ENTRY_POINT_GROUP", "builtin_types", "known_types", "provider_class", "register"]

ENTRY_POINT_GROUP = "turnout.providers"

_BUILTIN: dict[str, str] = {
    "openai": "turnout.providers.openai:OpenAIProvider",
    "vllm": "turnout.providers.vllm:VLLMProvider",
    "openai-compatible": "turnout.providers.openai_compatible:OpenAICompatibleProvider",
    "azure": "turnout.providers.azure:AzureProvider",
    "huggingface": "turnout.providers.huggingface:HuggingFaceProvider",
    "together": "turnout.providers.presets:TogetherProvider",
    "hf-router": "turnout.providers.presets:HFRouterProvider",
    "fireworks": "turnout.providers.presets:FireworksProvider",
    "deepinfra": "turnout.providers.presets:DeepInfraProvider",
}
_registered: dict[str, type[Provider]] = {}
_plugins: dict[str, str] | None = None


def register(type_name: str, cls: type[Provider]) -> None:
    """Register a provider class under a type name (for code that cannot use entry points)."""
    _registered[type_name] = cls


def _plugin_specs() -> dict[str, str]:
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points  # only when a type is not built in

        _plugins = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _plugins


def builtin_types() -> list[str]:
    """The provider types that ship with turnout."""
    return sorted(_BUILTIN)


def known_types() -> list[str]:
    """Every provider type name available: built in, registered, and from entry points."""
    return sorted({*_BUILTIN, *_registered, *_plugin_specs()})


def provider_class(type_name: str, *, where: str = "provider type") -> type[Provider]:
    """Return the provider class for a type name, importing it on first use.

    Raises:
        ConfigError: the type is unknown, or its module cannot be imported.
    """
    if type_name in _registered:
        return _registered[type_name]
    spec = _BUILTIN.get(type_name) or _plugin_specs().get(type_name)
    if spec is None:
        raise ConfigError(
            f"{where}: unknown provider type {type_name!r}. Use one of: {', '.join(known_types())} "
            f"(or install the package that provides it)."
        )
    module_name, _, attr = spec.partition(":")
    try:
        cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise ConfigError(f"{where}: provider type {type_name!r} cannot be loaded: {exc}") from exc
    _registered[type_name] = cls
    return cls
