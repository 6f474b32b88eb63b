"""How each provider receives a JSON-schema ``response_format`` (what ``response_model=`` sends).

turnout builds one OpenAI-shaped ``response_format`` (``turnout._response_model``):
``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``. On the wire:

- OpenAI, OpenAI-compatible hosts, vLLM: sent as it is (vLLM 0.12+ maps it onto its
  ``structured_outputs`` engine; the old ``guided_json`` field is gone).
- A TGI server, chat route: ``{"type": "json", "value": schema}``; TGI ``/generate`` (text mode):
  ``parameters.grammar`` of the same shape. Both by `._tgi_wire.tgi_grammar`.
- A URL endpoint that speaks OpenAI's shape through huggingface_hub (``response_format_style =
  "openai"``, e.g. an Inference Endpoint running vLLM): `hub_openai_endpoint` sends the schema
  as vLLM's ``structured_outputs.json``, because huggingface_hub 2.4 rewrites a ``json_schema``
  format for any URL into ``{"type": "json_object", "value": schema}`` (TGI's form), which vLLM
  0.32 reads as bare JSON mode: the schema would be dropped without an error.
- The HF router's providers: sent as it is (huggingface_hub does not rewrite it there).
"""

from __future__ import annotations

from typing import Any

from ._tgi_wire import Unsupported

__all__ = ["hub_openai_endpoint"]


def hub_openai_endpoint(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``chat_completion`` keyword arguments for an OpenAI-shaped URL endpoint: a JSON schema as ``structured_outputs``.

    Raises:
        Unsupported: ``extra_body`` already sets ``structured_outputs`` (vLLM takes one constraint).
    """
    fmt = kwargs.get("response_format")
    schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or schema is None:
        return kwargs
    extra = dict(kwargs.get("extra_body") or {})
    if "structured_outputs" in extra:
        raise Unsupported("response_format and extra_body's structured_outputs both constrain the reply: give one")
    extra["structured_outputs"] = {"json": schema}
    moved = {k: v for k, v in kwargs.items() if k != "response_format"}
    moved["extra_body"] = extra
    return moved
