"""Deprecated: vLLM throughput measurement moved to `turnout.providers.vllm_throughput` (alias until 0.3.0)."""

import warnings

from .providers.vllm_throughput import (
    Throughput,
    ameasure_vllm_throughput,
    measure_vllm_throughput,
    parse_vllm_counters,
)

__all__ = ["Throughput", "ameasure_vllm_throughput", "measure_vllm_throughput", "parse_vllm_counters"]

warnings.warn("turnout.throughput is now turnout.providers.vllm_throughput", DeprecationWarning, stacklevel=2)
