"""The prompt file of ``turnout compare``: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InvalidArgumentError
from ..types import Message

__all__ = ["PromptItem", "load_prompts", "parse_prompts", "sample_prompts"]

#: The starter set shipped with turnout (``--sample``).
SAMPLE_FILE = "sample.jsonl"


class PromptItem(BaseModel):
    """One line of a prompt file.

    Give ``messages`` (a chat) or ``prompt`` (one user message). With ``expected`` the answers
    are scored: with ``choices`` as multiple choice (``expected`` is a letter, ``"B"``, or the
    choice's text), otherwise by exact match (or by a judge model, ``judge=...``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="a name for the line, unique in the file")
    messages: list[Message] | None = None
    prompt: str | None = None
    expected: str | None = None
    choices: list[str] | None = Field(default=None, description="the options of a multiple-choice question, A first")

    @model_validator(mode="before")
    @classmethod
    def _id_as_text(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
            return {**data, "id": str(data["id"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> PromptItem:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError('give exactly one of "messages" and "prompt"')
        if self.choices is not None:
            if not 2 <= len(self.choices) <= 26:
                raise ValueError('"choices" needs 2 to 26 options')
            if self.expected is not None and choice_index(self.expected, self.choices) is None:
                raise ValueError(
                    f'"expected" {self.expected!r} is neither a letter A-{_letter(len(self.choices) - 1)} '
                    "nor the text of one of the choices"
                )
        return self

    def chat_messages(self) -> list[Message]:
        """The messages to send: ``messages``, or ``prompt`` (with the lettered choices) as one user message."""
        if self.messages is not None:
            return list(self.messages)
        assert self.prompt is not None
        text = self.prompt
        if self.choices is not None:
            options = "\n".join(f"{_letter(i)}. {choice}" for i, choice in enumerate(self.choices))
            text = f"{text}\n\n{options}\n\nAnswer with the letter of the correct option only."
        return [Message(role="user", content=text)]

    def expected_letter(self) -> str | None:
        """For a multiple-choice line with ``expected``: the correct option's letter."""
        if self.choices is None or self.expected is None:
            return None
        index = choice_index(self.expected, self.choices)
        return None if index is None else _letter(index)


def choice_index(answer: str, choices: list[str]) -> int | None:
    """The option ``answer`` names: a letter (``"b"``, ``"(B)"``) or an option's exact text."""
    text = answer.strip().strip("().").strip()
    if len(text) == 1 and text.isalpha() and ord(text.upper()) - ord("A") < len(choices):
        return ord(text.upper()) - ord("A")
    folded = [c.strip().casefold() for c in choices]
    return folded.index(answer.strip().casefold()) if answer.strip().casefold() in folded else None


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def parse_prompts(lines: Iterable[str], source: str = "<prompts>") -> list[PromptItem]:
    """Parse JSON lines into prompt items (blank lines are skipped).

    Raises:
        InvalidArgumentError: a line is not JSON, not a valid item, or repeats an id; the
            message names the file and line.
    """
    items: list[PromptItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = PromptItem.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(
                f"{source}:{number}: not JSON ({exc.msg}); each line is one JSON object"
            ) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise InvalidArgumentError(
                f'{source}:{number}: {problems}. A line is {{"id", "messages" or "prompt", "expected"?, "choices"?}}'
            ) from None
        if item.id in seen:
            raise InvalidArgumentError(f"{source}:{number}: the id {item.id!r} is used twice; give each line its own")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InvalidArgumentError(f"{source}: no prompts (one JSON object per line)")
    return items


def load_prompts(path: str | Path) -> list[PromptItem]:
    """Read a prompt file (JSON lines).

    Raises:
        InvalidArgumentError: the file cannot be read or a line is invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the prompt file {str(path)!r}: {exc.strerror or exc}") from None
    return parse_prompts(text.splitlines(), str(path))


def sample_prompts() -> list[PromptItem]:
    """The starter set shipped with turnout: 50 multiple-choice questions over MMLU-like subjects."""
    text = resources.files(__package__).joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    return parse_prompts(text.splitlines(), f"turnout/compare/{SAMPLE_FILE}")
