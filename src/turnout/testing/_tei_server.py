"""`FakeTEIServer`: an in-process Text Embeddings Inference server (what HF embedding endpoints run).

Routes, as TEI's router serves them for an embedding model (``router/src/http/server.rs``):
``GET /health``, ``GET /info``, ``POST /embed`` and ``POST /`` (the default route, where
huggingface_hub's ``feature_extraction`` posts), answering one float list per input (a single
string input gives a list of one). The body is ``{"inputs": str | [str], "normalize": true,
"truncate": false, "truncation_direction", "prompt_name", "dimensions"}``. Successful replies
carry TEI's ``x-compute-*`` / timing headers (``x-compute-tokens`` is the token count).

Errors are ``{"error", "error_type"}``: an empty batch or one over ``max_client_batch_size`` is
413 ``validation``; an input over ``max_input_length`` tokens without ``truncate`` is 413
``validation`` "Input validation error: `inputs` must have less than N tokens. Given: M"; a
scripted rate limit is 429 ``overloaded``, another scripted error its status with
``error_type`` ``backend`` (424 by default in TEI). With ``api_key``, a request without the key
is a bare 401 (axum's empty body). Vectors are `turnout.testing._embed.vector` of
(``model_id``, text): the same text always gets the same vector.
"""

from __future__ import annotations

import json
import time
from typing import Any

from turnout.testing._embed import DEFAULT_DIMENSIONS, vector
from turnout.testing._script import Fault
from turnout.testing._scripted_server import RecordedRequest, ScriptedHandler, ScriptedServer
from turnout.testing._wire import count_tokens

__all__ = ["FakeTEIServer"]


class TEIHandler(ScriptedHandler):
    """Answers one connection on behalf of a `FakeTEIServer`."""

    @property
    def tei(self) -> FakeTEIServer:
        """The server this handler answers for."""
        assert isinstance(self.fake, FakeTEIServer)
        return self.fake

    def version_string(self) -> str:
        """TEI sends no ``Server`` header of its own; axum's default is empty."""
        return ""

    def _base_headers(self) -> dict[str, str]:
        return {}

    def _tei_error(self, status: int, message: str, error_type: str) -> None:
        self._send(status, json.dumps({"error": message, "error_type": error_type}).encode())

    def _route(self, record: RecordedRequest) -> None:
        key = self.tei.api_key
        if key is not None and self.headers.get("authorization") != f"Bearer {key}":
            self._send(401, b"")
            return
        method, path = record.method, record.path
        if method == "GET" and path == "/health":
            self._send(200, b"")
        elif method == "GET" and path == "/info":
            self._send(200, json.dumps(self._info()).encode())
        elif method == "POST" and path in ("/", "/embed"):
            self._embed(record)
        else:
            self._send(404, b"")  # axum's empty 404

    def _info(self) -> dict[str, Any]:
        tei = self.tei
        return {
            "model_id": tei.model_id,
            "model_sha": None,
            "model_dtype": "float32",
            "model_type": {"embedding": {"pooling": "cls"}},
            "max_concurrent_requests": 512,
            "max_input_length": tei.max_input_length,
            "max_batch_tokens": 16384,
            "max_batch_requests": None,
            "max_client_batch_size": tei.max_client_batch_size,
            "auto_truncate": False,
            "tokenization_workers": 2,
            "version": "1.8.0",
        }

    def _embed(self, record: RecordedRequest) -> None:
        body = record.json if isinstance(record.json, dict) else {}
        inputs = body.get("inputs")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._tei_error(422, "Failed to deserialize the JSON body into the target type: inputs", "validation")
            return
        problem = self._problem(texts, bool(body.get("truncate")))
        if problem is not None:
            self._tei_error(413, problem, "validation")
            return
        item = self.tei._next(self.tei.model_id)
        if isinstance(item, Fault) and item.is_error:
            status = 429 if item.kind == "rate_limit" else item.status_code or 424
            kind = "overloaded" if status == 429 else "backend"
            default = "Model is overloaded" if status == 429 else "Inference failed"
            self._tei_error(status, item.message or default, kind)
            return
        started = time.monotonic()
        dims = body.get("dimensions") or self.tei.embedding_dimensions
        vectors = [vector(self.tei.model_id, text, dims) for text in texts]
        tokens = sum(min(count_tokens(t) + 2, self.tei.max_input_length) for t in texts)  # [CLS] ... [SEP]
        elapsed = str(int((time.monotonic() - started) * 1000))
        headers = {
            "x-compute-type": "cpu",
            "x-compute-time": elapsed,
            "x-compute-characters": str(sum(len(t) for t in texts)),
            "x-compute-tokens": str(tokens),
            "x-total-time": elapsed,
            "x-tokenization-time": "0",
            "x-queue-time": "0",
            "x-inference-time": elapsed,
        }
        self._send(200, json.dumps(vectors).encode(), headers)

    def _problem(self, texts: list[str], truncate: bool) -> str | None:
        tei = self.tei
        if not texts:
            return "`inputs` cannot be empty"
        if len(texts) > tei.max_client_batch_size:
            return f"batch size {len(texts)} > maximum allowed batch size {tei.max_client_batch_size}"
        for text in texts:
            tokens = count_tokens(text) + 2
            if tokens > tei.max_input_length and not truncate:
                return (
                    f"Input validation error: `inputs` must have less than {tei.max_input_length} tokens. "
                    f"Given: {tokens}"
                )
        return None


class FakeTEIServer(ScriptedServer):
    """A Text Embeddings Inference server on 127.0.0.1, scripted with `Fault` like `FakeServer`.

    Example:
        ```python
        with FakeTEIServer() as tei:
            client = huggingface_hub.InferenceClient(base_url=tei.url)
            client.feature_extraction(["a", "b"])  # shape (2, 16)
        ```

    Args:
        model_id: The served model (``/info``'s ``model_id``).
        max_client_batch_size: The most inputs per request (TEI's default: 32).
        max_input_length: The most tokens per input (the model's, e.g. 512).
        dimensions: Length of the vectors.
        api_key: If set, every route needs ``Authorization: Bearer <api_key>``.
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
    """

    def __init__(
        self,
        model_id: str = "BAAI/bge-small-en-v1.5",
        *,
        max_client_batch_size: int = 32,
        max_input_length: int = 512,
        dimensions: int = DEFAULT_DIMENSIONS,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(api_key=api_key, host=host, port=port)
        self.model_id = model_id
        self.max_client_batch_size = max_client_batch_size
        self.max_input_length = max_input_length
        self.embedding_dimensions = dimensions

    handler = TEIHandler

    def __repr__(self) -> str:
        return f"FakeTEIServer(model_id={self.model_id!r}, {self._where()})"

    @property
    def base_url(self) -> str:
        """The endpoint URL to configure: the server root, like `url`."""
        return self.url

    @property
    def embed_requests(self) -> list[RecordedRequest]:
        """The ``POST /`` and ``POST /embed`` requests, in arrival order."""
        return self._posts(lambda path: path in ("/", "/embed"))
