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
    from ._estimate import CostEstimate, TargetEstimate
    from ._tool_run import ToolRun
    from .budget import Budget, BudgetStatus
    from .client import AsyncClient, Client
    from .config import Config, ModelRoute, Price, ProviderConfig, load_config
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .errors import (
        AllTargetsFailedError,
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        ClientClosedError,
        ConfigError,
        ContextWindowExceededError,
        EmbeddingsNotSupportedError,
        InvalidArgumentError,
        NotFoundError,
        OutputValidationError,
        ProviderError,
        QuotaExceededError,
        RateLimitError,
        RedirectError,
        ResponseValidationError,
        ServerError,
        StreamInterruptedError,
        ToolArgumentsError,
        ToolCallError,
        ToolRoundsExceededError,
        TurnoutError,
        UnsupportedFeatureError,
    )
    from .options import ProviderOptions, TGIGrammar, TGIOptions, VLLMOptions, VLLMStructuredOutputs
    from .pricing import CostUnknownWarning
    from .provider import Provider
    from .streaming import AsyncChatStream, ChatStream
    from .tools import Tool, tool
    from .types import (
        Attempt,
        ChatChunk,
        ChatRequest,
        ChatResponse,
        Choice,
        Cost,
        FunctionCall,
        Message,
        ToolCall,
        ToolCallDelta,
        Usage,
    )

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AsyncChatStream",
    "AsyncClient",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "Choice",
    "CircuitOpenError",
    "Client",
    "ClientClosedError",
    "Config",
    "ConfigError",
    "ContextWindowExceededError",
    "Cost",
    "CostEstimate",
    "CostUnknownWarning",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingsNotSupportedError",
    "FunctionCall",
    "InvalidArgumentError",
    "Message",
    "ModelRoute",
    "NotFoundError",
    "OutputValidationError",
    "Price",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderOptions",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "ServerError",
    "StreamInterruptedError",
    "TGIGrammar",
    "TGIOptions",
    "TargetEstimate",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallError",
    "ToolRoundsExceededError",
    "ToolRun",
    "TurnoutError",
    "UnsupportedFeatureError",
    "Usage",
    "VLLMOptions",
    "VLLMStructuredOutputs",
    "__version__",
    "load_config",
    "tool",
]

_HOMES = {
    "_estimate": ("CostEstimate", "TargetEstimate"),
    "budget": ("Budget", "BudgetStatus"),
    "client": ("AsyncClient", "Client"),
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
        "ContextWindowExceededError",
        "EmbeddingsNotSupportedError",
        "InvalidArgumentError",
        "NotFoundError",
        "OutputValidationError",
        "ProviderError",
        "QuotaExceededError",
        "RateLimitError",
        "RedirectError",
        "ResponseValidationError",
        "ServerError",
        "StreamInterruptedError",
        "ToolArgumentsError",
        "ToolCallError",
        "ToolRoundsExceededError",
        "TurnoutError",
        "UnsupportedFeatureError",
    ),
    "options": ("ProviderOptions", "TGIGrammar", "TGIOptions", "VLLMOptions", "VLLMStructuredOutputs"),
    "pricing": ("CostUnknownWarning",),
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
        "Cost",
        "FunctionCall",
        "Message",
        "ToolCall",
        "ToolCallDelta",
        "Usage",
    ),
}
_LOCATION = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LOCATION.get(name)
    if module is None:
        raise AttributeError(f"module 'turnout' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"turnout.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
