"""Building a `Config` from a dict (a TOML file's or the caller's).

``${VAR}`` references are filled in, each provider's table is validated by its type's config
model, and validation errors become one message that names the file, the key and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .config import Config, ProviderConfig
from .errors import ConfigError

__all__ = ["build"]

# Compiled on first use (re's cache): a config without ${...} never needs them.
_VAR = r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}"
_ANY_VAR = r"\$\{([^}]*)\}"
_NO_DASH = r"([A-Za-z_][A-Za-z0-9_]*)[:=]([^-].*|)"  # ${HOST:127.0.0.1}, ${HOST=x}: the shell's is :-


def build(data: Mapping[str, Any], source: str) -> Config:
    """``data`` (a config as a dict, from TOML or the caller) with ``${VAR}`` filled in, validated.

    Raises:
        ConfigError: a bad provider table, a missing variable or a failed check, named with ``source``.
    """
    data = _interpolate(dict(data), source, ())
    providers: dict[str, ProviderConfig] = {}
    raw_providers = data.get("providers", {})
    if not isinstance(raw_providers, Mapping):
        raise ConfigError(f"{source}: providers: must be a table of [providers.<name>] tables.")
    for name, raw in raw_providers.items():
        if not name or ":" in name or name != name.strip():
            raise ConfigError(
                f"{source}: providers.{name!r}: a provider name must be non-empty, without ':' or surrounding "
                "spaces (targets are written '<provider>:<model-id>'). Rename the table, e.g. [providers.local]."
            )
        providers[name] = _provider_config(name, raw, source)
    if data.keys() <= {"providers"}:
        # Each provider was validated above and every other table takes its default: Config's own
        # validator (all of turnout.toml's tables) would check nothing more, so it is not built.
        return Config.model_construct(providers=providers)
    try:
        return Config.model_validate({**data, "providers": providers})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, ())) from None


def _provider_config(name: str, raw: object, source: str) -> ProviderConfig:
    from .providers import known_types, provider_class

    if isinstance(raw, ProviderConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: providers.{name}: must be a table with at least `type = ...`.")
    kind = raw.get("type")
    if not isinstance(kind, str):
        problem = "missing" if kind is None else f"must be a string, not {type(kind).__name__} {kind!r}"
        raise ConfigError(
            f'{source}: providers.{name}.type: {problem}. Write `type = "..."`, one of: {", ".join(known_types())}.'
        )
    cls = provider_class(kind, where=f"{source}: providers.{name}.type")
    try:
        return cls.config_model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, ("providers", name))) from None


def _interpolate(value: Any, source: str, path: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        if "${" not in value:  # nothing to fill in (every reference starts so)
            return value
        _check_references(value, source, path)
        return re.sub(_VAR, lambda m: _lookup(m, source, path), value)
    if isinstance(value, Mapping):
        return {k: _interpolate(v, source, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, source, (*path, str(i))) for i, v in enumerate(value)]
    return value


def _check_references(value: str, source: str, path: tuple[str, ...]) -> None:
    """Reject a ``${...}`` that is not ``${VAR}`` or ``${VAR:-default}`` (it would be kept as text)."""
    for match in re.finditer(_ANY_VAR, value):
        if re.fullmatch(_VAR, match.group(0)):
            continue
        inner = match.group(1)
        typo = re.fullmatch(_NO_DASH, inner)
        hint = (
            f"For a default, write ${{{typo.group(1)}:-{typo.group(2)}}}."
            if typo
            else "Write ${VAR} or ${VAR:-default} (VAR: letters, digits and _)."
        )
        raise ConfigError(f"{source}: {'.'.join(path)}: {match.group(0)} is not a valid reference. {hint}")


def _lookup(match: re.Match[str], source: str, path: tuple[str, ...]) -> str:
    name, default = match.group(1), match.group(2)
    found = os.environ.get(name)
    if default is not None:
        return found or default  # like the shell's ${VAR:-default}: unset or empty
    if found is not None:
        return found
    raise ConfigError(
        f"{source}: {'.'.join(path)}: environment variable {name} is not set. "
        f"Set it (export {name}=...), or give a default with ${{{name}:-value}}."
    )


def _describe(exc: ValidationError, source: str, prefix: tuple[str, ...]) -> str:
    lines = [f"{source}: invalid configuration:"]
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in (*prefix, *error["loc"])) or "(top level)"
        msg = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            msg = "unknown key. Remove it or check its spelling (see the config reference)."
        elif error["type"] == "missing":
            msg = "required key is missing. Add it."
        elif error["type"] == "model_type" and len(error["loc"]) == 2 and error["loc"][0] == "models":
            name = error["loc"][1]
            example = f'{name} = {{ targets = ["<provider>:<model-id>"] }}'
            msg = f"a route is a table of targets, not a single value: write {example}"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)
