"""`EmbedCall`: an embeddings call, its input split into batches that all go to one target. No I/O here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ResponseValidationError
from .call import Call
from .state import label

if TYPE_CHECKING:
    from decimal import Decimal

    from ..embeddings import EmbeddingRequest, EmbeddingResponse
    from ..policies.route import RoutePolicy
    from ..provider import Provider
    from .state import RouteState, Target

__all__ = ["EmbedCall"]


class EmbedCall(Call["EmbeddingRequest", "EmbeddingResponse"]):
    """An embeddings call: the input split into batches, all sent to one target."""

    embeds = True

    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        request: EmbeddingRequest,
        targets: list[Target],
        state: RouteState,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(route, policy, request, targets, state)
        self.batch_size = batch_size

    def request_tokens(self, request: EmbeddingRequest) -> int:
        """The batch's estimated tokens (about 4 UTF-8 bytes a token, OpenAI's rule of thumb)."""
        return sum(-(-len(text.encode()) // 4) for text in request.input)

    def batches(self, provider: Provider) -> list[EmbeddingRequest]:
        """The request split for ``provider`` (``batch_size``, else the provider's own limit)."""
        from ..embeddings import split

        return split(self.request, self.batch_size or provider.embed_batch_size)

    def worst_case(self) -> Decimal:
        """The most the texts could cost on any target (tokens never outnumber UTF-8 bytes).

        Raises:
            ValueError: a target has no price.
        """
        ceiling = sum(len(text.encode()) + 1 for text in self.request.input)
        highs = []
        for provider, model in self.targets:
            _, high = self.state.pricing.bounds(provider, model, ceiling, 0)
            if high is None:
                raise ValueError(f"no price is known for {label(provider, model)}; add [prices]")
            highs.append(high.total)
        return max(highs)

    def validate(self, provider: Provider, model: str, request: EmbeddingRequest, reply: EmbeddingResponse) -> None:
        """One vector per input, or the attempt failed.

        Raises:
            ResponseValidationError: the server sent another number of vectors.
        """
        if len(reply.vectors) != len(request.input):
            raise ResponseValidationError(
                f"sent {len(request.input)} inputs but got {len(reply.vectors)} vectors back",
                provider=provider.name,
                model=model,
            )

    def accepted(
        self,
        provider: Provider,
        model: str,
        started: float,
        reply: EmbeddingResponse,
        first_chunk: float | None = None,  # noqa: ARG002 - streams only
    ) -> EmbeddingResponse:
        """One batch answered: record the attempt (the call is priced once all batches are in)."""
        self.record_success(provider, model, started, reply)
        return reply

    def done(self, provider: Provider, model: str, parts: list[EmbeddingResponse]) -> EmbeddingResponse:
        """The whole reply: batches joined, priced once on the summed usage, attempts filled in."""
        from ..embeddings import combine

        joined = combine(parts, provider.name, model)
        usage = joined.usage
        priced = usage if usage.completion_tokens is not None else usage.model_copy(update={"completion_tokens": 0})
        cost = self.state.pricing.cost(provider, model, priced) if usage.prompt_tokens is not None else None
        return joined.model_copy(update={"cost": cost, "attempts": list(self.attempts), "tags": self.tags})
