"""Azure OpenAI: OpenAI's chat-completions wire format, reached through a deployment.

What differs from OpenAI, and where Microsoft documents it:

- URLs. The data-plane API (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference>)
  names a deployment in the path and a version in the query:
  ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21``. The v1
  API (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/api-version-lifecycle>) is
  ``{endpoint}/openai/v1/chat/completions`` with the deployment as the body's ``model`` and no
  ``api-version``; ``api_version = "v1"`` selects it.
- Auth: an ``api-key`` header, or ``Authorization: Bearer <Microsoft Entra ID token>``
  (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/managed-identity>).
- Content filtering (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/concepts/content-filter>):
  a refused prompt is a 400 with ``code: "content_filter"`` and
  ``innererror.content_filter_result`` (here: `ContentFilterError`); a filtered completion ends
  with ``finish_reason: "content_filter"`` and ``content_filter_results`` on its choice (here:
  the reply's ``finish_reason``, and the categories in ``reply.warnings``).
- Errors: ``{"error": {"code": "DeploymentNotFound", ...}}`` (404) becomes a `NotFoundError`
  that names the deployment; 429s carry ``retry-after-ms`` and ``retry-after``, read by
  `turnout.errors.parse_retry_after` (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/quota>).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Generator, Mapping
from contextlib import _AsyncGeneratorContextManager, _GeneratorContextManager
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx2
from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..config import ProviderConfig
from ..embeddings import EmbeddingRequest, EmbeddingResponse
from ..errors import (
    APIStatusError,
    AuthenticationError,
    ConfigError,
    ContentFilterError,
    EmbeddingsNotSupportedError,
    NotFoundError,
    ProviderError,
)
from ..types import ChatRequest, ChatResponse
from . import _embed_wire
from ._embed_wire import EMBEDDINGS_PATH, Encoding
from ._openai_errors import error_from_response
from ._openai_wire import build_body, parse_completion
from .openai import OpenAIProvider

__all__ = ["DEFAULT_API_VERSION", "AzureConfig", "AzureProvider", "TokenProvider", "azure_error"]

#: The latest GA data-plane version when this was written (2024-10-21; see the reference above).
DEFAULT_API_VERSION = "2024-10-21"
TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns a Microsoft Entra ID access token (for the scope ``https://cognitiveservices.azure.com/.default``).

``azure.identity.get_bearer_token_provider(credential, scope)`` returns one (its ``aio`` twin an
async one); it caches the token and fetches a new one before it expires, so turnout calls it
before every request.
"""

_CHAT_PATH = "/chat/completions"
_VERSION = re.compile(r"^(v1|\d{4}-\d{2}-\d{2}(-preview)?)$")
_SEVERITIES = ("safe", "low", "medium", "high")


class AzureConfig(ProviderConfig):
    """``type = "azure"``: an Azure OpenAI (or Azure AI Foundry) resource.

    Give ``api_key``, or, in code, ``token_provider`` for Microsoft Entra ID auth (see docs/azure.md).
    """

    type: Literal["azure"] = "azure"
    endpoint: str = Field(description="the resource's endpoint, e.g. https://my-resource.openai.azure.com")
    api_version: str = Field(
        default=DEFAULT_API_VERSION,
        description='the data-plane api-version (e.g. "2024-10-21"), or "v1" for the /openai/v1/ API',
    )
    deployments: dict[str, str] = Field(
        default_factory=dict, description="model id -> deployment name (a model not listed: the same name)"
    )
    token_provider: SkipJsonSchema[TokenProvider | None] = Field(
        default=None, exclude=True, repr=False, description="in code only: returns an Entra ID bearer token"
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (e.g. https://my-resource.openai.azure.com)")
        value = value.rstrip("/")
        for suffix in ("/openai/v1", "/openai"):
            if value.endswith(suffix):
                raise ValueError(f"give the resource's root without {suffix} (turnout adds the path)")
        return value

    @field_validator("api_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError(f'{value!r} is not an api-version: use a date like "{DEFAULT_API_VERSION}" or "v1"')
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> AzureConfig:
        if self.base_url is not None:
            raise ValueError("type azure has no base_url: set endpoint (the URL paths follow from api_version)")
        if self.api_key is not None and self.token_provider is not None:
            raise ValueError("give api_key or token_provider, not both")
        return self


class _TokenAuth(httpx2.Auth):
    """Sets ``Authorization: Bearer <token>`` from the token provider on every request."""

    def __init__(self, provider: TokenProvider, name: str) -> None:
        self._provider = provider
        self._name = name

    def _fail(self, exc: Exception) -> AuthenticationError:
        return AuthenticationError(
            f"the token_provider of providers.{self._name} failed: {type(exc).__name__}: {exc}", provider=self._name
        )

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        """Call the provider (a sync one) and send the request with its token."""
        try:
            token = self._provider()
        except Exception as exc:
            raise self._fail(exc) from exc
        if inspect.isawaitable(token):
            if inspect.iscoroutine(token):
                token.close()
            raise ConfigError(
                f"providers.{self._name}.token_provider returned an awaitable: the sync Client needs a sync "
                "provider (azure.identity.get_bearer_token_provider, not azure.identity.aio's)"
            )
        request.headers["authorization"] = f"Bearer {token}"
        yield request

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Call the provider (sync or async) and send the request with its token."""
        try:
            token = self._provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as exc:
            raise self._fail(exc) from exc
        request.headers["authorization"] = f"Bearer {token}"
        yield request


class AzureProvider(OpenAIProvider):
    """Chat completions and embeddings on Azure OpenAI deployments."""

    config_model: ClassVar[type[ProviderConfig]] = AzureConfig
    catalogue_provider: ClassVar[str | None] = "azure"  # genai-prices falls back to OpenAI's models
    default_base_url: ClassVar[str | None] = None
    requires_api_key: ClassVar[bool] = False
    embed_batch_size: ClassVar[int] = 2048  # the input array limit of the embeddings reference
    embed_encoding: ClassVar[Encoding] = "base64"  # what the openai SDK sends Azure too

    def __init__(self, name: str, config: ProviderConfig) -> None:
        if not isinstance(config, AzureConfig):
            raise ConfigError(f"providers.{name}: type azure needs an AzureConfig, not {type(config).__name__}")
        if config.api_key is None and config.token_provider is None:
            raise ConfigError(
                f"providers.{name}.api_key: required for type 'azure' unless a token_provider is given in code. "
                'Add api_key = "${AZURE_OPENAI_API_KEY}", or see docs/azure.md for Microsoft Entra ID.'
            )
        self.v1 = config.api_version == "v1"
        root = f"{config.endpoint}/openai/v1" if self.v1 else f"{config.endpoint}/openai"
        super().__init__(name, config.model_copy(update={"base_url": root}))
        self.azure_config = config
        self._headers.pop("authorization", None)
        if config.api_key is not None:
            self._headers["api-key"] = config.api_key.get_secret_value()
        self._auth = None if config.token_provider is None else _TokenAuth(config.token_provider, name)

    def deployment(self, model: str) -> str:
        """The deployment that serves ``model`` (``deployments[model]``, else the model id itself)."""
        return self.azure_config.deployments.get(model, model)

    # -- HTTP: the auth hook, the paths, the error bodies -------------------------------------

    @property
    def http(self) -> httpx2.Client:
        """The sync connection pool, with the token provider's auth when one is set."""
        client = super().http
        if self._auth is not None and client.auth is not self._auth:
            client.auth = self._auth
        return client

    @property
    def ahttp(self) -> httpx2.AsyncClient:
        """The async connection pool, with the token provider's auth when one is set."""
        client = super().ahttp
        if self._auth is not None and client.auth is not self._auth:
            client.auth = self._auth
        return client

    def _path(self, path: str, model: str) -> str:
        if self.v1:
            return path
        deployment = quote(self.deployment(model), safe="")
        return f"/deployments/{deployment}{path}?api-version={self.azure_config.api_version}"

    def post(self, path: str, body: bytes, request: ChatRequest | EmbeddingRequest, model: str) -> httpx2.Response:
        """POST to ``path`` of the model's deployment (see `HTTPProvider.post`)."""
        return super().post(self._path(path, model), body, request, model)

    async def apost(
        self, path: str, body: bytes, request: ChatRequest | EmbeddingRequest, model: str
    ) -> httpx2.Response:
        """Async twin of `post`."""
        return await super().apost(self._path(path, model), body, request, model)

    def post_stream(
        self, path: str, body: bytes, request: ChatRequest, model: str
    ) -> _GeneratorContextManager[httpx2.Response]:
        """Stream from ``path`` of the model's deployment (see `HTTPProvider.post_stream`)."""
        return super().post_stream(self._path(path, model), body, request, model)

    def apost_stream(
        self, path: str, body: bytes, request: ChatRequest, model: str
    ) -> _AsyncGeneratorContextManager[httpx2.Response]:
        """Async twin of `post_stream`."""
        return super().apost_stream(self._path(path, model), body, request, model)

    def classify_error(self, response: httpx2.Response, model: str) -> ProviderError:
        """Azure's error codes (content filter, deployment not found), else OpenAI's mapping."""
        return azure_error(
            response.status_code,
            response.headers,
            response.content,
            provider=self.name,
            model=model,
            deployment=self.deployment(model),
            endpoint=self.azure_config.endpoint,
            secrets=self._secrets,
        )

    # -- chat and embeddings ------------------------------------------------------------------

    def _body(self, model: str, request: ChatRequest, *, stream: bool) -> bytes:
        fields = self.option_fields(model, request)
        return build_body(self.deployment(model), request, stream=stream, fields=fields)

    def chat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Send a chat completion request to the model's deployment and decode the reply."""
        response = self.post(_CHAT_PATH, self._body(model, request, stream=False), request, model)
        return self._reply(response, model)

    async def achat(self, model: str, request: ChatRequest) -> ChatResponse:
        """Async twin of `chat`."""
        response = await self.apost(_CHAT_PATH, self._body(model, request, stream=False), request, model)
        return self._reply(response, model)

    def _reply(self, response: httpx2.Response, model: str) -> ChatResponse:
        reply = parse_completion(
            response.content, provider=self.name, model=model, request_id=response.headers.get("x-request-id")
        )
        if any(choice.finish_reason == "content_filter" for choice in reply.choices):
            reply.warnings.extend(filtered_output(response.content))
        return reply

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed one batch with the deployment's ``/embeddings``."""
        body = _embed_wire.build_body(self.deployment(model), request, self.embed_encoding)
        response = self.post(EMBEDDINGS_PATH, body, request, model)
        return _embed_wire.parse_reply(
            response.content, provider=self.name, model=model, request_id=response.headers.get("x-request-id")
        )

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        """Async twin of `embed`."""
        body = _embed_wire.build_body(self.deployment(model), request, self.embed_encoding)
        response = await self.apost(EMBEDDINGS_PATH, body, request, model)
        return _embed_wire.parse_reply(
            response.content, provider=self.name, model=model, request_id=response.headers.get("x-request-id")
        )

    # -- what the catalogue and the tokenizer know (Azure serves OpenAI's models) --------------

    def context_window(self, model: str) -> int | None:
        """The model's context window from the catalogue: Azure's entry, else OpenAI's."""
        if model not in self._windows:
            from ..cost.prices import catalogue_context_window

            found = catalogue_context_window("azure", model)
            self._windows[model] = found if found is not None else catalogue_context_window("openai", model)
        return self._windows[model]

    def count_tokens(self, model: str, request: ChatRequest) -> int | None:
        """Exact prompt tokens, counted offline with OpenAI's tokenizer (needs ``turnout[tokens]``).

        ``model`` must be the OpenAI model id (the key of ``deployments``), not a deployment name.
        """
        from ._openai_tokens import count_chat_tokens

        return count_chat_tokens(model, request)

    def __repr__(self) -> str:
        return f"AzureProvider(name={self.name!r}, endpoint={self.azure_config.endpoint!r})"


def _fired(results: object) -> list[str]:
    """The categories whose verdict is ``filtered: true`` (or ``detected: true`` and filtered)."""
    if not isinstance(results, Mapping):
        return []
    return sorted(k for k, v in results.items() if isinstance(v, Mapping) and v.get("filtered") is True)


def _describe(results: Mapping[str, Any], categories: list[str]) -> str:
    parts = []
    for category in categories:
        severity = results[category].get("severity")
        parts.append(f"{category} ({severity})" if severity in _SEVERITIES else category)
    return ", ".join(parts) or "no category named"


def filtered_output(raw: bytes) -> list[str]:
    """One warning per choice that Azure's content filter cut off, naming the categories that fired."""
    try:
        body = json.loads(raw)
    except ValueError:
        return []
    choices = body.get("choices") if isinstance(body, dict) else None
    warnings = []
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict) or choice.get("finish_reason") != "content_filter":
            continue
        results = choice.get("content_filter_results")
        categories = _fired(results)
        described = _describe(results, categories) if isinstance(results, Mapping) else "no category named"
        warnings.append(f"content_filter: choice {choice.get('index', 0)} was filtered: {described}")
    return warnings


def azure_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    model: str,
    deployment: str,
    endpoint: str,
    secrets: Collection[str] = (),
) -> APIStatusError:
    """The typed error for an Azure OpenAI error reply (the OpenAI mapping, plus Azure's codes).

    - 400 ``content_filter`` -> `ContentFilterError` with the categories that fired;
    - 404 ``DeploymentNotFound`` -> `NotFoundError` naming the deployment and the fix;
    - 400 ``OperationNotSupported`` for embeddings -> `EmbeddingsNotSupportedError`;
    - anything else as `error_from_response` maps it (429: ``retry-after-ms`` first).
    """
    error = error_from_response(status, headers, body, provider=provider, model=model, secrets=secrets)
    common: dict[str, Any] = {
        "body": error.body,
        "error_type": error.error_type,
        "error_code": error.error_code,
        "provider": provider,
        "model": model,
        "status_code": status,
        "request_id": error.request_id,
        "retryable": False,
    }
    if error.error_code == "content_filter":
        results = _inner_results(error.body)
        categories = _fired(results)
        message = f"Azure's content filter refused the prompt: {_describe(results, categories)}. {error.message}"
        return ContentFilterError(message[:500], categories=categories, results=results, **common)
    if error.error_code == "DeploymentNotFound":
        message = (
            f"deployment {deployment!r} does not exist on {endpoint} (Azure DeploymentNotFound). "
            f"Model {model!r} is sent to the deployment of that name"
            f"{'' if deployment == model else ' (from deployments)'}: set "
            f'deployments = {{ "{model}" = "<your deployment name>" }} in [providers.{provider}], '
            "or wait a few minutes after creating it"
        )
        return NotFoundError(message, **common)
    if error.error_code == "OperationNotSupported" and "embeddings" in error.message:
        message = f"deployment {deployment!r} does not serve embeddings: {error.message}"
        return EmbeddingsNotSupportedError(message[:500], **common)
    return error


def _inner_results(body: object) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    inner = error.get("innererror") if isinstance(error, dict) else None
    if not isinstance(inner, dict):
        return {}
    results = inner.get("content_filter_result") or inner.get("content_filter_results")
    return dict(results) if isinstance(results, dict) else {}
