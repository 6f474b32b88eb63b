"""Summarise the last `mutmut run`: the score per mutated module and every mutant not killed.

Run by `make mutation` after `mutmut run`. It reads mutmut's own result files (``mutants/**/*.meta``)
and exits 1 when fewer than ``--fail-under`` percent of the mutants were killed.

``--rerun DIR``: the ``mutants/`` folder of a later ``mutmut run NAME...`` of the survivors, on
newer code (new tests). A mutant it checked takes its status from there; one it did not keep
the complete run's; a mutant the newer code no longer has (its function is gone) is left out.
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
    parser.add_argument("--rerun", type=Path, help="the mutants/ folder of a later run of the survivors")
    args = parser.parse_args()
    later = _rerun(args.rerun) if args.rerun else None

    metas = sorted(args.mutants.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {args.mutants}/: run `mutmut run` first", file=sys.stderr)
        return 2
    total: Counter[str] = Counter()
    left: list[tuple[str, str]] = []
    not_run: list[str] = []
    print(f"{'module':<40} {'mutants':>7} {'killed':>7} {'score':>7}")
    for meta in metas:
        statuses = _statuses(meta, later)
        if not statuses:  # nothing to mutate (re-exports only), or every function is gone from the newer code
            continue
        if all(s == "not checked" for s in statuses.values()):  # `mutmut run GLOB` left this module out
            not_run.append(str(meta.relative_to(args.mutants)).removesuffix(".meta"))
            continue
        counts = Counter("killed" if s in KILLED else s for s in statuses.values())
        total.update(counts)
        left += sorted((name, s) for name, s in statuses.items() if s not in KILLED)
        module = str(meta.relative_to(args.mutants)).removesuffix(".meta")
        print(f"{module:<40} {len(statuses):>7} {counts['killed']:>7} {_score(counts):>6.1f}%")
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


def _rerun(folder: Path) -> dict[str, str]:
    """Every mutant of the later run's code, with its status there ("not checked" where it was not run)."""
    statuses: dict[str, str] = {}
    for meta in folder.rglob("*.py.meta"):
        for name, code in json.loads(meta.read_text("utf-8"))["exit_code_by_key"].items():
            statuses[name] = status_by_exit_code[code]
    return statuses


def _statuses(meta: Path, later: dict[str, str] | None) -> dict[str, str]:
    """Each mutant of one module and its status: with ``later``, the later run's status where it
    checked the mutant, else this run's, and mutants the later code no longer has left out."""
    codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    statuses = {name: status_by_exit_code[code] for name, code in codes.items()}
    if later is None:
        return statuses
    return {
        name: status if later[name] == "not checked" else later[name]
        for name, status in statuses.items()
        if name in later
    }


def _score(counts: Counter[str]) -> float:
    return 100.0 * counts["killed"] / max(sum(counts.values()), 1)


if __name__ == "__main__":
    sys.exit(main())
