"""Tool definitions (turnout.tools) and the typed accessors of `ToolCall`: no I/O here.

Tool calling over HTTP, on every provider, is in tests/providers/test_tool_calling.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

import turnout
from turnout.tools import Tool, as_tool, tool, tool_definitions
from turnout.types import FunctionCall, ToolCall, tool_call_id


def _call(name: str, arguments: str, id: str = "call_1") -> ToolCall:
    return ToolCall(id=id, function=FunctionCall(name=name, arguments=arguments))


@tool
def get_weather(city: str, unit: Literal["C", "F"] = "C", days: int = 1) -> str:
    """Current weather in a city,
    for today or a few days.

    Args:
        city: the city's name,
            e.g. "Paris".
        unit (str): degrees Celsius or Fahrenheit.

    Returns:
        A sentence.
    """
    return f"{days}d {unit} {city}"


def test_a_function_becomes_a_tool_with_its_schema_and_descriptions() -> None:
    assert get_weather.definition() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city, for today or a few days.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": 'the city\'s name, e.g. "Paris".'},
                    "unit": {
                        "type": "string",
                        "enum": ["C", "F"],
                        "default": "C",
                        "description": "degrees Celsius or Fahrenheit.",
                    },
                    "days": {"type": "integer", "default": 1},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }


def test_the_decorated_function_is_still_callable() -> None:
    assert get_weather("Oslo", days=2) == "2d C Oslo"
    assert isinstance(get_weather, Tool) and get_weather.function is not None


def test_numpy_docstrings_positional_only_and_annotated_descriptions() -> None:
    def lookup(key: Annotated[str, Field(description="from Annotated")], /, limit: int, *, exact: bool = False) -> Any:
        """Look a key up.

        Parameters
        ----------
        key : str
            ignored: Annotated wins
        limit : int
            how many
            results at most

        Returns
        -------
        list
        """
        return [key, limit, exact]

    made = Tool.from_function(lookup, name="find", strict=True)
    spec = made.definition()["function"]
    assert spec["name"] == "find" and spec["strict"] is True and spec["description"] == "Look a key up."
    props = spec["parameters"]["properties"]
    assert props["key"]["description"] == "from Annotated"
    assert props["limit"] == {"type": "integer", "description": "how many results at most"}
    assert made.invoke(_call("find", '{"key": "k", "limit": "3", "exact": true}')) == ["k", 3, True]


def test_arguments_are_validated_against_the_signature() -> None:
    with pytest.raises(
        turnout.ToolArgumentsError, match=r"tool 'get_weather' do not fit its parameters: city: Field required"
    ) as info:
        get_weather.invoke(_call("get_weather", '{"unit": "C"}'))
    assert info.value.tool == "get_weather" and info.value.call_id == "call_1"
    with pytest.raises(turnout.ToolArgumentsError, match="unit: Input should be 'C' or 'F'"):
        get_weather.invoke(_call("get_weather", '{"city": "x", "unit": "K"}'))
    with pytest.raises(turnout.ToolArgumentsError, match="surprise: Extra inputs are not permitted"):
        get_weather.invoke(_call("get_weather", '{"city": "x", "surprise": 1}'))


class Person(BaseModel):
    """A person to add to the address book.

    Only the first paragraph is the description.
    """

    name: str
    age: int = Field(default=0, description="in years")


def test_a_pydantic_model_becomes_a_tool_and_its_calls_parse_into_it() -> None:
    added: list[Person] = []
    made = Tool.from_model(Person, name="add_person", function=added.append)
    assert made.definition() == {
        "type": "function",
        "function": {
            "name": "add_person",
            "description": "A person to add to the address book.",
            "parameters": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "default": 0, "description": "in years"},
                },
                "required": ["name"],
            },
        },
    }
    made.invoke(_call("add_person", '{"name": "Ada", "age": 36}'))
    assert added == [Person(name="Ada", age=36)]
    assert as_tool(Person).name == "Person" and as_tool(Person).parse(_call("Person", '{"name": "B"}')) == Person(
        name="B"
    )


def test_raw_dicts_are_sent_unchanged_and_can_become_tools() -> None:
    raw = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}, "x-extra": 1}}
    assert tool_definitions([raw, get_weather]) == [raw, get_weather.definition()]
    made = Tool.from_schema(raw, function=lambda **kw: kw)
    assert made.name == "ping" and made.invoke(_call("ping", '{"a": 1}')) == {"a": 1}
    with pytest.raises(turnout.InvalidArgumentError, match="not a function tool"):
        Tool.from_schema({"type": "custom", "name": "x"})


def test_bad_tools_fail_before_sending() -> None:
    with pytest.raises(turnout.InvalidArgumentError, match="more than one tool is named 'get_weather'"):
        tool_definitions([get_weather, get_weather])
    with pytest.raises(turnout.InvalidArgumentError, match="tool name 'two words' is invalid"):
        Tool.from_function(len, name="two words")

    def variadic(*args: int) -> None:
        del args

    with pytest.raises(turnout.InvalidArgumentError, match=r"\*args / \*\*kwargs"):
        Tool.from_function(variadic)
    with pytest.raises(turnout.InvalidArgumentError, match="is not a Tool, a function"):
        as_tool(42)  # type: ignore[arg-type]


def test_async_functions_are_awaited_by_ainvoke() -> None:
    @tool(description="Add.")
    async def add(a: int, b: int) -> int:
        return a + b

    assert add.is_async and add.description == "Add."
    assert asyncio.run(add.ainvoke(_call("add", '{"a": 2, "b": 3}'))) == 5


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"city": "Paris"}', {"city": "Paris"}), ("", {}), ("  ", {}), ('{"a": {"b": [1]}}', {"a": {"b": [1]}})],
)
def test_tool_call_accessors(arguments: str, expected: dict[str, Any]) -> None:
    call = _call("get_weather", arguments)
    assert call.name == "get_weather" and call.arguments == arguments
    assert call.args == expected and call.arguments_json() == expected


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [('{"city": "Par', "not valid JSON"), ("[1, 2]", "a JSON list, not an object"), ("null", "a JSON NoneType")],
)
def test_invalid_arguments_raise_a_typed_error_naming_the_tool(arguments: str, problem: str) -> None:
    with pytest.raises(turnout.ToolArgumentsError, match=f"for tool 'get_weather' are {problem}") as info:
        _call("get_weather", arguments).arguments_json()
    assert info.value.tool == "get_weather" and info.value.arguments == arguments
    assert isinstance(info.value, ValueError) and isinstance(info.value, turnout.ToolCallError)


def test_generated_ids_are_stable_and_distinct() -> None:
    one = tool_call_id(0, "f", '{"a": 1}')
    assert one == tool_call_id(0, "f", '{"a": 1}') and one.startswith("call_")
    assert len({one, tool_call_id(1, "f", '{"a": 1}'), tool_call_id(0, "g", '{"a": 1}')}) == 3
    assert json.loads(json.dumps(one)) == one
