"""Every default number turnout uses, in one place."""

from __future__ import annotations

__all__ = [
    "CONFIG_ENV_VAR",
    "CONFIG_FILENAME",
    "CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_KEEPALIVE_CONNECTIONS",
    "MAX_RETRY_AFTER",
    "TIMEOUT",
    "VLLM_BASE_URL",
    "OPENAI_BASE_URL",
]

#: Total seconds a request may take (the openai SDK's default is the same 600 s).
TIMEOUT = 600.0
#: Seconds to establish a connection.
CONNECT_TIMEOUT = 5.0
#: Connection pool size per provider.
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 100
#: A server's Retry-After is believed up to this many seconds (openai-python >= 2.52 uses 120).
MAX_RETRY_AFTER = 120.0

OPENAI_BASE_URL = "https://api.openai.com/v1"
VLLM_BASE_URL = "http://127.0.0.1:8000/v1"

#: File name `Client()` looks for in the working directory.
CONFIG_FILENAME = "turnout.toml"
#: Environment variable naming a config file.
CONFIG_ENV_VAR = "TURNOUT_CONFIG"
