"""The OpenTelemetry semantic-convention names turnout's telemetry uses.

Each name is taken from the ``opentelemetry-semantic-conventions`` package when the application
has it installed (so turnout follows the version the application chose), else it is the value
pinned here, from semantic conventions 1.44.0
(<https://opentelemetry.io/docs/specs/semconv/gen-ai/>, package 0.66b2). Imported only when
telemetry is on.
"""

from __future__ import annotations

import importlib
from typing import Final

__all__ = ["SEMCONV_VERSION", "names"]

SEMCONV_VERSION: Final = "1.44.0"

_PINNED: Final = {
    "GEN_AI_OPERATION_NAME": "gen_ai.operation.name",
    "GEN_AI_PROVIDER_NAME": "gen_ai.provider.name",
    "GEN_AI_REQUEST_MODEL": "gen_ai.request.model",
    "GEN_AI_REQUEST_TEMPERATURE": "gen_ai.request.temperature",
    "GEN_AI_REQUEST_TOP_P": "gen_ai.request.top_p",
    "GEN_AI_REQUEST_MAX_TOKENS": "gen_ai.request.max_tokens",
    "GEN_AI_REQUEST_STOP_SEQUENCES": "gen_ai.request.stop_sequences",
    "GEN_AI_REQUEST_SEED": "gen_ai.request.seed",
    "GEN_AI_REQUEST_CHOICE_COUNT": "gen_ai.request.choice.count",
    "GEN_AI_REQUEST_STREAM": "gen_ai.request.stream",
    "GEN_AI_EMBEDDINGS_DIMENSION_COUNT": "gen_ai.embeddings.dimension.count",
    "GEN_AI_RESPONSE_MODEL": "gen_ai.response.model",
    "GEN_AI_RESPONSE_ID": "gen_ai.response.id",
    "GEN_AI_RESPONSE_FINISH_REASONS": "gen_ai.response.finish_reasons",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK": "gen_ai.response.time_to_first_chunk",
    "GEN_AI_USAGE_INPUT_TOKENS": "gen_ai.usage.input_tokens",
    "GEN_AI_USAGE_OUTPUT_TOKENS": "gen_ai.usage.output_tokens",
    "GEN_AI_INPUT_MESSAGES": "gen_ai.input.messages",
    "GEN_AI_OUTPUT_MESSAGES": "gen_ai.output.messages",
    "GEN_AI_TOKEN_TYPE": "gen_ai.token.type",
    "SERVER_ADDRESS": "server.address",
    "SERVER_PORT": "server.port",
    "ERROR_TYPE": "error.type",
    "GEN_AI_CLIENT_TOKEN_USAGE": "gen_ai.client.token.usage",
    "GEN_AI_CLIENT_OPERATION_DURATION": "gen_ai.client.operation.duration",
    "GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK": "gen_ai.client.operation.time_to_first_chunk",
}

_MODULES: Final = (
    "opentelemetry.semconv._incubating.attributes.gen_ai_attributes",
    "opentelemetry.semconv._incubating.metrics.gen_ai_metrics",
    "opentelemetry.semconv.attributes.server_attributes",
    "opentelemetry.semconv.attributes.error_attributes",
)


def names() -> dict[str, str]:
    """Every name turnout uses, keyed by its constant's name in the conventions package."""
    found = dict(_PINNED)
    for path in _MODULES:
        try:
            module = importlib.import_module(path)
        except ImportError:
            continue
        for key in found:
            value = getattr(module, key, None)
            if isinstance(value, str):
                found[key] = value
    return found
