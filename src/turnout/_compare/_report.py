"""``--html``: one self-contained HTML file with the table and plotly charts (``turnout[compare]``).

plotly.js is embedded in the page (https://plotly.com/python/interactive-html-export/), so
opening the file needs no network.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, TurnoutError
from ._cli import HEADERS, table_rows
from ._result import CompareResult

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["check_plotly", "render_html", "write_html"]

_CHART_HEIGHT = 420
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.chart { width: 100%; max-width: 1100px; margin-top: 1.5rem; }
.note { color: #666; font-size: 0.85rem; }
"""


def check_plotly() -> None:
    """Raise a `TurnoutError` naming the extra when plotly is not installed."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise TurnoutError("--html needs plotly: pip install 'turnout[compare]'") from None


def _score_vs_cost(result: CompareResult) -> go.Figure:
    import plotly.graph_objects as go

    shown = [m for m in result.models if m.score is not None and m.cost_per_1k is not None]
    figure = go.Figure(
        go.Scatter(
            x=[float(m.cost_per_1k) for m in shown if m.cost_per_1k is not None],
            y=[m.score for m in shown],
            text=[m.model for m in shown],
            mode="markers+text",
            textposition="top center",
            marker={"size": 14},
        )
    )
    left_out = [m.model for m in result.models if m not in shown]
    title = "Score vs cost per 1,000 requests" + (
        f" (not shown, score or cost unknown: {', '.join(left_out)})" if left_out else ""
    )
    figure.update_layout(
        title=title, xaxis_title="USD per 1,000 requests", yaxis_title="score", yaxis_range=[-0.05, 1.05]
    )
    return figure


def _latency(result: CompareResult) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure()
    for m in result.models:
        figure.add_trace(
            go.Box(
                y=[s.latency for s in m.samples if s.ok and s.latency is not None],
                name=f"{m.model} latency",
                boxpoints="all",
            )
        )
        figure.add_trace(
            go.Box(
                y=[s.ttft for s in m.samples if s.ok and s.ttft is not None], name=f"{m.model} TTFT", boxpoints="all"
            )
        )
    figure.update_layout(title="Latency and time to first token", yaxis_title="seconds", showlegend=False)
    return figure


def _volume(result: CompareResult) -> go.Figure:
    import plotly.graph_objects as go

    shown = [m for m in result.models if m.cost_per_1m is not None]
    figure = go.Figure(
        go.Bar(
            x=[m.model for m in shown],
            y=[float(m.cost_per_1m) for m in shown if m.cost_per_1m is not None],
            text=[_basis(m.cost_basis, m.output_tokens_per_second) for m in shown],
            textposition="outside",
        )
    )
    figure.update_layout(title="Cost per 1 M requests", yaxis_title="USD")
    return figure


def _basis(basis: str | None, rate: float | None) -> str:
    if basis == "gpu-hour":
        return f"GPU hour at {rate or 0:.0f} tok/s measured"
    return "per token"


def _table(result: CompareResult) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table_rows(result.models)
    )
    return f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(result: CompareResult) -> str:
    """The report as one HTML document with plotly.js inlined."""
    check_plotly()
    from plotly.offline import get_plotlyjs

    figures: list[Any] = [_score_vs_cost(result), _latency(result), _volume(result)]
    for figure in figures:
        figure.update_layout(height=_CHART_HEIGHT, margin={"t": 60, "b": 60})
    charts = "".join(
        f'<div class="chart">{f.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{i}")}</div>'
        for i, f in enumerate(figures)
    )
    judge = ""
    if result.judge is not None:
        j = result.judge
        cost = "unknown" if j.cost is None else f"${j.cost}"
        judge = (
            f'<p class="note">Judge {html.escape(j.model)}: {j.requests} requests, {j.errors} errors, cost {cost}.</p>'
        )
    title = f"turnout compare {html.escape(result.run_id)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>"
        f'<h1>{title}</h1><p class="note">{result.prompts} prompts x {result.repeat}, concurrency '
        f"{result.concurrency}, started {result.started_at:%Y-%m-%d %H:%M} UTC.</p>"
        f'{_table(result)}{judge}<div class="charts">{charts}</div></body></html>\n'
    )


def write_html(result: CompareResult, path: str | Path) -> None:
    """Write the report to ``path``.

    Raises:
        TurnoutError: plotly is not installed (``pip install 'turnout[compare]'``).
        InvalidArgumentError: the file cannot be written.
    """
    text = render_html(result)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write the report to {str(path)!r}: {exc.strerror or exc}") from None
