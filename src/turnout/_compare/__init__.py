"""``turnout compare``: quality, speed and cost of each model on your own prompts, side by side.

See docs/compare.md. `compare` and `acompare` return a `CompareResult`; `write_html` draws it
(``pip install 'turnout[compare]'``).
"""

from ._prompts import PromptItem, load_prompts, parse_prompts, sample_prompts
from ._result import CompareResult, JudgeSummary, ModelResult, Sample
from ._run import Progress, acompare, compare
from ._score import chosen_letter, normalise

__all__ = [
    "CompareResult",
    "JudgeSummary",
    "ModelResult",
    "Progress",
    "PromptItem",
    "Sample",
    "acompare",
    "chosen_letter",
    "compare",
    "load_prompts",
    "normalise",
    "parse_prompts",
    "sample_prompts",
]
