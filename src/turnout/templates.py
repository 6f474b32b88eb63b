"""Deprecated: chat templates moved to `turnout.providers.llama2_template` (this alias goes in 0.3.0)."""

import warnings

from .providers.llama2_template import (
    ChatTemplate,
    Llama2ChatTemplate,
    get_template,
    message_text,
    register_template,
    template_names,
)

__all__ = ["ChatTemplate", "Llama2ChatTemplate", "get_template", "message_text", "register_template", "template_names"]

warnings.warn("turnout.templates is now turnout.providers.llama2_template", DeprecationWarning, stacklevel=2)
