"""`turnout._lazy.lazy`: names a module exports but loads on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import turnout.options
import turnout.policies.retry


def test_a_lazy_name_is_imported_from_its_home_once_and_kept() -> None:
    from turnout.providers.vllm_options import VLLMOptions

    assert turnout.options.VLLMOptions is VLLMOptions
    assert turnout.options.__dict__["VLLMOptions"] is VLLMOptions  # later reads skip __getattr__


def test_an_unknown_name_is_an_attribute_error_naming_the_module() -> None:
    with pytest.raises(AttributeError, match=r"^module 'turnout.policies.retry' has no attribute 'nothing'$"):
        turnout.policies.retry.nothing  # noqa: B018 - the attribute read is the test
    assert not hasattr(turnout.options, "RetryPolicy")


@pytest.mark.parametrize(
    ("module", "name", "home"),
    [
        ("turnout.options", "TGIOptions", "turnout.providers.tgi_options"),
        ("turnout.shared", "SharedState", "turnout._state_client"),
        ("turnout.policies", "wait_retry_after", "turnout.policies._tenacity"),
        ("turnout.policies.retry", "stop_for", "turnout.policies._tenacity"),
        ("turnout.errors", "error_from_response", "turnout.providers._openai_errors"),
        ("turnout.cost.budgets", "BudgetStatus", "turnout.cost._budget_status"),
        ("turnout.cost.spend_ledger", "Entry", "turnout.cost._ledger_rows"),
        ("turnout.types", "normalize_messages", "turnout._messages"),
    ],
)
def test_each_lazy_home_loads_only_when_its_name_is_read(module: str, name: str, home: str) -> None:
    """In a fresh interpreter: importing the module leaves the home unloaded; reading the name loads it."""
    code = (
        f"import sys, importlib; m = importlib.import_module({module!r}); before = {home!r} in sys.modules; "
        f"value = getattr(m, {name!r}); print(before, {home!r} in sys.modules, value.__module__ == {home!r})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]
