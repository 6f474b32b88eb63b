"""Config mistakes that used to be accepted silently fail at load, naming the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout.config import load_config

VLLM = {"type": "vllm", "base_url": "http://127.0.0.1:8000/v1"}


def _load(data: dict[str, Any]) -> turnout.Config:
    return turnout.Config.from_dict(data)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (
            "http://${HOST:127.0.0.1}:8000/v1",
            r"\$\{HOST:127\.0\.0\.1\} is not a valid reference\. .*\$\{HOST:-127\.0\.0\.1\}",
        ),
        ("http://${HOST=localhost}/v1", r"write \$\{HOST:-localhost\}"),
        ("http://${1HOST}/v1", r"Write \$\{VAR\} or \$\{VAR:-default\}"),
        ("http://${}/v1", r"\$\{\} is not a valid reference"),
    ],
)
def test_a_malformed_reference_is_an_error(value: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(turnout.ConfigError, match=r"providers\.local\.base_url: .*" + says):
        _load({"providers": {"local": {"type": "vllm", "base_url": value}}})
    path = tmp_path / "turnout.toml"
    path.write_text(f'[providers.local]\ntype = "vllm"\nbase_url = "{value}"\n')
    with pytest.raises(turnout.ConfigError, match=says):
        load_config(path)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("nope:x", r"prices: 'nope:x' names provider 'nope', which is not configured \(configured: local\)"),
        ("noprefix", r"prices key 'noprefix' is not '<provider>:<model-id>'"),
        (":x", r"prices key ':x' is not"),
    ],
)
def test_a_price_for_an_unknown_target_is_an_error(key: str, says: str) -> None:
    price = {"input_per_million": "1", "output_per_million": "2"}
    with pytest.raises(turnout.ConfigError, match=says):
        _load({"providers": {"local": VLLM}, "prices": {key: price}})


@pytest.mark.parametrize("name", ["", "a:b", " local"])
def test_a_provider_name_must_be_usable_in_a_target(name: str) -> None:
    with pytest.raises(turnout.ConfigError, match="a provider name must be non-empty, without ':'"):
        _load({"providers": {name: VLLM}})


def test_a_type_that_is_not_a_string_is_not_reported_missing() -> None:
    with pytest.raises(turnout.ConfigError, match=r"providers\.local\.type: must be a string, not int 5\."):
        _load({"providers": {"local": {"type": 5}}})


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"providers": {"local": {**VLLM, "timeout": True}}}, r"providers\.local: timeout: must be a number"),
        ({"providers": {"local": VLLM}, "defaults": {"retry": {"max_attempts": True}}}, r"max_attempts: must be"),
        (
            {"providers": {"local": VLLM}, "defaults": {"breaker": {"failure_threshold": True}}},
            "failure_threshold: must",
        ),
        ({"providers": {"local": VLLM}, "defaults": {"output_retries": True}}, "output_retries: must be a number"),
        ({"providers": {"local": VLLM}, "budget": {"max_usd": True}}, "max_usd: must be a number"),
        (
            {"providers": {"local": VLLM}, "prices": {"local:m": {"input_per_million": True, "output_per_million": 1}}},
            "input_per_million: must be a number",
        ),
    ],
)
def test_a_bool_is_not_a_number(data: dict[str, Any], where: str) -> None:
    with pytest.raises(turnout.ConfigError, match=where):
        _load(data)
