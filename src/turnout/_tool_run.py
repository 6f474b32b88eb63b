"""`Client.run_tools` / `AsyncClient.run_tools`: call the model, run the tools it asks for, send the results back.

Each round is one ``chat`` call along the route (with its retries, fallback and cost). The loop
stops at the first reply without tool calls, or raises `ToolRoundsExceededError` after
``max_rounds`` requests. Everything here but the two loops does no I/O.

Also here: `capable_targets`, the check that skips targets that cannot take tools before a call is sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pydantic_core
from pydantic import BaseModel, ConfigDict

from .errors import InvalidArgumentError, ToolCallError, ToolRoundsExceededError, UnsupportedFeatureError
from .tools import Tool, ToolInput, as_tool
from .types import Attempt, ChatRequest, ChatResponse, Cost, Message, ToolCall, Usage

if TYPE_CHECKING:
    from .engine import Target

__all__ = ["OnToolError", "ToolRun", "arun", "capable_targets", "run", "tool_map"]

OnToolError: TypeAlias = "Literal['send', 'raise'] | Callable[[ToolCall, Exception], str]"
"""What `run_tools` does when a tool call fails: send ``"Error: ..."`` back to the model, raise, or send your text."""


class ToolRun(BaseModel):
    """The outcome of `Client.run_tools`: the final reply and everything that led to it.

    Attributes:
        response: the final reply (the first one without tool calls).
        messages: the whole transcript: your messages, each assistant turn with its tool calls,
            each tool result, and the final answer.
        responses: every reply, in order (one per round).
    """

    model_config = ConfigDict(defer_build=True, frozen=True)

    response: ChatResponse
    messages: list[Message]
    responses: list[ChatResponse]

    @property
    def text(self) -> str:
        """The final answer's text."""
        return self.response.text

    @property
    def rounds(self) -> int:
        """How many requests were sent."""
        return len(self.responses)

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt of every round, in order."""
        return [a for r in self.responses for a in r.attempts]

    @property
    def usage(self) -> Usage:
        """Token counts summed over the rounds (None where a round did not report one)."""
        return Usage.sum(r.usage for r in self.responses)

    @property
    def cost(self) -> Cost | None:
        """What all rounds cost together; None when any round's cost is unknown."""
        return Cost.sum(r.cost for r in self.responses)


def capable_targets(targets: list[Target], request: ChatRequest) -> tuple[list[Target], list[Attempt]]:
    """The targets that can take the request's tools, and a skipped `Attempt` for each one that cannot.

    Raises:
        UnsupportedFeatureError: no target can; nothing is sent.
    """
    if not request.tools and request.tool_choice in (None, "none"):
        return targets, []
    able = [(p, m) for p, m in targets if p.supports_tools(m)]
    if len(able) == len(targets):
        return targets, []
    unable = [(p, m) for p, m in targets if (p, m) not in able]
    labels = [f"{p.name}:{m}" for p, m in unable]
    if not able:
        raise UnsupportedFeatureError(
            f"tools cannot be sent to {', '.join(labels)} ({'; '.join(repr(p) for p, _ in unable)}): "
            'use a target that supports tool calling (for a huggingface provider, mode = "chat"), '
            "add one to the route, or call without tools",
            feature="tools",
            targets=labels,
        )
    skipped = [
        Attempt(
            provider=p.name,
            model=m,
            outcome="UnsupportedFeatureError",
            latency=0.0,
            error="skipped before sending: this target cannot take tools",
            skipped=True,
        )
        for p, m in unable
    ]
    return able, skipped


# -- the loop ---------------------------------------------------------------------------------------


def tool_map(tools: Sequence[ToolInput], *, need_sync: bool) -> dict[str, Tool]:
    """The runnable tools by name, checked before anything is sent.

    Raises:
        InvalidArgumentError: a tool has no function, two share a name, or (``need_sync``) one is async.
    """
    found: dict[str, Tool] = {}
    for item in tools:
        tool = as_tool(item)
        if tool.function is None:
            raise InvalidArgumentError(
                f"run_tools: tool {tool.name!r} has no function to run; pass a function, or Tool(..., function=...)"
            )
        if need_sync and tool.is_async:
            raise InvalidArgumentError(
                f"run_tools: tool {tool.name!r} is async; use AsyncClient.run_tools, or give Client a sync function"
            )
        if tool.name in found:
            raise InvalidArgumentError(f"run_tools: more than one tool is named {tool.name!r}")
        found[tool.name] = tool
    if not found:
        raise InvalidArgumentError("run_tools: pass at least one tool")
    return found


def result_text(value: Any) -> str:
    """A tool's return value as the text of its ``tool`` message: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError:
        return json.dumps(str(value))


def error_text(call: ToolCall, exc: Exception, on_error: OnToolError) -> str:
    """The ``tool`` message sent for a failed call; re-raises ``exc`` when ``on_error="raise"``."""
    if on_error == "raise":
        raise exc
    if callable(on_error):
        return on_error(call, exc)
    return f"Error: {type(exc).__name__}: {exc}"


def _lookup(tools: dict[str, Tool], call: ToolCall) -> Tool:
    if call.type == "custom":
        raise ToolCallError(
            f"tool call {call.name!r} is a custom tool call (free-text input); run_tools runs function tools "
            "only: handle reply.tool_calls yourself",
            tool=call.name,
            call_id=call.id,
        )
    tool = tools.get(call.name)
    if tool is None:
        known = ", ".join(sorted(tools))
        raise ToolCallError(f"there is no tool named {call.name!r} (tools: {known})", tool=call.name, call_id=call.id)
    return tool


def _assistant(reply: ChatResponse) -> Message:
    return reply.message  # custom tool calls and a legacy function_call are sent back as they came


def _tool_message(call: ToolCall, content: str) -> Message:
    return Message(role="tool", tool_call_id=call.id, content=content)


def _later_choice(tool_choice: Any) -> Any:
    """A forced tool choice (``"required"`` or a named tool) applies to the first round only."""
    return "auto" if tool_choice == "required" or isinstance(tool_choice, dict) else tool_choice


def _exceeded(max_rounds: int, messages: list[Message], responses: list[ChatResponse]) -> ToolRoundsExceededError:
    asked = ", ".join(c.name for c in responses[-1].tool_calls)
    return ToolRoundsExceededError(
        f"run_tools: the model still asked for tools ({asked}) after max_rounds={max_rounds} requests; "
        "raise max_rounds, or go on from the error's .messages",
        max_rounds=max_rounds,
        messages=messages,
        responses=responses,
    )


def _check_rounds(max_rounds: int) -> None:
    if max_rounds < 1:
        raise InvalidArgumentError(f"run_tools: max_rounds must be at least 1, not {max_rounds}")


def run(
    chat: Callable[..., ChatResponse],
    messages: list[Message],
    tools: dict[str, Tool],
    *,
    max_rounds: int,
    on_error: OnToolError,
    options: dict[str, Any],
) -> ToolRun:
    """The sync loop: ``chat(messages, tools=..., **options)`` until a reply has no tool calls."""
    _check_rounds(max_rounds)
    transcript, responses = list(messages), []
    definitions = [t.definition() for t in tools.values()]
    while True:
        reply = chat(transcript, tools=definitions, **options)
        responses.append(reply)
        transcript.append(_assistant(reply))
        if not reply.tool_calls:
            return ToolRun(response=reply, messages=transcript, responses=responses)
        if len(responses) >= max_rounds:
            raise _exceeded(max_rounds, transcript, responses)
        for call in reply.tool_calls:
            try:
                content = result_text(_lookup(tools, call).invoke(call))
            except Exception as exc:
                content = error_text(call, exc, on_error)
            transcript.append(_tool_message(call, content))
        options["tool_choice"] = _later_choice(options.get("tool_choice"))


async def arun(
    chat: Callable[..., Awaitable[ChatResponse]],
    messages: list[Message],
    tools: dict[str, Tool],
    *,
    max_rounds: int,
    on_error: OnToolError,
    options: dict[str, Any],
) -> ToolRun:
    """The async loop: as `run`; one round's calls run concurrently, results are sent in call order."""
    _check_rounds(max_rounds)
    transcript, responses = list(messages), []
    definitions = [t.definition() for t in tools.values()]
    while True:
        reply = await chat(transcript, tools=definitions, **options)
        responses.append(reply)
        transcript.append(_assistant(reply))
        if not reply.tool_calls:
            return ToolRun(response=reply, messages=transcript, responses=responses)
        if len(responses) >= max_rounds:
            raise _exceeded(max_rounds, transcript, responses)
        contents = await asyncio.gather(*(_arun_one(tools, call, on_error) for call in reply.tool_calls))
        transcript.extend(_tool_message(call, c) for call, c in zip(reply.tool_calls, contents, strict=True))
        options["tool_choice"] = _later_choice(options.get("tool_choice"))


async def _arun_one(tools: dict[str, Tool], call: ToolCall, on_error: OnToolError) -> str:
    try:
        return result_text(await _lookup(tools, call).ainvoke(call))
    except Exception as exc:
        return error_text(call, exc, on_error)
