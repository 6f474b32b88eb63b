"""The --html report, opened in a real headless Chromium: every chart renders, no JavaScript error, no network.

Chromium comes from the OS packages (``apt-get install -y chromium``; ``make browser``). Without it
this test skips, or fails when ``TURNOUT_REQUIRE_BROWSER=1`` (``make test`` sets it). Set
``TURNOUT_SCREENSHOT=docs/img/compare-report.png`` to refresh the screenshot in docs/compare.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import turnout
from turnout import Client
from turnout._compare import sample_prompts
from turnout._compare._report import write_html
from turnout.testing import Reply

from .conftest import Fakes

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
BROWSER_TIMEOUT_S = 90


def chromium() -> str:
    found = os.environ.get("TURNOUT_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    if found is None:
        message = "no Chromium: apt-get install -y chromium (or `make browser`), or set TURNOUT_CHROMIUM"
        if os.environ.get("TURNOUT_REQUIRE_BROWSER", "").strip() not in ("", "0"):
            pytest.fail(f"a headless browser is required (TURNOUT_REQUIRE_BROWSER=1): {message}", pytrace=False)
        pytest.skip(message)
    return found


def run_browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)


def script_answers(fakes: Fakes, items: list[turnout.PromptItem]) -> None:
    """gpt35 gets 3 of 4 right and answers fast; Llama 2 13B 2 of 3, slower; local 1 of 2, slowest."""
    for n, item in enumerate(items):
        right, wrong = item.expected_letter() or "A", "D" if item.expected_letter() != "D" else "A"
        step = (n % 5) * 0.01
        fakes.openai.enqueue(Reply(right if n % 4 else wrong, prompt_tokens=70, completion_tokens=1, delay=0.02 + step))
        fakes.tgi.enqueue(
            Reply(
                f"The answer is {right if n % 3 else wrong}", prompt_tokens=80, completion_tokens=5, delay=0.05 + step
            )
        )
        fakes.vllm.enqueue(Reply(right if n % 2 else wrong, prompt_tokens=80, completion_tokens=2, delay=0.08 + step))


def test_report_renders_in_headless_chromium(tmp_path: Path, fakes: Fakes) -> None:
    binary = chromium()
    items = sample_prompts()[:20]
    script_answers(fakes, items)
    extra = '[prices."local:meta-llama/Llama-2-7b-chat-hf"]\nusd_per_hour = 0.60\ntokens_per_second = 40\n'
    with Client(fakes.toml(tmp_path, extra)) as client:
        result = turnout.compare(client, items, models=["gpt35", "llama2-13b", "local"], concurrency=1)
    report = tmp_path / "report.html"
    write_html(result, report)
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)  # nothing to fetch

    shown = run_browser(binary, tmp_path / "profile-1", "--virtual-time-budget=10000", "--dump-dom", report.as_uri())
    assert shown.returncode == 0, shown.stderr[-2000:]
    console = [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged to the console (a JavaScript error?):\n" + "\n".join(console)
    dom = shown.stdout
    charts = [dom.split(f'id="chart-{i}"', 1)[1].split('id="chart-', 1)[0] for i in range(3)]
    for chart in charts:  # each chart's div holds the SVG plotly drew
        assert 'class="main-svg"' in chart
    score_vs_cost, latency, volume = charts
    assert score_vs_cost.count('class="trace scatter') == 1 and score_vs_cost.count('class="point"') == 3
    assert latency.count('class="trace boxes"') == 6  # latency and TTFT of each model
    assert volume.count('class="trace bars"') == 1 and volume.count('class="point"') == 3
    assert all(m.model in score_vs_cost and m.model in volume for m in result.models)

    shot = tmp_path / "report.png"
    taken = run_browser(
        binary, tmp_path / "profile-2", "--window-size=1200,1700", f"--screenshot={shot}", report.as_uri()
    )
    assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if target := os.environ.get("TURNOUT_SCREENSHOT"):
        shutil.copyfile(shot, target)
