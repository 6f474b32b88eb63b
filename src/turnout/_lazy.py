"""Names a module exports but loads on first use: one module ``__getattr__`` (PEP 562) for all of them.

A module that keeps a name importable from it while the code lives elsewhere, and is only needed
by some clients, writes ``__getattr__ = lazy(__name__, {"Name": "turnout.home.module"})``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy"]


def lazy(module: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``module``: each name of ``homes`` is imported from the module it maps to.

    The first use of a name imports its home and keeps the value in ``module``'s namespace, so
    later uses are plain attribute reads; any other name raises `AttributeError` as usual.
    """
    namespace = sys.modules[module].__dict__

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
