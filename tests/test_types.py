"""The typed values: `turnout.types` keeps every name it had, wherever it now lives."""

from __future__ import annotations

import pickle
import warnings
from decimal import Decimal

import turnout
from turnout import money, types


def test_the_money_names_keep_their_old_home_without_a_warning() -> None:
    """`Usage`, `Cost`, `USD`, `USDField`, `fixed_point`, `to_usd` live in `turnout.money`; `turnout.types` has them."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from turnout.types import USD, Cost, Usage, USDField, fixed_point, to_usd
    assert Usage is money.Usage and Cost is money.Cost and USD is money.USD and USDField is money.USDField
    assert fixed_point is money.fixed_point and to_usd is money.to_usd
    assert turnout.Usage is Usage and turnout.Cost is Cost and turnout.USD is USD
    assert types.ChatResponse.model_fields["usage"].annotation is Usage


def test_a_reply_pickled_before_the_move_still_loads() -> None:
    """A pickle names each class by module: one written when `Cost` lived in `turnout.types` loads the same reply."""
    cost = money.Cost(input=Decimal("0.1"), output=Decimal("0.2"), total=Decimal("0.3"), source="config")
    reply = types.ChatResponse(
        text="hi", choices=[], usage=money.Usage(prompt_tokens=1), cost=cost, provider="p", model="m"
    )
    written = pickle.dumps(reply)
    assert b"turnout.money" in written
    assert pickle.loads(written.replace(b"turnout.money", b"turnout.types")) == reply


def test_the_message_module_imports_first_in_a_fresh_process() -> None:
    """`turnout._messages` and `turnout.types` import each other lazily: either may come first."""
    import subprocess
    import sys

    code = "import turnout._messages, turnout.types as t; print(t.normalize_messages.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "turnout._messages"), done.stderr
