"""Read a function's description and its parameters' descriptions from a Google- or numpy-style docstring."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence

__all__ = ["parse_docstring"]

_GOOGLE_ARGS = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(:.*)?$")
_SECTION = re.compile(r"^\w[\w ]*:\s*$")


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """The first paragraph and the parameters' descriptions of a Google- or numpy-style docstring."""
    if not doc:
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _GOOGLE_ARGS.match(line) or _SECTION.match(line):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    for i, line in enumerate(lines):
        if _GOOGLE_ARGS.match(line):
            params.update(_google_items(lines[i + 1 :]))
        elif line.strip() in ("Parameters", "Other Parameters") and i + 1 < len(lines) and _is_rule(lines[i + 1]):
            params.update(_numpy_items(lines[i + 2 :]))
    return " ".join(summary) or None, params


def _is_rule(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) == {"-"}


def _google_items(lines: Sequence[str]) -> dict[str, str]:
    items: dict[str, list[str]] = {}
    current, indent = None, None
    for line in lines:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if width == 0:
            break
        indent = width if indent is None else indent
        match = _GOOGLE_ITEM.match(line.strip()) if width == indent else None
        if match:
            current = match.group(1)
            items[current] = [match.group(3).strip()]
        elif current is not None:
            items[current].append(line.strip())
    return {k: " ".join(p for p in v if p) for k, v in items.items()}


def _numpy_items(lines: Sequence[str]) -> dict[str, str]:
    items: dict[str, list[str]] = {}
    current = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and _is_rule(lines[i + 1]):
            break  # the next section's header
        if not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            match = _NUMPY_ITEM.match(line.strip())
            current = match.group(1) if match else None
            if current is not None:
                items[current] = []
        elif current is not None:
            items[current].append(line.strip())
    return {k: " ".join(v) for k, v in items.items()}
