"""What the fake server sends and every driver checks: the model, the messages and the reply text.

Standard library only: imported by the server and by drivers running in other libraries' venvs.
"""

from __future__ import annotations

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Say hello to the benchmark."},
]
#: A long conversation (1,000 messages) for the row that measures cost growing with the messages.
LONG_MESSAGES = [MESSAGES[0]] + [
    {"role": ("user", "assistant")[i % 2], "content": f"Message {i} of a long conversation, a few words long."}
    for i in range(999)
]
REPLY = "Hello! This is a fixed reply from the turnout benchmark server."
PROMPT_TOKENS = 25
COMPLETION_TOKENS = 12
_WORDS = "the quick brown fox jumps over the lazy dog while the train takes the turnout".split()


def stream_pieces(n: int) -> list[str]:
    """The text of each of the ``n`` content chunks of a streamed reply."""
    return [_WORDS[i % len(_WORDS)] + " " for i in range(n)]
