"""Every default number turnout uses, in one place."""

from __future__ import annotations

__all__ = [
    "CONFIG_ENV_VAR",
    "CONFIG_FILENAME",
    "CONNECT_TIMEOUT",
    "BATCH_DISCOUNT",
    "MAX_CACHE_TTL",
    "MAX_CONNECTIONS",
    "MAX_KEEPALIVE_CONNECTIONS",
    "MAX_TIMEOUT",
    "TIMEOUT",
    "VLLM_BASE_URL",
    "OPENAI_BASE_URL",
]

#: Seconds to wait on each network step (read, write, pool), as httpx2 counts it; the openai SDK uses 600 too.
TIMEOUT = 600.0
#: The longest timeout or deadline accepted, in seconds (one day); more overflows the clocks' arithmetic.
MAX_TIMEOUT = 86_400.0
#: The longest response cache ttl accepted, in seconds (a year).
MAX_CACHE_TTL = 365 * 86_400.0
#: What a provider's batch API charges, as a fraction of its price, where the catalogue has no batch price
#: (OpenAI's Batch API: "50% lower costs", https://platform.openai.com/docs/guides/batch).
BATCH_DISCOUNT = 0.5
#: Seconds to establish a connection.
CONNECT_TIMEOUT = 5.0
#: Connection pool size per provider.
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 100

OPENAI_BASE_URL = "https://api.openai.com/v1"
VLLM_BASE_URL = "http://127.0.0.1:8000/v1"

#: File name `Client()` looks for in the working directory.
CONFIG_FILENAME = "turnout.toml"
#: Environment variable naming a config file.
CONFIG_ENV_VAR = "TURNOUT_CONFIG"
