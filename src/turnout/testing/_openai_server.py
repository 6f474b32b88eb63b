"""`FakeServer`: an in-process OpenAI or vLLM server on 127.0.0.1 for tests (the wire: `_openai_handler`)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Literal, get_args

from turnout.testing._batches import Batches
from turnout.testing._embed import DEFAULT_DIMENSIONS
from turnout.testing._openai_handler import OpenAIHandler
from turnout.testing._script import Reply
from turnout.testing._scripted_server import RecordedRequest, ScriptedServer
from turnout.testing._wire import Flavor

__all__ = ["FakeServer"]

_DEFAULT_MODELS: dict[Flavor, str] = {"openai": "gpt-4o-mini", "vllm": "fake-model"}
#: `max_model_len` of a vllm-flavor server when none is given.
_VLLM_MAX_MODEL_LEN = 4096


class FakeServer(ScriptedServer):
    """An OpenAI or vLLM chat-completions server on 127.0.0.1, scripted with replies and faults.

    It speaks the real wire format over real HTTP/1.1 (keep-alive, SSE over chunked encoding) on
    daemon threads, so sync and async clients can use it at once. Scripted answers are consumed
    first-in first-out, one per chat request that passes validation; when none is left the server
    sends `default_reply` (by default an echo of the last user message).

    Example:
        ```python
        with FakeServer(flavor="vllm", models=["llama-2-7b"]) as server:
            server.enqueue(Fault.rate_limit(retry_after=1), Reply("Hello!"))
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            ...
            assert len(server.chat_requests) == 2
        ```

    Args:
        flavor: `"openai"` or `"vllm"`: which server's bodies, errors and extras to imitate.
        models: The served model ids. When given, other models get a 404; when `None`, any model
            is accepted and `/v1/models` lists one default ("gpt-4o-mini" or "fake-model").
        max_model_len: Context length in tokens. Prompt tokens plus `max_tokens` over it get the
            flavor's context-length error. `None`: no limit on openai, 4096 on vllm.
        api_key: If set, `/v1/...` requests need `Authorization: Bearer <api_key>`.
        default_reply: What to answer when no scripted item is queued; `None` echoes.
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
        runner: vllm flavour: `"generate"` (a chat model: `/v1/embeddings` is a 404) or
            `"pooling"` (an embedding model: `/v1/embeddings` answers, chat is a 404).
        ssl_context: A server-side context (`ssl.Purpose.CLIENT_AUTH`, with `load_cert_chain`):
            serve HTTPS; `url` then starts with `https://`.
    """

    def __init__(
        self,
        flavor: Flavor = "openai",
        *,
        models: Sequence[str] | None = None,
        max_model_len: int | None = None,
        api_key: str | None = None,
        default_reply: Reply | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        runner: Literal["generate", "pooling"] = "generate",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if flavor not in get_args(Flavor):
            raise ValueError(f"flavor must be 'openai' or 'vllm', not {flavor!r}")
        if models is not None and (isinstance(models, str) or not models):
            raise ValueError("models must be a non-empty sequence of model ids")
        super().__init__(api_key=api_key, default_reply=default_reply, host=host, port=port, ssl_context=ssl_context)
        self._flavor: Flavor = flavor
        #: vllm flavour: ``"pooling"`` serves ``/v1/embeddings`` and no chat (``vllm serve --runner pooling``).
        self.runner = runner
        #: Length of the vectors ``/v1/embeddings`` returns when the request sets no ``dimensions``.
        self.embedding_dimensions = DEFAULT_DIMENSIONS
        self._models = tuple(models) if models is not None else (_DEFAULT_MODELS[flavor],)
        self._any_model = models is None
        if max_model_len is None and flavor == "vllm":
            max_model_len = _VLLM_MAX_MODEL_LEN
        self._max_model_len = max_model_len
        #: openai flavour: uploaded files and batches of the Files and Batch APIs (`turnout.testing._batches`).
        self.batches = Batches()
        #: How often a batch is polled (``GET /v1/batches/{id}``) before it reads ``completed``.
        self.batch_polls = 1

    handler = OpenAIHandler

    def __repr__(self) -> str:
        return f"FakeServer(flavor={self._flavor!r}, {self._where()})"

    # -- addresses and configuration -------------------------------------------------------------

    @property
    def flavor(self) -> Flavor:
        """`"openai"` or `"vllm"`."""
        return self._flavor

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `url + "/v1"`: pass it to clients (vLLM's `/health`, `/tokenize` are on `url`)."""
        return self.url + "/v1"

    @property
    def models(self) -> list[str]:
        """The served model ids, as listed by `GET /v1/models`."""
        return list(self._models)

    @property
    def max_model_len(self) -> int | None:
        """The context length enforced, or `None` for none."""
        return self._max_model_len

    def _serves(self, model: str) -> bool:
        return self._any_model or model in self._models

    # -- recording -----------------------------------------------------------------------------

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """Only the `POST /v1/embeddings` requests, in arrival order."""
        return self._posts(lambda path: path == "/v1/embeddings")

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the `POST /v1/chat/completions` requests, in arrival order."""
        return self._posts(lambda path: path == "/v1/chat/completions")
