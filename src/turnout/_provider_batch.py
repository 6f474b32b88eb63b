"""``turnout batch --provider-batch``: the file through OpenAI's Batch API, results in turnout's output format.

Upload the requests (``POST /files``, purpose ``batch``), create the batch (``POST /batches``),
poll it (``GET /batches/{id}``) and download its output and error files
(``GET /files/{id}/content``): https://platform.openai.com/docs/api-reference/batch and
https://platform.openai.com/docs/api-reference/files. The batch's id is kept in
``OUTPUT.provider-batch.json`` until its results are written, so a run killed while the batch
is out polls the same batch again instead of sending the requests twice. Each reply is priced at
the batch rate (`turnout.cost.prices.Pricing.batch_cost`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, TurnoutError

if TYPE_CHECKING:
    from .batch import BatchRequest, Finished
    from .client import Client
    from .providers.openai import OpenAIProvider

__all__ = ["provider_batch"]

_DONE = frozenset({"completed", "failed", "expired", "cancelled"})


def provider_batch(args: argparse.Namespace, todo: list[BatchRequest], finished: Finished, problems: list[str]) -> int:
    """Run ``todo`` as one provider batch; return the exit status."""
    from ._batch_cli import EXIT_BUDGET, EXIT_FAILED
    from .client import Client

    with Client(config=args.config) as client:
        provider, model = _target(client, args.model, todo)
        state = Path(f"{args.output}.provider-batch.json")
        batch_id = json.loads(state.read_text())["batch_id"] if state.exists() else None
        if batch_id is None:
            if not todo:
                print("turnout batch: nothing to send: every request is in the output", file=sys.stderr)
                return EXIT_FAILED if finished.failed or problems else 0
            lines = _lines(client, provider, model, todo)
            high = _estimate(client, provider, model, todo, len(finished.ids), finished.spent, args.max_usd)
            if args.dry_run:
                return 0
            if args.max_usd is not None and (high is None or finished.spent + high > args.max_usd):
                print(
                    "turnout batch: a provider batch cannot be stopped half-way, and its worst case "
                    f"({'unbounded' if high is None else f'${high:.6f}'}) does not fit --max-usd; nothing was sent",
                    file=sys.stderr,
                )
                return EXIT_BUDGET
            batch_id = _submit(provider, lines)
            state.write_text(json.dumps({"batch_id": batch_id}))
        batch = _poll(provider, batch_id, args.poll)
        failed, spent = _collect(client, provider, model, batch, todo, args.output)
        state.unlink()
    print(
        f"turnout batch: provider batch {batch_id} {batch['status']}: {len(todo) - failed} answered, "
        f"{failed} failed; batch price ${spent:.6f}",
        file=sys.stderr,
    )
    return EXIT_FAILED if failed or finished.failed or problems else 0


def _target(client: Client, model: str | None, todo: list[BatchRequest]) -> tuple[OpenAIProvider, str]:
    """The first OpenAI target of the route (a provider batch goes to one provider)."""
    from .providers.openai import OpenAIProvider

    name = model or next((r.model for r in todo if r.model), None)
    if not name:
        raise InvalidArgumentError("--provider-batch needs --model (or a model in the requests' bodies)")
    targets, _ = client._route(name)
    for provider, model_id in targets:
        if type(provider) is OpenAIProvider:
            return provider, model_id
    raise InvalidArgumentError(
        f"--provider-batch sends to OpenAI's Batch API, and {name!r} has no target of type 'openai' "
        "(run without --provider-batch to send the requests one by one)"
    )


def _lines(client: Client, provider: OpenAIProvider, model: str, todo: list[BatchRequest]) -> bytes:
    """The Batch API input file: each request's body as turnout would send it to ``model``."""
    out = []
    for request in todo:
        chat = client._request(request.messages, dict(request.options))
        body = json.loads(provider._body(model, chat, stream=False))
        out.append(
            json.dumps({"custom_id": request.custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})
        )
    return ("\n".join(out) + "\n").encode()


def _estimate(
    client: Client,
    provider: OpenAIProvider,
    model: str,
    todo: list[BatchRequest],
    done: int,
    spent: Decimal,
    max_usd: Decimal | None,
) -> Decimal | None:
    from ._batch_cli import print_estimate
    from .batch import estimate
    from .money import Usage

    unit = client._pricing.cost(provider, model, Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000))
    million = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    batch_unit = client._pricing.batch_cost(provider, model, million)
    rate = Decimal(1) if unit is None or batch_unit is None or not unit.total else batch_unit.total / unit.total
    found = estimate(client, todo, f"{provider.name}:{model}", rate)
    print_estimate(found, done, spent, max_usd)
    return found.high


def _submit(provider: OpenAIProvider, lines: bytes) -> str:
    """Upload the file and create the batch; return its id."""
    import httpx2

    url = f"{provider.base_url}/files"
    files = {"file": ("turnout-batch.jsonl", lines, "application/jsonl")}
    form = httpx2.Request(
        "POST", url, data={"purpose": "batch"}, files=files
    )  # the client's JSON content-type is replaced
    try:
        uploaded = provider.http.post(url, content=form.read(), headers={"content-type": form.headers["content-type"]})
    except Exception as exc:
        raise TurnoutError(f"could not upload the batch file: {type(exc).__name__}: {exc}") from None
    provider._check(uploaded, "batch")
    body = {"input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    created = provider.request("POST", f"{provider.base_url}/batches", "batch", json=body)
    batch_id: str = created.json()["id"]
    print(f"turnout batch: provider batch {batch_id} created", file=sys.stderr)
    return batch_id


def _poll(provider: OpenAIProvider, batch_id: str, every: float) -> dict[str, Any]:
    """The batch once it has ended (completed, failed, expired or cancelled)."""
    while True:
        batch: dict[str, Any] = provider.request("GET", f"{provider.base_url}/batches/{batch_id}", "batch").json()
        counts = batch.get("request_counts") or {}
        print(
            f"batch {batch_id}: {batch['status']}, {counts.get('completed', 0)}/{counts.get('total', '?')} done, "
            f"{counts.get('failed', 0)} failed",
            file=sys.stderr,
            flush=True,
        )
        if batch["status"] in _DONE:
            return batch
        time.sleep(every)


def _collect(
    client: Client, provider: OpenAIProvider, model: str, batch: dict[str, Any], todo: list[BatchRequest], output: str
) -> tuple[int, Decimal]:
    """Write every request's result line (those the batch did not answer as failed); return (failed, spent)."""
    from ._batch_cli import write_line

    lines: list[dict[str, Any]] = []
    for key in ("output_file_id", "error_file_id"):
        if batch.get(key):
            content = provider.request("GET", f"{provider.base_url}/files/{batch[key]}/content", "batch").content
            lines.extend(json.loads(text) for text in content.splitlines() if text.strip())
    by_id = {line["custom_id"]: line for line in lines}
    failed, spent = 0, Decimal(0)
    with open(output, "ab", buffering=0) as out:
        for request in todo:
            result, cost = _result(client, provider, model, request, by_id.get(request.custom_id), batch)
            failed += not result.ok
            spent += cost or 0
            write_line(out, result, cost)
    return failed, spent


def _result(
    client: Client,
    provider: OpenAIProvider,
    model: str,
    request: BatchRequest,
    line: dict[str, Any] | None,
    batch: dict[str, Any],
) -> tuple[Any, Decimal | None]:
    """One request's `BatchResult` from its Batch API output line, and its batch-rate cost."""
    from .batch import BatchResult
    from .providers._openai_errors import error_from_response
    from .providers._openai_wire import parse_completion
    from .types import Attempt

    response = (line or {}).get("response") or {}
    status = response.get("status_code")
    if line is None or status != 200:
        body = json.dumps(response.get("body") or {}).encode()
        message = (line or {}).get("error") or {"message": f"the batch ended {batch['status']} without this request"}
        error: TurnoutError = (
            error_from_response(status, {}, body, provider=provider.name, model=model)
            if isinstance(status, int)
            else TurnoutError(str(message.get("message")))
        )
        return BatchResult(request.custom_id, None, error, request.line), None
    request_id = response.get("request_id")
    reply = parse_completion(
        json.dumps(response["body"]).encode(), provider=provider.name, model=model, request_id=request_id
    )
    cost = client._pricing.batch_cost(provider, model, reply.usage)
    attempt = Attempt(provider=provider.name, model=model, outcome="ok", latency=0.0)
    reply = reply.model_copy(update={"cost": cost, "attempts": [attempt]})
    return BatchResult(request.custom_id, reply, None, request.line), None if cost is None else Decimal(cost.total)
