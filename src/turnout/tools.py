"""Tools the model may call, defined once and sent in each provider's form.

A `Tool` is built from a plain Python function (its signature becomes the JSON schema of the
parameters, its docstring the descriptions), from a pydantic model, or from a raw JSON schema.
``client.chat(tools=[...])`` takes any of these, and raw OpenAI-style dicts are sent unchanged.

Example:
    ```python
    from turnout.tools import tool

    @tool
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        \"\"\"Current weather in a city (the docstring's Args section describes the parameters).\"\"\"
        return f"18 {unit} and sunny in {city}"

    reply = client.chat("fast", "Weather in Paris?", tools=[get_weather])
    for call in reply.tool_calls:
        print(call.name, call.args)  # get_weather {'city': 'Paris'}
    ```
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeAlias, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from ._docstrings import parse_docstring
from .errors import InvalidArgumentError, ToolArgumentsError
from .types import JSONObject, ToolCall

__all__ = ["Tool", "ToolInput", "as_tool", "tool", "tool_definitions"]

ToolInput: TypeAlias = "Tool | Callable[..., Any] | type[BaseModel] | Mapping[str, Any]"
"""What ``tools=`` takes: a `Tool`, a function, a pydantic model class, or an OpenAI-style tool dict."""

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_EMPTY: JSONObject = {"type": "object", "properties": {}}


class _NoTitles(GenerateJsonSchema):
    """pydantic's JSON schema without the ``title`` of every property and model (noise to a model)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        del schema
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        value = super().model_schema(schema)
        value.pop("title", None)
        return value


class Tool(BaseModel):
    """A function the model may call: its name, description and JSON-schema parameters.

    Build one with `tool` / `Tool.from_function`, `Tool.from_model` or `Tool.from_schema`.
    ``function`` (not sent) is what `Client.run_tools` runs; a tool without one can be offered
    but not run. Calling the tool calls the function.

    Attributes:
        name: the name the model calls it by (letters, digits, ``_`` and ``-``; at most 64).
        description: what it does, for the model.
        parameters: the JSON schema of its arguments (an object).
        strict: OpenAI's ``strict`` flag (the schema must then list every property as required).
        function: the Python callable to run (sync or async).
        arguments_model: the pydantic model the arguments are validated against, if any.
        takes_model: call ``function`` with the validated model instead of keyword arguments.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, arbitrary_types_allowed=True, extra="forbid")

    name: str
    description: str | None = None
    parameters: JSONObject = Field(default_factory=lambda: dict(_EMPTY))
    strict: bool | None = None
    function: Callable[..., Any] | None = Field(default=None, exclude=True, repr=False)
    arguments_model: type[BaseModel] | None = Field(default=None, exclude=True, repr=False)
    takes_model: bool = Field(default=False, exclude=True, repr=False)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        """Check the name the way OpenAI does, so a bad one fails before anything is sent."""
        if not _NAME.match(name):
            raise ValueError(f"tool name {name!r} is invalid: use 1-64 letters, digits, '_' or '-' (pass name=...)")
        return name

    @classmethod
    def _build(cls, **values: Any) -> Tool:
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False))
            raise InvalidArgumentError(problems) from None

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """A tool from a function's signature (types, defaults) and docstring.

        The docstring's first paragraph is the description; a Google-style ``Args:`` or numpy-style
        ``Parameters`` section gives the parameters' descriptions (``Annotated[..., Field(...)]``
        works too). Unknown arguments are refused (``additionalProperties: false``).

        Raises:
            InvalidArgumentError: the function takes ``*args`` / ``**kwargs``, or its name is not a valid tool name.
        """
        summary, documented = parse_docstring(inspect.getdoc(function))
        model = _arguments_model(function, documented)
        parameters = model.model_json_schema(schema_generator=_NoTitles)
        parameters.pop("description", None)
        return cls._build(
            name=name or str(getattr(function, "__name__", "")),
            description=description if description is not None else summary,
            parameters=parameters,
            strict=strict,
            function=function,
            arguments_model=model,
        )

    @classmethod
    def from_model(
        cls,
        model: type[BaseModel],
        *,
        name: str | None = None,
        description: str | None = None,
        function: Callable[[Any], Any] | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """A tool whose arguments are ``model``: the model's docstring is the description.

        Args:
            model: a pydantic model class.
            name: the tool name (default: the class name).
            description: what it does (default: the class docstring's first paragraph).
            function: called with the validated model instance by `Client.run_tools`.
            strict: OpenAI's ``strict`` flag.
        """
        parameters = model.model_json_schema(schema_generator=_NoTitles)
        doc = parameters.pop("description", None)
        summary = parse_docstring(doc)[0] if isinstance(doc, str) else None
        return cls._build(
            name=name or model.__name__,
            description=description if description is not None else summary,
            parameters=parameters,
            strict=strict,
            function=function,
            arguments_model=model,
            takes_model=True,
        )

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any], *, function: Callable[..., Any] | None = None) -> Tool:
        """A tool from an OpenAI tool dict (``{"type": "function", "function": {...}}``) or its inner part.

        Arguments are parsed from JSON but not validated; ``function`` gets them as keyword arguments.

        Raises:
            InvalidArgumentError: the dict is not a function tool.
        """
        spec = schema.get("function", schema) if schema.get("type", "function") == "function" else None
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise InvalidArgumentError(
                f"not a function tool: {dict(schema)!r}; expected {{'type': 'function', 'function': {{'name': ...}}}}"
            )
        return cls._build(
            name=spec["name"],
            description=spec.get("description"),
            parameters=dict(spec.get("parameters") or _EMPTY),
            strict=spec.get("strict"),
            function=function,
        )

    # -- sending ----------------------------------------------------------------------------------

    def definition(self) -> JSONObject:
        """The tool as OpenAI's ``tools`` entry, the shape every provider is sent."""
        function: JSONObject = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}

    # -- running ----------------------------------------------------------------------------------

    @property
    def is_async(self) -> bool:
        """Whether ``function`` is a coroutine function."""
        return self.function is not None and inspect.iscoroutinefunction(self.function)

    def parse(self, call: ToolCall) -> Any:
        """The call's arguments, validated: an ``arguments_model`` instance, or a dict without one.

        Raises:
            ToolArgumentsError: the arguments are not a JSON object or do not fit the parameters.
        """
        raw = call.arguments_json()
        if self.arguments_model is None:
            return raw
        try:
            return self.arguments_model.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ToolArgumentsError(
                f"the arguments the model wrote for tool {self.name!r} do not fit its parameters: {problems}",
                tool=self.name,
                call_id=call.id,
                arguments=call.arguments,
            ) from None

    def invoke(self, call: ToolCall) -> Any:
        """Run ``function`` with the call's arguments; returns what it returns (an awaitable if it is async).

        Raises:
            InvalidArgumentError: the tool has no function.
            ToolArgumentsError: the arguments are not valid for it.
        """
        if self.function is None:
            raise InvalidArgumentError(f"tool {self.name!r} has no function to run (build it with function=...)")
        parsed = self.parse(call)
        if self.takes_model:
            return self.function(parsed)
        if isinstance(parsed, BaseModel):
            args, kwargs = _split_arguments(self.function, parsed)
            return self.function(*args, **kwargs)
        return self.function(**parsed)

    async def ainvoke(self, call: ToolCall) -> Any:
        """`invoke`, awaiting the result when the function is async."""
        result = self.invoke(call)
        if inspect.isawaitable(result):
            return await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, as if it were not a tool."""
        if self.function is None:
            raise TypeError(f"tool {self.name!r} has no function")
        return self.function(*args, **kwargs)


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, strict: bool | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator: turn a function into a `Tool` (``@tool`` or ``@tool(name=..., strict=True)``).

    The result is still callable like the function. See `Tool.from_function`.
    """
    if function is not None:
        return Tool.from_function(function, name=name, description=description, strict=strict)
    return lambda f: Tool.from_function(f, name=name, description=description, strict=strict)


def as_tool(value: ToolInput) -> Tool:
    """Turn anything ``tools=`` accepts into a `Tool`.

    Raises:
        InvalidArgumentError: ``value`` is none of a `Tool`, a function, a model class or a tool dict.
    """
    if isinstance(value, Tool):
        return value
    if isinstance(value, Mapping):
        return Tool.from_schema(value)
    if isinstance(value, type) and issubclass(value, BaseModel):
        return Tool.from_model(value)
    if callable(value):
        return Tool.from_function(value)
    raise InvalidArgumentError(f"tools: {value!r} is not a Tool, a function, a pydantic model class or a tool dict")


def tool_definitions(tools: Sequence[ToolInput]) -> list[JSONObject]:
    """The ``tools`` list sent to the provider: raw dicts as given, everything else as `Tool.definition`.

    Raises:
        InvalidArgumentError: an item cannot be a tool, or two tools share a name.
    """
    definitions = [dict(t) if isinstance(t, Mapping) else as_tool(t).definition() for t in tools]
    names = [d.get("function", {}).get("name") for d in definitions if d.get("type") == "function"]
    duplicates = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
    if duplicates:
        raise InvalidArgumentError(f"tools: more than one tool is named {', '.join(map(repr, duplicates))}")
    return definitions


# -- functions -> argument models ---------------------------------------------------------------------

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _arguments_model(function: Callable[..., Any], documented: Mapping[str, str]) -> type[BaseModel]:
    """A pydantic model of the function's parameters (fields ``p0``, ``p1``... aliased to the names)."""
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise InvalidArgumentError(f"cannot read the signature of {function!r} to make a tool: {exc}") from exc
    fields: dict[str, Any] = {}
    for position, parameter in enumerate(signature.parameters.values()):
        if parameter.kind in _VARIADIC:
            raise InvalidArgumentError(
                f"tool {getattr(function, '__name__', function)!r}: *args / **kwargs cannot be described "
                "to a model; name each parameter"
            )
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        annotation = hints.get(parameter.name, Any)
        described = any(getattr(m, "description", None) for m in getattr(annotation, "__metadata__", ()))
        if parameter.name in documented and not described:  # Annotated[..., Field(description=...)] wins
            annotation = Annotated[annotation, Field(description=documented[parameter.name])]
        fields[f"p{position}"] = (annotation, Field(default, alias=parameter.name))
    name = getattr(function, "__name__", "tool")
    model: type[BaseModel] = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model


def _split_arguments(function: Callable[..., Any], parsed: BaseModel) -> tuple[list[Any], dict[str, Any]]:
    """Positional-only parameters by position, the rest by keyword."""
    values = {field.alias: getattr(parsed, key) for key, field in type(parsed).model_fields.items()}
    args, kwargs = [], {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name not in values:
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            args.append(values[parameter.name])
        else:
            kwargs[parameter.name] = values[parameter.name]
    return args, kwargs
