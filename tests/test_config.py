"""turnout.toml loading: interpolation, validation, and errors that name the file, key and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import turnout
from turnout.config import Config, config_json_schema, find_config_file, load_config

GOOD = """
[providers.openai]
type = "openai"
api_key = "${TEST_OPENAI_KEY}"

[providers.local]
type = "vllm"
base_url = "http://127.0.0.1:8000/v1"

[models.fast]
targets = ["openai:gpt-4o-mini", "local:meta-llama/Llama-2-7b-chat-hf"]

[prices."local:meta-llama/Llama-2-7b-chat-hf"]
input_per_million = 0.10
output_per_million = 0.20
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "turnout.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-from-env")
    config = load_config(write(tmp_path, GOOD))
    openai = config.providers["openai"]
    assert openai.type == "openai" and openai.api_key is not None
    assert openai.api_key.get_secret_value() == "sk-from-env"
    assert type(openai).__name__ == "OpenAIConfig"
    assert config.providers["local"].base_url == "http://127.0.0.1:8000/v1"
    assert config.models["fast"].targets[1] == "local:meta-llama/Llama-2-7b-chat-hf"
    price = config.prices["local:meta-llama/Llama-2-7b-chat-hf"]
    assert str(price.input_per_million) == "0.1"


def test_client_from_config_and_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-from-env")
    client = turnout.Client.from_config(write(tmp_path, GOOD))
    assert client.targets("fast") == [("openai", "gpt-4o-mini"), ("local", "meta-llama/Llama-2-7b-chat-hf")]
    assert "sk-from-env" not in repr(client)


def test_missing_variable_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY", raising=False)
    path = write(tmp_path, GOOD)
    with pytest.raises(turnout.ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "providers.openai.api_key" in message and "TEST_OPENAI_KEY" in message
    assert "export TEST_OPENAI_KEY" in message


def test_variable_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_BASE", raising=False)
    config = load_config(write(tmp_path, '[providers.v]\ntype = "vllm"\nbase_url = "${TEST_BASE:-http://h:1/v1}"\n'))
    assert config.providers["v"].base_url == "http://h:1/v1"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            '[providers.x]\ntype = "nope"\n',
            ["providers.x.type", "unknown provider type 'nope'", "openai, openai-compatible, together, vllm"],
        ),
        ('[providers.x]\nbase_url = "http://h"\n', ["providers.x.type", "missing"]),
        ('[providers.x]\ntype = "vllm"\ntimeout = "soon"\n', ["providers.x.timeout", "valid number"]),
        ('[providers.x]\ntype = "vllm"\ntimout = 5\n', ["providers.x.timout", "unknown key"]),
        ('[providers.x]\ntype = "vllm"\nbase_url = "127.0.0.1:8000"\n', ["providers.x.base_url", "http://"]),
        (
            '[providers.x]\ntype = "vllm"\n[models.fast]\ntargets = ["y:m"]\n',
            ["models.fast.targets", "provider 'y'", "configured: x", "[providers.y]"],
        ),
        (
            '[providers.x]\ntype = "vllm"\n[models.fast]\ntargets = ["no-colon"]\n',
            ["models.fast.targets", "'<provider>:<model-id>'"],
        ),
        ('[providers.x]\ntype = "vllm"\n[models.fast]\ntargets = []\n', ["models.fast.targets", "at least 1"]),
        ('[prices."x:m"]\ninput_per_million = -1\noutput_per_million = 1\n', ["prices.x:m.input_per_million"]),
        ("[providers.x\n", ["invalid TOML", "line 1"]),
        ('[provider.x]\ntype = "vllm"\n', ["provider", "unknown key"]),
    ],
    ids=[
        "unknown-type",
        "no-type",
        "wrong-type",
        "typo",
        "bad-url",
        "missing-provider",
        "no-colon",
        "no-targets",
        "negative-price",
        "malformed-toml",
        "unknown-table",
    ],
)
def test_bad_configs_fail_at_load_naming_file_key_and_fix(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(turnout.ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_openai_requires_a_key_at_load() -> None:
    with pytest.raises(turnout.ConfigError, match=r"providers.o.api_key: required key is missing"):
        turnout.Client(config={"providers": {"o": {"type": "openai"}}})


def test_openai_compatible_requires_base_url_at_load() -> None:
    with pytest.raises(turnout.ConfigError, match="providers.c.base_url: required key is missing"):
        turnout.Client(config={"providers": {"c": {"type": "openai-compatible"}}})


def test_empty_variable_takes_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BASE", "")
    config = load_config(write(tmp_path, '[providers.v]\ntype = "vllm"\nbase_url = "${TEST_BASE:-http://h:1/v1}"\n'))
    assert config.providers["v"].base_url == "http://h:1/v1"


def test_missing_file() -> None:
    with pytest.raises(turnout.ConfigError, match="cannot read"):
        load_config("/nonexistent/turnout.toml")


def test_client_finds_turnout_toml_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURNOUT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_config_file() is None
    with pytest.raises(turnout.ConfigError, match="no configuration"):
        turnout.Client()
    write(tmp_path, '[providers.v]\ntype = "vllm"\n')
    assert list(turnout.Client().config.providers) == ["v"]


def test_client_honours_turnout_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.toml"
    other.write_text('[providers.w]\ntype = "vllm"\n')
    monkeypatch.setenv("TURNOUT_CONFIG", str(other))
    assert list(turnout.Client().config.providers) == ["w"]
    assert list(turnout.AsyncClient().config.providers) == ["w"]


def test_config_object_and_dict_are_accepted() -> None:
    config = Config.from_dict({"providers": {"v": {"type": "vllm"}}})
    assert turnout.Client(config=config).config is config
    assert type(config.providers["v"]).__name__ == "VLLMConfig"


def test_published_schema_is_current() -> None:
    published = Path(__file__).parents[1] / "docs" / "config-schema.json"
    assert json.loads(published.read_text()) == config_json_schema(), (
        "docs/config-schema.json is stale: run python scripts/gen_config_schema.py"
    )


def test_schema_knows_each_provider_type() -> None:
    schema = json.dumps(config_json_schema())
    for name in ("OpenAIConfig", "VLLMConfig", "OpenAICompatibleConfig", "ModelRoute", "Price"):
        assert name in schema


#: Every table `Config` fills with its defaults when a config leaves it out, and the tables nested in them.
DEFAULT_TABLES = (
    "turnout.config.HooksConfig",
    "turnout.config.TelemetryConfig",
    "turnout.cost.spend_ledger.LedgerConfig",
    "turnout.policies.breaker.BreakerPolicy",
    "turnout.policies.retry.RetryPolicy",
    "turnout.policies.route.RoutePolicy",
    "turnout.shared.OnFailure",
    "turnout.shared.StateConfig",
)


@pytest.mark.parametrize("ref", DEFAULT_TABLES)
def test_an_unvalidated_default_table_is_the_validated_one(ref: str) -> None:
    """A left-out table's defaults come from ``model_construct``: the same object as validating ``{}``."""
    import importlib

    module, _, name = ref.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    built, validated = cls.model_construct(), cls.model_validate({})
    assert built == validated
    assert repr(built) == repr(validated)
    assert built.model_fields_set == validated.model_fields_set == set()
    assert built.model_dump() == validated.model_dump()


def test_every_default_table_is_listed() -> None:
    """The list above names every model-valued default of Config and of the tables under it."""
    from pydantic import BaseModel

    found: set[str] = set()

    def walk(cls: type[BaseModel]) -> None:
        for field in cls.model_fields.values():
            factory = field.default_factory
            assert not (isinstance(factory, type) and issubclass(factory, BaseModel)), f"{cls.__name__}: validated"
            owner = getattr(factory, "__self__", None)
            if isinstance(owner, type) and issubclass(owner, BaseModel):
                assert factory == owner.model_construct, f"{cls.__name__}: a default table built by validating it"
                found.add(f"{owner.__module__}.{owner.__qualname__}")
                walk(owner)

    walk(Config)
    assert sorted(found) == sorted(DEFAULT_TABLES)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"providers": {}},
        {
            "providers": {
                "p": {"type": "openai", "api_key": "sk-test"},
                "v": {"type": "vllm", "base_url": "http://h/v1"},
            }
        },
    ],
)
def test_a_config_of_providers_alone_is_the_validated_config(data: dict[str, object]) -> None:
    """Providers alone skip Config's own validator (each provider's table was validated): the same Config."""
    fast = Config.from_dict(data)
    validated = Config.model_validate({"providers": dict(fast.providers)})
    assert fast == validated
    assert repr(fast) == repr(validated)
    assert fast.model_fields_set == validated.model_fields_set == {"providers"}
    assert fast.model_dump() == validated.model_dump()
    assert [type(p) for p in fast.providers.values()] == [type(p) for p in validated.providers.values()]
    for name in Config.model_fields:
        assert getattr(fast, name).__class__ is getattr(validated, name).__class__


def test_a_config_with_other_tables_is_still_validated_whole() -> None:
    """Any table besides providers goes through Config's validator: its errors and cross-checks still apply."""
    provider = {"type": "openai", "api_key": "sk-test"}
    with pytest.raises(turnout.ConfigError, match=r"ledger\.enabled: Input should be a valid boolean"):
        Config.from_dict({"providers": {"p": provider}, "ledger": {"enabled": "maybe"}})
    with pytest.raises(turnout.ConfigError, match=r"names provider 'q', which is not configured"):
        Config.from_dict({"providers": {"p": provider}, "models": {"m": {"targets": ["q:x"]}}})


@pytest.mark.parametrize("route", ["local:llama", ["local:llama", "local:other"]])
def test_a_route_written_as_a_value_says_how_to_write_it(route: object) -> None:
    """`fast = "local:llama"` is refused with the table to write instead, not pydantic's "valid dictionary" words."""
    providers = {"local": {"type": "vllm", "base_url": "http://127.0.0.1:9/v1"}}
    with pytest.raises(turnout.ConfigError) as info:
        Config.from_dict({"providers": providers, "models": {"fast": route}})
    assert str(info.value).splitlines() == [
        "<dict>: invalid configuration:",
        "  - models.fast: a route is a table of targets, not a single value: "
        'write fast = { targets = ["<provider>:<model-id>"] }',
    ]
