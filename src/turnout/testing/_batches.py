"""OpenAI's Files and Batch APIs on `FakeServer` (openai flavour), enough for ``turnout batch --provider-batch``.

Shapes from https://platform.openai.com/docs/api-reference/files and
https://platform.openai.com/docs/api-reference/batch: ``POST /v1/files`` (multipart, ``purpose``
and ``file``) returns a File object; ``GET /v1/files/{id}/content`` the bytes; ``POST /v1/batches``
(``input_file_id``, ``endpoint``, ``completion_window``) a Batch object, ``GET /v1/batches/{id}``
it again. Each request line is answered like a ``/v1/chat/completions`` request (scripted
replies and faults included) when the batch is created; the batch reads ``in_progress`` until it
has been polled ``fake.batch_polls`` times, then ``completed`` with an ``output_file_id`` (and an
``error_file_id`` when some line was invalid).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

from turnout.testing import _errors, _openai_handler
from turnout.testing._chat import parse_chat, resolve
from turnout.testing._errors import WireError
from turnout.testing._script import Reply
from turnout.testing._wire import completion_body, new_completion_id, new_request_id

if TYPE_CHECKING:
    from turnout.testing._openai_handler import OpenAIHandler
    from turnout.testing._openai_server import FakeServer
    from turnout.testing._scripted_server import RecordedRequest

__all__ = ["Batches", "answer"]

_ids = itertools.count(1)


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    created_at: int
    total: int
    output: bytes
    errors: bytes
    failed: int
    polls: int = 0


@dataclass
class Batches:
    """The fake's uploaded files and batches."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id -> (filename, content)
    batches: dict[str, _Batch] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def answer(handler: OpenAIHandler, record: RecordedRequest) -> bool:
    """Answer a Files or Batch API request; False when the path is neither."""
    path, method = record.path, record.method
    if method == "POST" and path == "/v1/files":
        _upload(handler, record)
    elif method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
        _content(handler, path.removeprefix("/v1/files/").removesuffix("/content"))
    elif method == "POST" and path == "/v1/batches":
        _create(handler, record)
    elif method == "GET" and path.startswith("/v1/batches/"):
        _retrieve(handler, path.removeprefix("/v1/batches/"))
    else:
        return False
    return True


def _state(handler: OpenAIHandler) -> Batches:
    return _openai_handler.fake_server(handler).batches


def _not_found(handler: OpenAIHandler, what: str) -> None:
    body = {"error": {"message": f"No such {what}", "type": "invalid_request_error", "param": None, "code": None}}
    handler._send(404, json.dumps(body).encode())


def _upload(handler: OpenAIHandler, record: RecordedRequest) -> None:
    content_type = record.headers.get("content-type", "")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + record.body)
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    upload, purpose = parts.get("file"), parts.get("purpose")
    if upload is None or purpose is None or purpose.get_content() != "batch":
        handler._send_error(_errors.bad_request(handler._context(), "upload a 'file' with purpose 'batch'"))
        return
    payload = upload.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    name = upload.get_filename() or "upload.jsonl"
    file_id = f"file-{next(_ids):06d}"
    with _state(handler).lock:
        _state(handler).files[file_id] = (name, data)
    handler._send_json(_file_object(file_id, name, data))


def _file_object(file_id: str, name: str, data: bytes) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(data),
        "created_at": int(time.time()),
        "filename": name,
        "purpose": "batch",
    }


def _content(handler: OpenAIHandler, file_id: str) -> None:
    found = _state(handler).files.get(file_id)
    if found is None:
        _not_found(handler, f"file: {file_id}")
        return
    handler._send(200, found[1], content_type="application/octet-stream")


def _create(handler: OpenAIHandler, record: RecordedRequest) -> None:
    body = record.json if isinstance(record.json, dict) else {}
    state = _state(handler)
    found = state.files.get(str(body.get("input_file_id")))
    if found is None:
        _not_found(handler, f"file: {body.get('input_file_id')}")
        return
    output, errors, failed, total = _run_lines(handler, found[1])
    batch = _Batch(
        id=f"batch_{next(_ids):06d}",
        input_file_id=str(body["input_file_id"]),
        endpoint=str(body.get("endpoint", "/v1/chat/completions")),
        created_at=int(time.time()),
        total=total,
        output=output,
        errors=errors,
        failed=failed,
    )
    with state.lock:
        state.batches[batch.id] = batch
    handler._send_json(_batch_object(_openai_handler.fake_server(handler), batch, "validating"))


def _run_lines(handler: OpenAIHandler, data: bytes) -> tuple[bytes, bytes, int, int]:
    """Answer every line: (output JSONL, error JSONL, failed count, total)."""
    output: list[str] = []
    errors: list[str] = []
    failed = total = 0
    for text in data.splitlines():
        if not text.strip():
            continue
        total += 1
        line = json.loads(text)
        status, answer = _answer_line(handler, line.get("body"))
        result = {
            "id": f"batch_req_{next(_ids):06d}",
            "custom_id": line.get("custom_id"),
            "response": {"status_code": status, "request_id": new_request_id(), "body": answer},
            "error": None,
        }
        if status != 200:
            failed += 1
        (output if status == 200 else errors).append(json.dumps(result))
    return ("\n".join(output) + "\n").encode(), ("\n".join(errors) + "\n").encode() if errors else b"", failed, total


def _answer_line(handler: OpenAIHandler, body: Any) -> tuple[int, Any]:
    fake = handler.fake
    req = parse_chat(body, fake)
    if isinstance(req, WireError):
        return req.status, json.loads(req.body)
    item = fake._next(req.model) or fake.default_reply or Reply()
    if not isinstance(item, Reply):
        if item.is_error:
            ctx = handler._context(req.model, prompt_tokens=req.prompt_tokens, max_tokens=req.max_tokens)
            error = _errors.render_fault(item, ctx)
            return error.status, json.loads(error.body)
        item = item.then if isinstance(item.then, Reply) else Reply()
    gen = resolve(item, req, fake.flavor)
    return 200, completion_body(gen, fake.flavor, new_completion_id(fake.flavor), int(time.time()))


def _retrieve(handler: OpenAIHandler, batch_id: str) -> None:
    state = _state(handler)
    with state.lock:
        batch = state.batches.get(batch_id)
        if batch is not None:
            batch.polls += 1
    if batch is None:
        _not_found(handler, f"batch: {batch_id}")
        return
    status = "completed" if batch.polls >= _openai_handler.fake_server(handler).batch_polls else "in_progress"
    handler._send_json(_batch_object(_openai_handler.fake_server(handler), batch, status))


def _batch_object(fake: FakeServer, batch: _Batch, status: str) -> dict[str, Any]:
    done = status == "completed"
    output_id = error_id = None
    if done:
        with fake.batches.lock:
            output_id = f"file-{batch.id}-output"
            fake.batches.files[output_id] = ("batch_output.jsonl", batch.output)
            if batch.errors:
                error_id = f"file-{batch.id}-errors"
                fake.batches.files[error_id] = ("batch_errors.jsonl", batch.errors)
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": output_id,
        "error_file_id": error_id,
        "created_at": batch.created_at,
        "completed_at": int(time.time()) if done else None,
        "request_counts": {
            "total": batch.total,
            "completed": batch.total - batch.failed if done else 0,
            "failed": batch.failed if done else 0,
        },
        "metadata": None,
    }
