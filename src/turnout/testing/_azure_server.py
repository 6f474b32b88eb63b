"""`FakeAzureServer`: an Azure OpenAI resource on 127.0.0.1 (deployments, api-version, api-key, content filters).

It answers what `FakeServer` answers in the openai flavor, under Azure's paths and with Azure's
differences (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference>):

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` and ``.../embeddings``;
  the v1 API's ``POST /openai/v1/chat/completions`` and ``/openai/v1/embeddings`` with the
  deployment as the body's ``model``
  (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/api-version-lifecycle>). Another
  path, or a deployments path without ``api-version``, is 404 ``{"error": {"code": "404",
  "message": "Resource not found"}}``.
- auth: the ``api-key`` header, or ``Authorization: Bearer <token>`` (a token is accepted when
  it equals ``api_key``; with ``api_key`` None any key or token, but one is needed); else 401
  with Azure's body.
- an unknown deployment: 404 ``DeploymentNotFound``; chat on an embedding model and embeddings
  on a chat model: 400 ``OperationNotSupported``.
- replies carry ``prompt_filter_results`` and each choice ``content_filter_results``; a stream
  starts with Azure's prompt-filter event (``choices: []``, empty ``id`` and ``model``).
  ``Reply(content_filter=...)`` marks categories filtered; ``Fault.content_filter()`` is the 400
  for a refused prompt.
- ``Fault.rate_limit`` is Azure's 429 (``retry-after``, ``retry-after-ms``,
  ``x-ratelimit-remaining-*``); ``Fault.unauthorized`` its 401; ``Fault.not_found`` its
  ``DeploymentNotFound``. Error bodies of other faults are OpenAI's envelope.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote

from turnout.testing import _embed
from turnout.testing._chat import ChatRequest
from turnout.testing._embed import DEFAULT_DIMENSIONS
from turnout.testing._errors import WireError, content_filter_results
from turnout.testing._openai_handler import OpenAIHandler
from turnout.testing._script import Fault, Reply, Scripted
from turnout.testing._scripted_server import RecordedRequest, ScriptedServer
from turnout.testing._wire import Flavor, Generation, StreamPlan, dumps

__all__ = ["FakeAzureServer"]

_DEPLOYMENT_PATH = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
_V1_PATH = re.compile(r"^/openai/v1/(chat/completions|embeddings)$")
_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)
_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within the last "
    "5 minutes, please wait a moment and try again."
)


def _azure_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> WireError:
    return WireError(status, dumps({"error": {"code": code, "message": message}}, "openai", indent=None), headers or {})


class AzureHandler(OpenAIHandler):
    """Azure's paths, auth and errors in front of the openai-flavor handler."""

    fake: FakeAzureServer

    def _base_headers(self) -> dict[str, str]:
        return {"x-request-id": self._request_id, "apim-request-id": secrets.token_hex(16), "x-ms-region": "East US"}

    def _rate_headers(self, req: ChatRequest) -> dict[str, str]:
        return {
            "x-ratelimit-remaining-requests": "99",
            "x-ratelimit-remaining-tokens": str(100_000 - req.prompt_tokens),
        }

    def _route(self, record: RecordedRequest) -> None:
        found = self._operation(record)
        if found is None:
            return
        deployment, operation = found
        model = self.fake.model_of(deployment)
        if model is None:
            self._send_error(_azure_error(404, "DeploymentNotFound", _NO_DEPLOYMENT))
            return
        body = record.json if isinstance(record.json, dict) else None
        routed = dataclasses.replace(record, json=None if body is None else {**body, "model": model})
        embedding_model = "embedding" in model
        if operation == "embeddings" and embedding_model:
            _embed.answer(self, routed)
        elif operation == "chat/completions" and not embedding_model:
            self._chat(routed)
        else:
            name = "embeddings" if operation == "embeddings" else "chatCompletion"
            message = (
                f"The {name} operation does not work with the specified model, {model}. Please choose different "
                "model and try again. You can learn more about which models can be used with each operation "
                "here: https://go.microsoft.com/fwlink/?linkid=2197993."
            )
            self._send_error(_azure_error(400, "OperationNotSupported", message))

    def _operation(self, record: RecordedRequest) -> tuple[str, str] | None:
        """(deployment, operation) of a request that passes the path, version and key checks; else answer it."""
        path, v1 = _DEPLOYMENT_PATH.match(record.path), _V1_PATH.match(record.path)
        versions = parse_qs(record.query).get("api-version", [])
        wanted = self.fake.api_version
        version_ok = bool(versions) and (wanted is None or versions[0] == wanted)
        if record.method != "POST" or not (v1 or (path and version_ok)):
            self._send_error(_azure_error(404, "404", "Resource not found"))
            return None
        if not self._key_ok():
            self._send_error(_azure_error(401, "401", _BAD_KEY))
            return None
        if path is not None:
            return unquote(path.group(1)), path.group(2)
        assert v1 is not None
        model = record.model
        return model or "", v1.group(1)

    def _key_ok(self) -> bool:
        key = self.fake.api_key
        sent_key, auth = self.headers.get("api-key"), self.headers.get("authorization")
        if key is None:
            return sent_key is not None or (auth or "").startswith("Bearer ")
        return sent_key == key or auth == f"Bearer {key}"

    def _answer(self, item: Scripted | None, req: ChatRequest) -> None:
        if isinstance(item, Fault) and item.kind in ("rate_limit", "unauthorized", "not_found"):
            self._send_error(self._fault_error(item, req))
            return
        super()._answer(item, req)

    def _fault_error(self, fault: Fault, req: ChatRequest) -> WireError:
        if fault.kind == "unauthorized":
            return _azure_error(401, "401", _BAD_KEY, fault.headers)
        if fault.kind == "not_found":
            return _azure_error(404, "DeploymentNotFound", _NO_DEPLOYMENT, fault.headers)
        seconds = fault.retry_after if fault.retry_after is not None else (fault.retry_after_ms or 1000) / 1000
        headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        message = (
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"{self.fake.api_version or '2024-10-21'} have exceeded token rate limit of your current OpenAI S0 "
            f"pricing tier. Please retry after {max(1, round(seconds))} second. Go here for more details: "
            "https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
        )
        del req
        return _azure_error(429, "429", message, {**headers, **fault.headers})

    # -- content-filter results on replies ----------------------------------------------------

    def _completion(self, gen: Generation, reply: Reply, completion_id: str, created: int) -> dict[str, Any]:
        body = super()._completion(gen, reply, completion_id, created)
        for choice in body["choices"]:
            choice["content_filter_results"] = content_filter_results(reply.content_filter)
        return {"prompt_filter_results": _prompt_filter_results(), **body}

    def _stream(self, plan: StreamPlan, reply: Reply, headers: Mapping[str, str], fault: Fault | None) -> None:
        prelude = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []}
        prelude["prompt_filter_results"] = _prompt_filter_results()
        safe = content_filter_results(None)
        for event in plan.body:
            for choice in event["choices"]:
                choice["content_filter_results"] = safe
        for event in plan.tail:
            for choice in event["choices"]:
                choice["content_filter_results"] = content_filter_results(reply.content_filter)
        super()._stream(StreamPlan([prelude, *plan.head], plan.body, plan.tail), reply, headers, fault)


class FakeAzureServer(ScriptedServer):
    """An Azure OpenAI resource on 127.0.0.1, scripted with `Reply` and `Fault` like `FakeServer`.

    Its bodies are the OpenAI wire's (`FakeServer`'s openai flavor), under Azure's paths, auth and errors.

    Example:
        ```python
        with FakeAzureServer({"my-mini": "gpt-4o-mini"}, api_key="k") as azure:
            config = {"providers": {"azure": {"type": "azure", "endpoint": azure.endpoint, "api_key": "k",
                                              "deployments": {"gpt-4o-mini": "my-mini"}}}}
        ```

    Args:
        deployments: deployment name -> the model it serves (reported as the reply's ``model``;
            ``enqueue(..., model=)`` keys on it). `None`: any deployment name, serving the model
            of that name.
        api_key: If set, requests need ``api-key: <api_key>`` (or ``Authorization: Bearer <api_key>``).
        api_version: The version the data-plane path must name; `None` accepts any.
        max_model_len: Context length in tokens (`None`: no limit).
        default_reply: What to answer when nothing is queued; `None` echoes.
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
    """

    def __init__(
        self,
        deployments: Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        api_version: str | None = None,
        max_model_len: int | None = None,
        default_reply: Reply | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(api_key=api_key, default_reply=default_reply, host=host, port=port)
        #: deployment name -> model (`None`: every name is a deployment of that model).
        self.deployments = dict(deployments) if deployments is not None else None
        self.api_version = api_version
        self._models: Sequence[str] = sorted(set(deployments.values())) if deployments else ("gpt-4o-mini",)
        self._max_model_len = max_model_len
        #: Length of the vectors the embeddings route returns when the request sets no ``dimensions``.
        self.embedding_dimensions = DEFAULT_DIMENSIONS

    handler = AzureHandler

    def __repr__(self) -> str:
        return f"FakeAzureServer({self._where()})"

    @property
    def flavor(self) -> Flavor:
        """The OpenAI wire's flavor: always ``"openai"``."""
        return "openai"

    @property
    def models(self) -> list[str]:
        """The models the deployments serve."""
        return list(self._models)

    @property
    def max_model_len(self) -> int | None:
        """The context length enforced, or `None` for none."""
        return self._max_model_len

    def _serves(self, model: str) -> bool:
        return self.deployments is None or model in self._models

    @property
    def endpoint(self) -> str:
        """The resource endpoint to configure (``endpoint = ...``): the server root."""
        return self.url

    def model_of(self, deployment: str) -> str | None:
        """The model a deployment serves, or None when there is no such deployment."""
        if self.deployments is None:
            return deployment
        return self.deployments.get(deployment)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the chat-completions requests (deployment or v1 paths), in arrival order."""
        return self._posts(lambda path: path.endswith("/chat/completions"))

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """Only the embeddings requests (deployment or v1 paths), in arrival order."""
        return self._posts(lambda path: path.endswith("/embeddings"))


def _prompt_filter_results() -> list[dict[str, Any]]:
    results = content_filter_results(None)
    results["jailbreak"] = {"filtered": False, "detected": False}
    return [{"prompt_index": 0, "content_filter_results": results}]
