"""`_sse`: byte-level SSE decoding gives what a line-by-line reading of the text gives, however the body is cut."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator

import pytest

from turnout.providers._sse import SSEDecoder, aiter_sse_data, iter_sse_data

TERMINATORS = ["\n", "\r\n", "\r"]
PAYLOADS = ['{"choices":[{"delta":{"content":"hé"}}]}', "[DONE]", "日本語 ", "", " leading space", "a:b", "x" * 300]


def reference(text: str) -> list[bytes]:
    """The SSE spec read line by line (the old text-based path): data fields joined, other fields ignored."""
    events: list[bytes] = []
    data: list[str] = []
    for line in re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")):
        if not line:
            if data:
                events.append("\n".join(data).encode())
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
    if data:
        events.append("\n".join(data).encode())
    return events


def random_body(rng: random.Random) -> str:
    lines = ["\ufeff"] if rng.random() < 0.2 else []
    for _ in range(rng.randrange(1, 8)):
        for _ in range(rng.randrange(1, 4)):
            kind = rng.random()
            if kind < 0.6:
                lines.append(rng.choice(["data: ", "data:", "data:  "]) + rng.choice(PAYLOADS))
            elif kind < 0.8:
                lines.append(rng.choice([": keep-alive", "event: message", "id: 7", "retry: 100"]))
            else:
                lines.append("data")  # a field without a colon: ignored
        lines.append("")  # the blank line that ends the event
    if rng.random() < 0.3:
        lines.pop()  # the body ends without the last blank line
    return "".join(line + rng.choice(TERMINATORS) for line in lines)[: None if rng.random() < 0.8 else -1]


def cut(body: bytes, rng: random.Random) -> list[bytes]:
    points = (
        sorted(rng.sample(range(1, len(body)), k=min(len(body) - 1, rng.randrange(0, 12)))) if len(body) > 1 else []
    )
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


@pytest.mark.parametrize("seed", range(300))
def test_any_cut_of_any_body_decodes_like_the_text(seed: int) -> None:
    rng = random.Random(seed)
    text = random_body(rng)
    chunks = cut(text.encode(), rng)
    assert list(iter_sse_data(iter(chunks))) == reference(text), (text, chunks)


@pytest.mark.parametrize("seed", range(100))
def test_bodies_read_one_event_at_a_time_decode_like_the_text(seed: int) -> None:
    """The usual network read is one whole event: the decoder's shortcut for it agrees with the line loop."""
    rng = random.Random(seed)
    events = []
    for _ in range(rng.randrange(1, 10)):
        lines = [rng.choice(["data: ", "data:"]) + rng.choice(PAYLOADS) for _ in range(rng.choice([1, 1, 1, 2]))]
        if rng.random() < 0.2:
            lines.insert(0, ": keep-alive")
        ends = [rng.choice(TERMINATORS) if rng.random() < 0.3 else "\n" for _ in range(len(lines) + 1)]
        events.append("".join(line + end for line, end in zip([*lines, ""], ends, strict=True)))
    if rng.random() < 0.2:
        events[0] = "\ufeff" + events[0]
    text = "".join(events)
    assert list(iter_sse_data(iter([event.encode() for event in events]))) == reference(text), events


def test_a_read_that_is_not_exactly_one_event_takes_the_line_loop() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [b"a"]
    assert decoder.feed(b"data: b\n\n") == [b"b"]  # the shortcut
    assert decoder.feed(b"data: c\rdata: d\n\n") == [b"c\nd"]  # two data lines, not one
    assert decoder.feed(b"data: e\n") == []
    assert decoder.feed(b"data: f\n\n") == [b"e\nf"]  # not the shortcut: a line was held from before
    assert decoder.feed(b"data: g\nd") == []  # one line end, then the start of the next line
    assert decoder.feed(b"ata: h\n\n") == [b"g\nh"]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == []  # the \r\n ends "data: a"; this \r may start another \r\n
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [b"a", b"b"]
    assert decoder.close() == []


def test_one_byte_at_a_time() -> None:
    body = b'data: {"a": 1}\n\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n'
    assert list(iter_sse_data(iter([body[i : i + 1] for i in range(len(body))]))) == [
        b'{"a": 1}',
        b"line one\nline two",
        b"[DONE]",
    ]


def test_async_twin_gives_the_same_events() -> None:
    rng = random.Random(7)
    text = random_body(rng)
    chunks = cut(text.encode(), rng)

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[bytes]:
        return [data async for data in aiter_sse_data(body())]

    assert asyncio.run(collect()) == reference(text) == list(iter_sse_data(iter(chunks)))
