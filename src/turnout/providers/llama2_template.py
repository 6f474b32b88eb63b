r"""Chat templates: turning a list of messages into one raw prompt for a text-completion endpoint.

A text-mode provider (TGI's ``/generate``, see ``type = "huggingface"`` with ``mode = "text"``)
has no chat route, so turnout renders the conversation itself. Llama 2's format is built in
(``"llama2"``); other formats are added with `register_template`.

The Llama 2 format, exactly as ``llama/generation.py::chat_completion`` builds it (meta-llama/llama
@ 689c7f2, https://github.com/meta-llama/llama/blob/main/llama/generation.py)::

    <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user 1} [/INST] {answer 1} </s><s>[INST] {user 2} [/INST]

- a leading system message is folded into the first user message;
- roles must then alternate user, assistant, user, ... and end with a user message;
- each message is ``strip()``-ed, and the special tags ``[INST]``, ``[/INST]``, ``<<SYS>>``,
  ``<</SYS>>`` (UPDATES.md, 2023-08-07) and the literal ``<s>`` / ``</s>`` (which a server's
  tokenizer would read as BOS/EOS control tokens) are removed from message text first;
- no default system prompt is added (Meta removed it in the same update).

Example:
    ```python
    from turnout import Message
    from turnout.providers.llama2_template import get_template

    prompt = get_template("llama2").render([Message(role="user", content="Hi")])
    assert prompt == "<s>[INST] Hi [/INST]"
    ```
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from ..errors import ConfigError, InvalidArgumentError
from ..types import Message

__all__ = [
    "ChatTemplate",
    "Llama2ChatTemplate",
    "get_template",
    "message_text",
    "register_template",
    "template_names",
]


class ChatTemplate(ABC):
    """A chat format: renders messages into the exact prompt text a model was trained on.

    Subclasses set `name`, `bos` and `eos` and implement `render`.
    """

    name: ClassVar[str]
    bos: ClassVar[str] = ""
    """The beginning-of-sequence marker the rendered prompt starts with ("" if none)."""
    eos: ClassVar[str] = ""
    """The end-of-sequence marker that closes each completed turn ("" if none)."""

    @abstractmethod
    def render(self, messages: Sequence[Message]) -> str:
        """Render ``messages`` into one prompt, ready for the model to write the next answer.

        Raises:
            InvalidArgumentError: the messages cannot be expressed in this format (the message
                says why, e.g. the conversation does not end with a user message).
        """


def message_text(message: Message) -> str:
    """The text of a message: its string content, or its text parts joined.

    Raises:
        InvalidArgumentError: the content has non-text parts (images, audio).
    """
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidArgumentError(f"a {message.role} message has a non-text part ({part.get('type')!r})")
        texts.append(part["text"])
    return "".join(texts)


class Llama2ChatTemplate(ChatTemplate):
    """Meta's Llama 2 chat format (``meta-llama/Llama-2-*-chat``), rendered exactly."""

    name: ClassVar[str] = "llama2"
    bos: ClassVar[str] = "<s>"
    eos: ClassVar[str] = "</s>"
    B_INST: ClassVar[str] = "[INST]"
    E_INST: ClassVar[str] = "[/INST]"
    B_SYS: ClassVar[str] = "<<SYS>>\n"
    E_SYS: ClassVar[str] = "\n<</SYS>>\n\n"
    #: Removed from every message before rendering: the format's own tags and the BOS/EOS literals.
    SPECIAL_TAGS: ClassVar[tuple[str, ...]] = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>")

    @classmethod
    def clean(cls, text: str) -> str:
        """Remove the special tags from message text (repeatedly, so no tag can be re-formed)."""
        previous = None
        while previous != text:
            previous = text
            for tag in cls.SPECIAL_TAGS:
                text = text.replace(tag, "")
        return text

    def render(self, messages: Sequence[Message]) -> str:
        """Render a Llama 2 chat prompt (see the module docstring for the rules).

        ``developer`` messages count as ``system``. Tool messages and tool calls cannot be
        expressed in this format.

        Raises:
            InvalidArgumentError: a system message is not first, roles do not alternate, the last
                message is not from the user, or a message is a tool message.
        """
        dialog = [(self._role(m, i), self.clean(message_text(m))) for i, m in enumerate(messages)]
        if dialog and dialog[0][0] == "system":
            system = dialog.pop(0)[1]
            if not dialog:
                raise InvalidArgumentError("llama2 template: a system message must be followed by a user message")
            dialog[0] = ("user", self.B_SYS + system + self.E_SYS + dialog[0][1])
        for index, (role, _) in enumerate(dialog):
            expected = "user" if index % 2 == 0 else "assistant"
            if role != expected:
                raise InvalidArgumentError(
                    f"llama2 template: message {index + 1} (after folding the system prompt) is {role!r}, expected "
                    f"{expected!r}: roles must alternate user/assistant, starting with user"
                )
        if not dialog or dialog[-1][0] != "user":
            raise InvalidArgumentError(
                "llama2 template: the last message must be from the user (the model writes the next answer)"
            )
        turns = [
            f"{self.bos}{self.B_INST} {user.strip()} {self.E_INST} {answer.strip()} {self.eos}"
            for (_, user), (_, answer) in zip(dialog[:-1:2], dialog[1::2], strict=True)
        ]
        turns.append(f"{self.bos}{self.B_INST} {dialog[-1][1].strip()} {self.E_INST}")
        return "".join(turns)

    @staticmethod
    def _role(message: Message, index: int) -> str:
        role = "system" if message.role == "developer" else message.role
        if role in ("tool", "function") or message.tool_calls or message.function_call:
            raise InvalidArgumentError(
                "llama2 template: tool messages, legacy function messages and their calls have no Llama 2 format"
            )
        if role == "system" and index != 0:
            raise InvalidArgumentError("llama2 template: only the first message may be a system message")
        return role


_TEMPLATES: dict[str, ChatTemplate] = {Llama2ChatTemplate.name: Llama2ChatTemplate()}


def register_template(template: ChatTemplate) -> None:
    """Make ``template`` available as ``chat_template = "<template.name>"`` in turnout.toml."""
    _TEMPLATES[template.name] = template


def template_names() -> list[str]:
    """The names of every registered chat template."""
    return sorted(_TEMPLATES)


def get_template(name: str) -> ChatTemplate:
    """The registered template called ``name``.

    Raises:
        ConfigError: no template has that name (the message lists the known ones).
    """
    try:
        return _TEMPLATES[name]
    except KeyError:
        raise ConfigError(
            f"unknown chat template {name!r}. Use one of: {', '.join(template_names())}, "
            "or register yours with turnout.providers.llama2_template.register_template()."
        ) from None
