"""turnout.toml: load, interpolate ``${VAR}``, validate, and explain what is wrong.

```toml
[providers.openai]
type = "openai"
api_key = "${OPENAI_API_KEY}"

[providers.local]
type = "vllm"
base_url = "http://127.0.0.1:8000/v1"

[models.fast]
targets = ["openai:gpt-4o-mini", "local:meta-llama/Llama-2-7b-chat-hf"]

[prices."local:meta-llama/Llama-2-7b-chat-hf"]
input_per_million = 0.10
output_per_million = 0.20
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from . import _defaults
from ._checks import NoBoolNumbers, check_headers
from ._secrets import mask_url
from .cost.budgets import Budget
from .cost.spend_ledger import LedgerConfig
from .errors import ConfigError
from .limits import RateLimit
from .policies.route import RoutePolicy
from .shared import StateConfig

__all__ = [
    "Config",
    "HooksConfig",
    "ModelRoute",
    "Price",
    "ProviderConfig",
    "RoutePolicy",
    "TelemetryConfig",
    "config_json_schema",
    "find_config_file",
    "hourly_price",
    "load_config",
    "split_target",
]


class ProviderConfig(NoBoolNumbers):
    """Settings every provider type accepts. Provider types extend it with their own keys.

    ``headers`` values are `SecretStr` (they often carry keys: ``api-key``, ``Authorization``):
    reprs and dumps show ``**********``; `header_values` gives the real ones. Credentials in
    ``base_url`` (``http://user:pw@host``) are masked in reprs and JSON dumps.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    type: str = Field(description="provider type: openai | vllm | openai-compatible | a plugin's name")
    base_url: str | None = Field(default=None, description="API root, e.g. http://127.0.0.1:8000/v1")
    api_key: SecretStr | None = Field(default=None, description='key sent as a Bearer token; use "${VAR}"')
    timeout: float = Field(
        default=_defaults.TIMEOUT,
        gt=0,
        le=_defaults.MAX_TIMEOUT,
        description="seconds to wait on each network read, write or pool checkout",
    )
    connect_timeout: float = Field(default=_defaults.CONNECT_TIMEOUT, gt=0, le=_defaults.MAX_TIMEOUT)
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra HTTP headers on every request (values are kept secret)"
    )
    proxy: SecretStr | None = Field(
        default=None,
        description="proxy URL for this provider: http://, https://, socks5:// (kept secret: it may hold user:pw@)",
    )
    ca_bundle: str | None = Field(
        default=None, description="PEM file of the CAs to trust for this provider (not the default ones); ~ expands"
    )
    batch_discount: float = Field(
        default=_defaults.BATCH_DISCOUNT,
        ge=0,
        lt=1,
        description="turnout batch --provider-batch: the batch API's discount where the catalogue has no batch price",
    )
    client_cert: str | None = Field(default=None, description="PEM client certificate (mutual TLS); ~ expands")
    client_key: str | None = Field(default=None, description="PEM key of client_cert when not in the same file")
    max_connections: int = Field(
        default=_defaults.MAX_CONNECTIONS, gt=0, description="connection pool size: at most this many at once"
    )

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: SecretStr | None) -> SecretStr | None:
        schemes = ("http://", "https://", "socks5://", "socks5h://")
        if value is not None and not value.get_secret_value().startswith(schemes):
            raise ValueError("must start with http://, https://, socks5:// or socks5h://")
        return value

    @field_validator("ca_bundle", "client_cert", "client_key")
    @classmethod
    def _check_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(
                f"no such file: {str(path)!r}. Give the path of a PEM file (relative to the working directory)"
            )
        return str(path)

    @model_validator(mode="after")
    def _check_key_has_cert(self) -> ProviderConfig:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key: set client_cert too (the certificate the key belongs to)")
        return self

    @field_validator("headers", mode="before")
    @classmethod
    def _check_headers(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        plain = {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in value.items()}
        return check_headers(plain)

    @field_serializer("base_url")  # model_dump in any mode, like repr
    def _mask_base_url(self, value: str | None) -> str | None:
        return None if value is None else mask_url(value)

    def header_values(self) -> dict[str, str]:
        """The ``headers`` table with its real values, to send."""
        return {name: value.get_secret_value() for name, value in self.headers.items()}

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "base_url" and isinstance(value, str) else value


class ModelRoute(RoutePolicy):
    """A model alias: the targets to try, in order, and the route's policy (overriding ``[defaults]``)."""

    targets: list[str] = Field(min_length=1, description='"<provider>:<model-id>" strings, tried in order')
    budget: Budget | None = Field(default=None, description="a spending limit on this alias's calls")
    cache: bool = Field(default=True, description="answer this alias's repeated requests from [cache] (when set)")

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, targets: list[str]) -> list[str]:
        for target in targets:
            split_target(target)
        return targets

    @model_validator(mode="after")
    def _check_weights(self) -> ModelRoute:
        if self.weights is not None and len(self.weights) != len(self.targets):
            raise ValueError(f"weights: give one weight per target ({len(self.targets)}), not {len(self.weights)}")
        return self


class Price(NoBoolNumbers):
    """A price in USD per one million tokens; overrides the catalogue.

    Give either ``input_per_million`` and ``output_per_million``, or, for a self-hosted or
    dedicated endpoint, ``usd_per_hour`` and ``tokens_per_second`` (aggregate generated tokens
    per second), from which both are derived:
    ``output_per_million = usd_per_hour / (3600 * tokens_per_second * utilization) * 1e6`` and
    ``input_per_million = input_weight * output_per_million``.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)
    cached_input_per_million: Decimal | None = Field(default=None, ge=0)
    reasoning_per_million: Decimal | None = Field(
        default=None, ge=0, description="price of reasoning tokens when not the output price"
    )
    usd_per_hour: Decimal | None = Field(default=None, ge=0, description="hourly rate of a dedicated endpoint")
    tokens_per_second: Decimal | None = Field(default=None, gt=0, description="aggregate generated tokens/s")
    utilization: Decimal = Field(default=Decimal(1), gt=0, le=1, description="share of paid time spent generating")
    input_weight: Decimal = Field(default=Decimal(0), ge=0, description="input token price as a share of output's")
    source: str | None = Field(default=None, description="where the price comes from (a URL, a contract)")
    as_of: date | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_hourly(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("usd_per_hour") is None:
            return data
        if data.get("tokens_per_second") is None:
            raise ValueError(
                "usd_per_hour needs tokens_per_second "
                "(measure it with turnout.providers.vllm_throughput.measure_vllm_throughput)"
            )
        if "input_per_million" in data or "output_per_million" in data:
            raise ValueError("give usd_per_hour and tokens_per_second, or input/output_per_million, not both")
        per_million = hourly_price(
            _decimal(data["usd_per_hour"]), _decimal(data["tokens_per_second"]), _decimal(data.get("utilization", 1))
        )
        weight = _decimal(data.get("input_weight", 0))
        return {**data, "output_per_million": per_million, "input_per_million": weight * per_million}


def hourly_price(usd_per_hour: Decimal, tokens_per_second: Decimal, utilization: Decimal = Decimal(1)) -> Decimal:
    """USD per million generated tokens of an endpoint billed by the hour.

    Args:
        usd_per_hour: what the endpoint costs per hour.
        tokens_per_second: aggregate generated tokens per second at your concurrency.
        utilization: the share of paid time spent generating (idle time still bills).

    Returns:
        ``usd_per_hour / (3600 * tokens_per_second * utilization) * 1_000_000``.

    Raises:
        ValueError: ``tokens_per_second`` or ``utilization`` is not positive.
    """
    if tokens_per_second <= 0 or utilization <= 0:
        raise ValueError("tokens_per_second and utilization must be greater than 0")
    return usd_per_hour * 1_000_000 / (3600 * tokens_per_second * utilization)


def _decimal(value: Any) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{value!r} is not a number") from None


class TelemetryConfig(BaseModel):
    """``[telemetry]``: OpenTelemetry spans and metrics of every call (``turnout[otel]``; docs/observability.md)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="emit GenAI spans and metrics through the application's providers")
    capture_content: bool = Field(
        default=False, description="also record prompts and completions on the spans (they may hold personal data)"
    )


class CacheConfig(BaseModel):
    """``[cache]`` in turnout.toml: where replies are kept, and for how long."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="answer repeated requests from the cache")
    backend: Literal["memory", "sqlite", "redis"] = Field(
        default="memory", description='"memory" (this client), "sqlite" (a file: path) or "redis" (a server: url)'
    )
    path: str | None = Field(default=None, description="the SQLite file (backend sqlite); relative to the config file")
    url: str | None = Field(default=None, description="the Redis server, e.g. redis://127.0.0.1:6379/0 (backend redis)")
    ttl: float | None = Field(
        default=None, gt=0, le=_defaults.MAX_CACHE_TTL, description="seconds an entry is served (default: no expiry)"
    )
    max_entries: int = Field(default=10_000, gt=0, description="the memory backend's size (oldest dropped first)")

    @model_validator(mode="after")
    def _check_backend(self) -> CacheConfig:
        if self.backend == "sqlite" and not self.path:
            raise ValueError('backend "sqlite" needs path = "<file>" (e.g. path = "cache.sqlite3")')
        if self.backend == "redis" and not self.url:
            raise ValueError('backend "redis" needs url = "redis://host:6379/0"')
        if self.url and self.backend != "redis":
            raise ValueError(f'url is for backend "redis"; backend is {self.backend!r}')
        if self.path and self.backend != "sqlite":
            raise ValueError(f'path is for backend "sqlite"; backend is {self.backend!r}')
        return self

    def relative_to(self, folder: str | Path) -> CacheConfig:
        """This config with a relative ``path`` joined to ``folder`` (the config file's)."""
        if self.path is None:
            return self
        path = Path(self.path).expanduser()
        return self.model_copy(update={"path": str(path if path.is_absolute() else Path(folder).absolute() / path)})

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" and isinstance(value, str) else value


def _no_hooks() -> list[str]:
    """A new empty list.

    A Python function rather than ``list``: pydantic reads a default factory's signature, and
    reading a builtin's compiles the tokenizer's regular expressions (about 1.5 ms, once).
    """
    return []


class HooksConfig(BaseModel):
    """``[hooks]``: functions called with each event, as ``"package.module:function"`` (docs/observability.md)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    on_call_started: list[str] = Field(default_factory=_no_hooks, description="called with each CallStarted")
    on_attempt_started: list[str] = Field(default_factory=_no_hooks, description="called with each AttemptStarted")
    on_attempt_finished: list[str] = Field(default_factory=_no_hooks, description="called with each AttemptFinished")
    on_retry_scheduled: list[str] = Field(default_factory=_no_hooks, description="called with each RetryScheduled")
    on_stream_abandoned: list[str] = Field(default_factory=_no_hooks, description="called with each StreamAbandoned")
    on_call_finished: list[str] = Field(default_factory=_no_hooks, description="called with each CallFinished")

    @field_validator("*", mode="before")
    @classmethod
    def _check_refs(cls, value: Any) -> Any:
        refs = [value] if isinstance(value, str) else value
        for ref in refs if isinstance(refs, list) else ():
            module, sep, name = str(ref).partition(":")
            if not (sep and module and name):
                raise ValueError(f"{ref!r} is not 'package.module:function'")
        return refs


class Config(BaseModel):
    """A whole turnout configuration.

    Build it from a file with `load_config`, or from a dict with ``Config.from_dict``.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    # The tables left out get their defaults from ``model_construct``: defaults need no validation,
    # so a config that leaves them out never builds their validators (docs/performance.md).
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    defaults: RoutePolicy = Field(
        default_factory=RoutePolicy.model_construct, description="policy of every route unless it says"
    )
    budget: Budget | None = Field(default=None, description="a spending limit on every call of the client")
    tag_budgets: dict[str, Budget] = Field(
        default_factory=dict, description="tag name -> the spending limit of each of its values (tags= on a call)"
    )
    ledger: LedgerConfig = Field(default_factory=LedgerConfig.model_construct, description="the spend ledger (SQLite)")
    limits: dict[str, RateLimit] = Field(
        default_factory=dict, description='rate limits per "provider:model" or "provider", local or on [state]'
    )
    state: StateConfig = Field(
        default_factory=StateConfig.model_construct,
        description="budgets and circuits shared by workers on Redis (absent: per process)",
    )
    telemetry: TelemetryConfig = Field(
        default_factory=TelemetryConfig.model_construct, description="OpenTelemetry spans and metrics"
    )
    hooks: HooksConfig = Field(
        default_factory=HooksConfig.model_construct, description="event callbacks named in the config"
    )
    cache: CacheConfig | None = Field(default=None, description="the response cache (off without this table)")

    def policy(self, alias: str | None) -> RoutePolicy:
        """The effective policy of a model alias (``[defaults]`` overlaid with what the alias sets)."""
        route = self.models.get(alias) if alias is not None else None
        return self.defaults if route is None else _overlay(self.defaults, route)

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        for target in self.prices:
            provider, _ = split_target(target, what="prices key")
            if provider not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise ValueError(
                    f"prices: {target!r} names provider {provider!r}, which is not configured "
                    f"(configured: {known}). Price a model as '<provider>:<model-id>' with a provider of [providers]."
                )
        for key in self.limits:
            provider = key.split(":", 1)[0]
            if provider not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise ValueError(
                    f"limits: {key!r} names provider {provider!r}, which is not configured (configured: {known}). "
                    "Key a limit by '<provider>:<model-id>' or '<provider>'."
                )
        for alias, route in self.models.items():
            for target in route.targets:
                provider = split_target(target)[0]
                if provider not in self.providers:
                    known = ", ".join(sorted(self.providers)) or "none"
                    raise ValueError(
                        f"models.{alias}.targets: {target!r} names provider {provider!r}, which is not "
                        f"configured (configured: {known}). Add a [providers.{provider}] table or fix the name."
                    )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Config:
        """Validate a config given as a mapping (the same shape as turnout.toml).

        Raises:
            ConfigError: naming the source, each bad key and the fix.
        """
        from ._config_build import build

        return build(data, source)


def _overlay(base: BaseModel, top: BaseModel) -> Any:
    """``base`` with the fields ``top`` explicitly sets laid over it (nested models merged too)."""
    update: dict[str, Any] = {}
    for name in top.model_fields_set & set(type(base).model_fields):
        value, under = getattr(top, name), getattr(base, name)
        update[name] = (
            _overlay(under, value) if isinstance(value, BaseModel) and isinstance(under, BaseModel) else value
        )
    return base.model_copy(update=update)


def split_target(target: str, *, what: str = "target") -> tuple[str, str]:
    """Split ``"provider:model-id"`` at the first colon.

    Raises:
        ValueError: the string has no colon, or an empty side.
    """
    provider, sep, model = target.partition(":")
    if not sep or not provider or not model:
        raise ValueError(f"{what} {target!r} is not '<provider>:<model-id>' (e.g. 'openai:gpt-4o-mini')")
    return provider, model


def find_config_file() -> Path | None:
    """Return ``$TURNOUT_CONFIG`` if set, else ``./turnout.toml`` if it exists, else None."""
    env = os.environ.get(_defaults.CONFIG_ENV_VAR)
    if env:
        return Path(env)
    candidate = Path.cwd() / _defaults.CONFIG_FILENAME
    return candidate if candidate.is_file() else None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, interpolate and validate a TOML config file (a relative ``[ledger] path`` is from its folder).

    Raises:
        ConfigError: the file is missing, is not valid TOML, names a missing environment
            variable, or fails validation; the message names the file, the key and the fix.
    """
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")  # a leading BOM (Windows editors) is dropped
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror}).") from exc
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} on line {line}). "
            "TOML files are UTF-8: save the file as UTF-8."
        ) from None
    import tomllib  # only for a file: a config given as a dict never loads the TOML parser

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}. Fix the syntax at that line.") from exc
    from ._config_build import build

    config = build(data, str(file))
    update: dict[str, Any] = {"ledger": config.ledger.relative_to(file.parent)}  # [ledger] path: from here
    if config.cache is not None:
        update["cache"] = config.cache.relative_to(file.parent)
    return config.model_copy(update=update)


def config_json_schema() -> dict[str, Any]:
    """The JSON schema of turnout.toml, with each built-in provider type's keys."""
    from typing import Annotated, Union

    from pydantic import create_model

    from .providers import builtin_types, provider_class

    configs = tuple(provider_class(name).config_model for name in builtin_types())
    provider_union = Annotated[Union[configs], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    schema_model = create_model(
        "TurnoutConfig",
        __base__=Config,
        providers=(dict[str, provider_union], Field(default_factory=dict)),
    )
    schema = schema_model.model_json_schema()
    schema["title"] = "turnout.toml"
    return schema
