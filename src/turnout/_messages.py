"""Messages as the caller gives them, validated into `Message` objects, and written as a body's JSON.

A conversation is sent again with every turn: a message dict whose values are all text is
validated once per process and found again by its items (`_Seen`), so a call pays for its new
messages only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .types import Message, MessageInput

__all__ = ["dump_messages", "normalize_messages"]

_MESSAGES = TypeAdapter(list[Message], config=ConfigDict(defer_build=True))


_Key: TypeAlias = tuple[tuple[str, Any], ...]
"""A message dict's items, in order: what `_Seen` finds a validated message by."""


class _Seen:
    """Messages validated by earlier calls, found again by their content, and their JSON.

    A conversation is sent again with every turn, one message longer each time: this turns the
    cost of validating a message (about 1 µs) and writing it (about 0.3 µs) into that of a dict
    lookup, for every message but the new ones. Only dicts whose values are all strings (or
    ``None``) are kept: immutable, so the same content is always the same `Message` and the same
    JSON. A message's own JSON is written the second time a body holds it (a message sent once
    costs no more than a dict entry). Bounded: cleared when what it holds passes `LIMIT` bytes,
    each entry counted as `ENTRY` bytes plus its text twice (the text it keeps alive, and its JSON).
    """

    LIMIT = 4 * 1024 * 1024
    ENTRY = 1024
    """Bytes an entry holds besides its text: its `Message`, key tuples and table slots (about 0.9 KiB
    measured with tracemalloc for the benchmark's 1,000 short messages, Python 3.11)."""

    def __init__(self) -> None:
        self.messages: dict[_Key, Message] = {}
        # id(message) -> (message, its JSON: None before a body held it, b"" after the first);
        # the message is held with it, so that its id cannot be reused while the entry exists
        self.json: dict[int, tuple[Message, bytes | None]] = {}
        self.size = 0

    def add(self, key: _Key, message: Message) -> None:
        """Remember ``message``, validated from a dict whose items are ``key``, when its values are all text."""
        size = self.ENTRY
        for _, value in key:
            if type(value) is str:
                size += 2 * len(value)
            elif value is not None:
                return
        self.size += size
        if self.size > self.LIMIT:
            self.json.clear()  # first: an id in `json` always belongs to a message still held
            self.messages.clear()
            self.size = size
        self.messages[key] = message
        self.json[id(message)] = (message, None)


_SEEN = _Seen()


def normalize_messages(
    messages: str | list[Message] | list[Mapping[str, Any]] | list[MessageInput],
    check: Callable[[list[Any]], None] | None = None,
) -> list[Message]:
    """Validate ``messages`` into a list of `Message`.

    turnout's own `Message` objects are taken as they are; a dict is validated once per call
    (never per attempt), or not at all when a dict with the same items was validated before.
    ``check(messages)`` runs first when an item is neither a dict nor a `Message` (to raise a
    clearer error than validation would).

    Raises:
        pydantic.ValidationError: a message has a wrong role or field type.
        ValueError: the list is empty.
    """
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    if not messages:
        raise ValueError("messages must not be empty")
    found: list[Message | None] = []
    missing: list[tuple[int, _Key | None]] = []  # (position, the dict's items when they can be remembered)
    seen = _SEEN.messages
    for message in messages:
        kind = type(message)
        if kind is Message:
            found.append(message)  # type: ignore[arg-type]  # turnout's own, validated when made
        elif kind is dict:
            key: _Key | None = tuple(message.items())  # type: ignore[union-attr]
            try:
                hit = seen.get(key)  # type: ignore[arg-type]
            except TypeError:  # a value that cannot be hashed (content parts): validated each time
                hit, key = None, None
            if hit is None:
                missing.append((len(found), key))
            found.append(hit)
        else:
            if check is not None:
                check(messages)
            # Other mappings are copied into dicts, in one pass in pydantic-core.
            return _MESSAGES.validate_python([_plain(m) for m in messages])
    if missing:
        _validate_missing(messages, found, missing)
    return found  # type: ignore[return-value]  # every position is filled now


def _validate_missing(messages: list[Any], found: list[Message | None], missing: list[tuple[int, _Key | None]]) -> None:
    """Validate the dicts at the ``missing`` positions (in one pass) into ``found``, and remember them."""
    try:
        validated = _MESSAGES.validate_python([messages[position] for position, _ in missing])
    except ValidationError:
        _MESSAGES.validate_python(messages)  # the same errors, at their positions in the whole list
        raise
    for (position, key), message in zip(missing, validated, strict=True):
        found[position] = message
        if key is not None:
            _SEEN.add(key, message)


def dump_messages(messages: list[Message]) -> bytes:
    """``messages`` as the JSON array OpenAI-style bodies send (``None`` fields left out).

    When every message is remembered by `_Seen` and was sent before, the array is joined from
    their JSON; otherwise the whole list is written in one pass by pydantic-core.
    """
    table = _SEEN.json
    parts: list[bytes] = []
    first: list[Message] = []  # remembered messages a body holds for the first time
    for message in messages:
        entry = table.get(id(message))
        if entry is None or entry[0] is not message:
            return _MESSAGES.dump_json(messages, exclude_none=True)
        text = entry[1]
        if text is None:
            first.append(message)
            continue
        if not text:  # the second body that holds it: written once, for every later one
            text = _MESSAGES.dump_json([message], exclude_none=True)[1:-1]  # the list's serializer: built already
            table[id(message)] = (message, text)
        parts.append(text)
    if first:
        for message in first:
            table[id(message)] = (message, b"")
        return _MESSAGES.dump_json(messages, exclude_none=True)
    return b"[" + b",".join(parts) + b"]"


def _plain(message: MessageInput) -> Message | dict[str, Any]:
    return message if isinstance(message, Message) else dict(message)  # type: ignore[arg-type]
