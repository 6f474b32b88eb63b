"""turnout: one typed client for OpenAI, hosted Llama 2 and local vLLM.

Names are imported on first use, so ``import turnout`` stays fast.

Example:
    ```python
    import turnout

    client = turnout.Client.from_config("turnout.toml")
    reply = client.chat(model="fast", messages="Hello")
    print(reply.text, reply.provider, reply.cost)
    ```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._compare import CompareResult, ModelResult, PromptItem, acompare, compare
    from ._tool_run import ToolRun
    from .async_client import AsyncClient
    from .client import Client
    from .config import Config, ModelRoute, Price, ProviderConfig, load_config
    from .cost.budgets import Budget, BudgetStatus
    from .cost.estimate import CostEstimate, TargetEstimate
    from .cost.prices import CostUnknownWarning
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .errors import (
        AllTargetsFailedError,
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        CircuitOpenError,
        ClientClosedError,
        ConfigError,
        ContentFilterError,
        ContextWindowExceededError,
        EmbeddingsNotSupportedError,
        InvalidArgumentError,
        LocalRateLimitError,
        NotFoundError,
        OutputValidationError,
        ProviderError,
        QuotaExceededError,
        RateLimitError,
        RedirectError,
        ResponseValidationError,
        ServerError,
        StreamInterruptedError,
        StreamTimeoutError,
        ToolArgumentsError,
        ToolCallError,
        ToolRoundsExceededError,
        TurnoutError,
        UnsupportedFeatureError,
    )
    from .events import AttemptFinished, AttemptStarted, CallFinished, CallStarted, RetryScheduled, StreamAbandoned
    from .money import USD, Cost, Usage
    from .options import ProviderOptions, TGIGrammar, TGIOptions, VLLMOptions, VLLMStructuredOutputs
    from .policies.breaker import TargetHealth
    from .provider import Provider
    from .streaming import AsyncChatStream, ChatStream
    from .tools import Tool, tool
    from .types import (
        Attempt,
        ChatChunk,
        ChatRequest,
        ChatResponse,
        Choice,
        CustomToolCall,
        FunctionCall,
        Message,
        ToolCall,
        ToolCallDelta,
    )

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AsyncChatStream",
    "AsyncClient",
    "Attempt",
    "AttemptFinished",
    "AttemptStarted",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "CallFinished",
    "CallStarted",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "Choice",
    "CircuitOpenError",
    "Client",
    "ClientClosedError",
    "CompareResult",
    "Config",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "Cost",
    "CostEstimate",
    "CostUnknownWarning",
    "CustomToolCall",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingsNotSupportedError",
    "FunctionCall",
    "InvalidArgumentError",
    "LocalRateLimitError",
    "Message",
    "ModelResult",
    "ModelRoute",
    "NotFoundError",
    "OutputValidationError",
    "Price",
    "PromptItem",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderOptions",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "RetryScheduled",
    "ServerError",
    "StreamAbandoned",
    "StreamInterruptedError",
    "StreamTimeoutError",
    "TGIGrammar",
    "TGIOptions",
    "TargetEstimate",
    "TargetHealth",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallError",
    "ToolRoundsExceededError",
    "ToolRun",
    "TurnoutError",
    "USD",
    "UnsupportedFeatureError",
    "Usage",
    "VLLMOptions",
    "VLLMStructuredOutputs",
    "__version__",
    "acompare",
    "compare",
    "load_config",
    "tool",
]

_HOMES = {
    "_compare": ("CompareResult", "ModelResult", "PromptItem", "acompare", "compare"),
    "cost.estimate": ("CostEstimate", "TargetEstimate"),
    "cost.budgets": ("Budget", "BudgetStatus"),
    "async_client": ("AsyncClient",),
    "client": ("Client",),
    "config": ("Config", "ModelRoute", "Price", "ProviderConfig", "load_config"),
    "embeddings": ("EmbeddingRequest", "EmbeddingResponse"),
    "errors": (
        "APIConnectionError",
        "APIStatusError",
        "APITimeoutError",
        "AllTargetsFailedError",
        "AuthenticationError",
        "BadRequestError",
        "BudgetExceededError",
        "CircuitOpenError",
        "ClientClosedError",
        "ConfigError",
        "ContentFilterError",
        "ContextWindowExceededError",
        "EmbeddingsNotSupportedError",
        "InvalidArgumentError",
        "LocalRateLimitError",
        "NotFoundError",
        "OutputValidationError",
        "ProviderError",
        "QuotaExceededError",
        "RateLimitError",
        "RedirectError",
        "ResponseValidationError",
        "ServerError",
        "StreamInterruptedError",
        "StreamTimeoutError",
        "ToolArgumentsError",
        "ToolCallError",
        "ToolRoundsExceededError",
        "TurnoutError",
        "UnsupportedFeatureError",
    ),
    "events": ("AttemptFinished", "AttemptStarted", "CallFinished", "CallStarted", "RetryScheduled", "StreamAbandoned"),
    "money": ("Cost", "USD", "Usage"),
    "options": ("ProviderOptions", "TGIGrammar", "TGIOptions", "VLLMOptions", "VLLMStructuredOutputs"),
    "policies.breaker": ("TargetHealth",),
    "cost.prices": ("CostUnknownWarning",),
    "provider": ("Provider",),
    "streaming": ("AsyncChatStream", "ChatStream"),
    "_tool_run": ("ToolRun",),
    "tools": ("Tool", "tool"),
    "types": (
        "Attempt",
        "ChatChunk",
        "ChatRequest",
        "ChatResponse",
        "Choice",
        "CustomToolCall",
        "FunctionCall",
        "Message",
        "ToolCall",
        "ToolCallDelta",
    ),
}
"""The public names and the module each lives in: the one table. tests/test_exports.py checks that
``__all__`` and the ``TYPE_CHECKING`` imports above say exactly the same (type checkers need both
written out)."""
_LOCATION = {name: module for module, names in _HOMES.items() for name in names}
_SUBMODULES = frozenset({"cost", "events", "testing"})


def __getattr__(name: str) -> Any:
    module = _LOCATION.get(name)
    if module is None:
        if name in _SUBMODULES:  # `turnout.events.CallFinished` without importing turnout.events first
            return importlib.import_module(f"turnout.{name}")
        raise AttributeError(f"module 'turnout' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"turnout.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
