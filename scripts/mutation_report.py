"""Summarise the last `mutmut run`: the score per mutated module and every mutant not killed.

Run by `make mutation` after `mutmut run`. It reads mutmut's own result files (``mutants/**/*.meta``)
and exits 1 when fewer than ``--fail-under`` percent of the mutants were killed.
Inspect one survivor with ``mutmut show NAME``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = {"killed", "caught by type check", "timeout"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-under", type=float, default=90.0, help="the lowest acceptable killed share, in %%")
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's working folder")
    args = parser.parse_args()

    metas = sorted(args.mutants.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {args.mutants}/: run `mutmut run` first", file=sys.stderr)
        return 2
    total: Counter[str] = Counter()
    left: list[tuple[str, str]] = []
    not_run: list[str] = []
    print(f"{'module':<40} {'mutants':>7} {'killed':>7} {'score':>7}")
    for meta in metas:
        codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
        if not codes:  # nothing to mutate (re-exports only)
            continue
        statuses = {name: status_by_exit_code[code] for name, code in codes.items()}
        if all(s == "not checked" for s in statuses.values()):  # `mutmut run GLOB` left this module out
            not_run.append(str(meta.relative_to(args.mutants)).removesuffix(".meta"))
            continue
        counts = Counter("killed" if s in KILLED else s for s in statuses.values())
        total.update(counts)
        left += sorted((name, s) for name, s in statuses.items() if s not in KILLED)
        module = str(meta.relative_to(args.mutants)).removesuffix(".meta")
        print(f"{module:<40} {len(codes):>7} {counts['killed']:>7} {_score(counts):>6.1f}%")
    print(f"{'total':<40} {sum(total.values()):>7} {total['killed']:>7} {_score(total):>6.1f}%")
    if not_run:
        print(f"not run (left out of this `mutmut run`): {', '.join(not_run)}")
    if total["not checked"]:
        # mutmut runs the mutants of functions every call reaches last (most tests to run): a run
        # stopped early leaves exactly those unchecked, and they would read as survivors here.
        print(f"\nINCOMPLETE: {total['not checked']} mutants not checked; the run was stopped", file=sys.stderr)
        return 1
    if left:
        print("\nnot killed (see docs/testing.md for why each one is left; `mutmut show NAME` for the change):")
        for name, status in left:
            print(f"  {status:<10} {name}")
    if _score(total) < args.fail_under:
        print(f"\nFAIL: {_score(total):.1f}% killed, under the {args.fail_under:g}% floor", file=sys.stderr)
        return 1
    return 0


def _score(counts: Counter[str]) -> float:
    return 100.0 * counts["killed"] / max(sum(counts.values()), 1)


if __name__ == "__main__":
    sys.exit(main())
