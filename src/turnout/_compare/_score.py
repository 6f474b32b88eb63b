"""How answers are scored: exact match, multiple choice, or a judge model's verdict (no I/O here)."""

from __future__ import annotations

import re
import string
import unicodedata

from ..types import Message
from ._prompts import PromptItem, choice_index

__all__ = ["chosen_letter", "judge_messages", "judge_verdict", "normalise", "score_answer"]

_SPACE = re.compile(r"\s+")
_PUNCTUATION = string.punctuation + "“”‘’«»"
# "B", "B.", "(B)", "B) ...", "B: ..." at the start of the reply
_LEADING = re.compile(r"^\W{0,2}\(?(?P<letter>[A-Za-z])\)?(?:[.):]|\s*$)")
# "The answer is B", "Answer: (B)", "correct option is B"
_STATED = re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\(?(?P<letter>[A-Za-z])\)?(?![\w'])", re.I)


def normalise(text: str) -> str:
    """Text for exact match: NFKC, case-folded, outer punctuation and quotes dropped, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", folded).strip().strip(_PUNCTUATION).strip()


def chosen_letter(reply: str, choices: list[str]) -> str | None:
    """The option a reply chose, as a letter, or None when it names none (or several).

    Read in order: a letter at the start (``"B"``, ``"(B)"``, ``"B. Paris"``); a stated answer
    (``"the answer is B"``); else the one option whose text the reply contains.
    """
    last = chr(ord("A") + len(choices) - 1)
    for pattern in (_LEADING, _STATED):
        found = pattern.search(reply.strip())
        if found and "A" <= found["letter"].upper() <= last:
            return found["letter"].upper()
    text = normalise(reply)
    named = [i for i, choice in enumerate(choices) if normalise(choice) and normalise(choice) in text]
    if len(named) == 1:
        return chr(ord("A") + named[0])
    index = choice_index(reply, choices)
    return None if index is None else chr(ord("A") + index)


def score_answer(item: PromptItem, reply: str) -> float | None:
    """1.0 or 0.0 for a line with ``expected`` (multiple choice or exact match); None without one."""
    if item.expected is None:
        return None
    if item.choices is not None:
        return 1.0 if chosen_letter(reply, item.choices) == item.expected_letter() else 0.0
    return 1.0 if normalise(reply) == normalise(item.expected) else 0.0


_JUDGE_SYSTEM = (
    "You grade answers. Compare the candidate answer with the reference answer to the question. "
    "Reply with one word: CORRECT if the candidate means the same as the reference, otherwise INCORRECT."
)


def judge_messages(item: PromptItem, reply: str) -> list[Message]:
    """The messages that ask a judge model whether ``reply`` matches the line's ``expected``."""
    question = "\n".join(f"{m.role}: {_content(m)}" for m in item.chat_messages())
    body = f"Question:\n{question}\n\nReference answer:\n{item.expected}\n\nCandidate answer:\n{reply}\n\nVerdict:"
    return [Message(role="system", content=_JUDGE_SYSTEM), Message(role="user", content=body)]


def _content(message: Message) -> str:
    content = message.content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content)
    return content or ""


def judge_verdict(text: str) -> float | None:
    """1.0 for CORRECT, 0.0 for INCORRECT, None when the judge said neither."""
    words = normalise(text).split()
    if not words:
        return None
    first = words[0].strip(_PUNCTUATION)
    if first == "correct":
        return 1.0
    if first in ("incorrect", "wrong"):
        return 0.0
    return None
