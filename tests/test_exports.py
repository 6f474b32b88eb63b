"""The public surface: a sorted, complete __all__, lazy imports, py.typed."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import turnout
from turnout import AsyncClient, Client


def test_all_is_sorted_and_resolves() -> None:
    assert turnout.__all__ == sorted(turnout.__all__)
    for name in turnout.__all__:
        assert getattr(turnout, name) is not None


def test_every_error_is_exported() -> None:
    from turnout import errors

    classes = {
        n
        for n, v in vars(errors).items()
        if inspect.isclass(v) and issubclass(v, Exception) and v.__module__ == errors.__name__
    }
    assert classes <= set(turnout.__all__)


def test_import_is_lazy() -> None:
    heavy = "('httpx2', 'pydantic', 'openai', 'genai_prices')"
    code = f"import sys, turnout; print(','.join(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_telemetry_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    """A client without telemetry imports neither OpenTelemetry nor turnout's telemetry, even after a call."""
    code = (
        "import sys, turnout\n"
        "from turnout.testing import FakeServer\n"
        "with FakeServer(flavor='openai') as s:\n"
        "    config = {'providers': {'p': {'type': 'openai', 'base_url': s.base_url, 'api_key': 'k'}}}\n"
        "    with turnout.Client(config) as c:\n"
        "        c.chat('p:gpt-4o-mini', 'Hi')\n"
        "names = ('opentelemetry', 'turnout._telemetry', 'turnout._semconv')\n"
        "print(','.join(m for m in sys.modules if m.startswith(names)))"
    )
    env = {**os.environ, "TURNOUT_LEDGER": str(tmp_path / "ledger.sqlite3")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == ""


def test_import_does_not_need_the_network() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise RuntimeError('network used at import')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "import turnout; turnout.Client; turnout.types; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"


def test_py_typed_ships() -> None:
    assert (Path(turnout.__file__).parent / "py.typed").exists()


def test_sync_and_async_clients_have_the_same_methods_and_signatures() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {n: inspect.signature(f) for n, f in inspect.getmembers(cls, callable) if not n.startswith("_")}

    sync, asyn = public(Client), public(AsyncClient)
    assert set(sync) - {"close"} == set(asyn) - {"aclose"}
    for name in ("chat", "stream", "run_tools"):
        assert sync[name].parameters == asyn[name].parameters, name
    assert inspect.iscoroutinefunction(AsyncClient.chat) and not inspect.iscoroutinefunction(AsyncClient.stream)


def test_type_checking_imports_match_the_table() -> None:
    """Type checkers see each public name from the module the lazy table loads it from (no `Any`)."""
    import ast

    tree = ast.parse(Path(turnout.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {
        alias.name: (node.module or "").lstrip(".")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == turnout._LOCATION


def test_events_and_health_are_public() -> None:
    from turnout.events import CallFinished
    from turnout.policies.breaker import TargetHealth

    assert turnout.CallFinished is CallFinished and turnout.events.CallFinished is CallFinished
    assert turnout.TargetHealth is TargetHealth


def test_all_is_the_table() -> None:
    assert turnout.__all__ == sorted([*turnout._LOCATION, "__version__"])


def test_module_names_are_unique() -> None:
    """No two modules share a name (a reader never wonders which ``budget.py``), bar deprecated aliases."""
    from collections import Counter

    root = Path(turnout.__file__).parent
    deprecated = {root / "policies" / "budget.py"}  # the retry budget's old name, until 0.3.0
    names = Counter(p.name for p in root.rglob("*.py") if p.name != "__init__.py" and p not in deprecated)
    assert [name for name, count in names.items() if count > 1] == []


def test_moved_modules_keep_a_warning_alias() -> None:
    """Public modules that moved into providers/ and cost/ still import, with a DeprecationWarning, until 0.3.0."""
    import importlib
    import sys
    import warnings

    import pytest

    from turnout.cost import budgets, prices, spend_ledger
    from turnout.providers import llama2_template, vllm_throughput

    moved = (
        ("turnout.templates", llama2_template),
        ("turnout.throughput", vllm_throughput),
        ("turnout.pricing", prices),
        ("turnout.budget", budgets),
        ("turnout.ledger", spend_ledger),
    )
    for old, new in moved:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=new.__name__.replace(".", r"\.")):
            module = importlib.import_module(old)
        for name in module.__all__:
            assert getattr(module, name) is getattr(new, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("turnout.providers.llama2_template")
        importlib.import_module("turnout.cost.prices")
