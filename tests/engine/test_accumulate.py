"""`Accumulator`: the final reply of a stream, built exactly from its chunks (unit tests of one class)."""

from __future__ import annotations

import pytest

from turnout.engine.accumulate import Accumulator
from turnout.errors import APITimeoutError
from turnout.testing import FakeClock
from turnout.types import ChatChunk, ProviderRateLimit, ToolCallDelta, Usage, tool_call_id


def test_text_per_choice_model_and_usage() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text="Hel", model="m-1"))
    acc.add(ChatChunk(text="lo"))
    acc.add(ChatChunk(text="other", index=1))
    acc.add(ChatChunk(finish_reason="stop"))
    acc.add(ChatChunk(finish_reason="length", index=1))
    usage = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    acc.add(ChatChunk(usage=usage))
    reply = acc.response("p", "asked")
    assert (reply.text, reply.model, reply.provider, reply.finish_reason) == ("Hello", "m-1", "p", "stop")
    assert [(c.index, c.text, c.finish_reason) for c in reply.choices] == [(0, "Hello", "stop"), (1, "other", "length")]
    assert reply.usage == usage and reply.warnings == []
    assert acc.text() == "Hello" and acc.text(1) == "other" and acc.text(7) == ""
    assert acc.has_content and not acc.in_tool_call


def test_the_rate_limit_the_stream_reported_is_the_replys() -> None:
    """The provider's ``x-ratelimit-*`` headers come on the first chunk; the reply carries them (not a cache hit)."""
    said = ProviderRateLimit(remaining_requests=9, reset_tokens=1.5)
    acc = Accumulator()
    acc.add(ChatChunk(text="x", rate_limit=said))
    acc.add(ChatChunk(text="y"))
    reply = acc.response("p", "m")
    assert reply.rate_limit == said
    assert reply.from_cache is False
    assert Accumulator().response("p", "m").rate_limit is None


def test_an_empty_model_keeps_the_one_asked_for() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text="x", model=""))
    assert acc.response("p", "asked").model == "asked"


@pytest.mark.parametrize(
    ("usage", "warnings"),
    [
        (None, ["the server sent no usage for this stream"]),
        (Usage(prompt_tokens=3), ["the server sent no completion token count for this stream"]),
        (Usage(prompt_tokens=3, completion_tokens=0), []),
    ],
)
def test_usage_warnings(usage: Usage | None, warnings: list[str]) -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text="x", usage=usage))
    reply = acc.response("p", "m")
    assert reply.warnings == warnings
    assert reply.usage == (usage or Usage())


def test_tool_call_fragments_join_by_index() -> None:
    acc = Accumulator()
    first = acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, id="call_a", name="get", arguments='{"ci')]))
    assert acc.has_content and acc.in_tool_call and first.finish_reason is None
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, arguments='ty": "Oslo"}')]))
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=1, name="sql", arguments="SELECT 1", type="custom")]))
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=1, arguments=";")]))
    last = acc.add(ChatChunk(finish_reason="stop"))
    assert last.finish_reason == "tool_calls"  # vLLM/TGI say "stop" where OpenAI says "tool_calls"
    reply = acc.response("p", "m")
    assert reply.finish_reason == "tool_calls"
    function, custom = reply.tool_calls
    assert (function.id, function.type, function.name, function.arguments) == (
        "call_a",
        "function",
        "get",
        '{"city": "Oslo"}',
    )
    assert (custom.type, custom.name, custom.arguments) == ("custom", "sql", "SELECT 1;")
    assert custom.id == tool_call_id(1, "sql", "SELECT 1;")  # no id sent: the stable one
    assert acc.delivered_text() == 'get{"city": "Oslo"}sqlSELECT 1;'


def test_a_later_fragment_keeps_the_id_name_and_type_already_given() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, id="c1", name="f", arguments="{", type="function")]))
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, id=None, name=None, arguments="}", type=None)]))
    (call,) = acc.response("p", "m").tool_calls
    assert (call.id, call.name, call.arguments, call.type) == ("c1", "f", "{}", "function")


def test_a_length_finish_after_tool_calls_is_kept() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, id="c", name="f", arguments='{"a"')]))
    chunk = acc.add(ChatChunk(finish_reason="length"))
    assert chunk.finish_reason == "length"
    assert acc.response("p", "m").finish_reason == "length"


def test_legacy_function_call_fragments() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(function_call=ToolCallDelta(index=0, name="lookup", arguments='{"q": ')))
    acc.add(ChatChunk(function_call=ToolCallDelta(index=0, arguments='"x"}')))
    acc.add(ChatChunk(finish_reason="function_call"))
    reply = acc.response("p", "m")
    assert acc.in_tool_call and acc.has_content
    assert reply.function_call is not None
    assert (reply.function_call.name, reply.function_call.arguments) == ("lookup", '{"q": "x"}')
    assert reply.tool_calls == [] and reply.finish_reason == "function_call"
    assert acc.delivered_text() == 'lookup{"q": "x"}'


def test_role_only_chunks_are_not_content() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text=""))
    acc.add(ChatChunk(text=None, model="m"))
    assert not acc.has_content and not acc.in_tool_call
    assert acc.response("p", "m").choices[0].text == ""


def test_the_first_chunks_time_and_the_deadline() -> None:
    clock = FakeClock(start=100.0)
    acc = Accumulator(clock, deadline=105.0)
    clock.advance(1)
    acc.add(ChatChunk(text="a"))
    clock.advance(4)  # exactly at the deadline: still in time
    acc.add(ChatChunk(text="b"))
    assert acc.first == 101.0
    clock.advance(0.5)
    with pytest.raises(APITimeoutError) as raised:
        acc.add(ChatChunk(text="c"))
    assert raised.value.message == "the call's deadline passed while the stream was still sending"
    assert acc.text() == "ab"


def test_no_clock_no_first_time() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text="a"))
    assert acc.first is None


def test_restart_keeps_the_text_and_forgets_the_pieces_usage_and_finish() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text="Once upon"))
    acc.add(ChatChunk(usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3), finish_reason="stop"))
    acc.restart()
    assert acc.usage is None and acc.finish == {} and acc.piece_text() == ""
    acc.add(ChatChunk(text=" a time"))
    assert acc.piece_text() == " a time"
    assert acc.response("p", "m").text == "Once upon a time"


def test_a_clock_without_a_deadline_notes_only_the_first_chunks_time() -> None:
    clock = FakeClock(start=100.0)
    acc = Accumulator(clock)
    clock.advance(2)
    acc.add(ChatChunk(text="a"))
    clock.advance(1e6)  # no deadline: a slow stream is never cut
    acc.add(ChatChunk(text="b"))
    assert acc.first == 102.0 and acc.text() == "ab"


def test_the_piece_text_is_all_the_text_before_any_restart() -> None:
    acc = Accumulator()
    assert (acc.mark, acc.piece_text()) == (0, "")
    acc.add(ChatChunk(text="abc"))
    acc.add(ChatChunk(text="d", index=1))
    assert acc.piece_text() == "abcd" and acc.delivered_text() == "abcd"
    acc.restart()
    assert acc.mark == 4


def test_fragments_without_an_id_or_a_name_keep_them_empty() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, arguments="{}")]))
    acc.add(ChatChunk(function_call=ToolCallDelta(index=0, arguments="[]")))
    assert acc.tools == {0: {0: {"id": "", "name": "", "args": "{}", "type": "function"}}}
    assert acc.legacy == {0: {"name": "", "args": "[]"}}
    assert acc.delivered_text() == "{}[]"


def test_an_empty_stream_is_one_empty_choice() -> None:
    acc = Accumulator()
    assert (acc.has_content, acc.in_tool_call, acc.usage, acc.model) == (False, False, None, None)
    reply = acc.response("p", "m")
    assert [(c.index, c.text, c.finish_reason, c.tool_calls, c.function_call) for c in reply.choices] == [
        (0, "", None, [], None)
    ]
    assert (reply.text, reply.finish_reason, reply.tool_calls, reply.function_call) == ("", None, [], None)
    assert (reply.cost, reply.attempts, reply.id, reply.request_id) == (None, [], None, None)


def test_tool_calls_of_a_second_choice_and_their_order() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(text="plain"))
    acc.add(ChatChunk(index=1, tool_calls=[ToolCallDelta(index=1, id="c2", name="g", arguments="{}")]))
    acc.add(ChatChunk(index=1, tool_calls=[ToolCallDelta(index=0, id="c1", name="f", arguments="{}")]))
    first = acc.add(ChatChunk(finish_reason="stop"))
    second = acc.add(ChatChunk(index=1, finish_reason="stop"))
    assert (first.finish_reason, second.finish_reason) == ("stop", "tool_calls")
    reply = acc.response("p", "m")
    plain, called = reply.choices
    assert (plain.finish_reason, plain.tool_calls) == ("stop", [])
    assert called.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in called.tool_calls] == [("c1", "f"), ("c2", "g")]  # by fragment index
    assert reply.tool_calls == [] and reply.finish_reason == "stop"


def test_tool_calls_without_a_finish_reason_finish_as_tool_calls() -> None:
    acc = Accumulator()
    acc.add(ChatChunk(tool_calls=[ToolCallDelta(index=0, id="c", name="f", arguments="{}")]))
    reply = acc.response("p", "m")  # the server sent no finish reason
    assert (reply.finish_reason, reply.choices[0].finish_reason) == ("tool_calls", "tool_calls")
