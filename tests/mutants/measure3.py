"""Run a held-out set (tests/mutants/heldout3.py or heldout4.py) through the learner checks and print, per wrong answer,
whether it was caught, the diagnosis lines the check showed ("Likely mistake:" / "Or, giving the same outputs:")
and the set's own description of the mistake; then whether each right answer is accepted; then the totals.

`python -m tests.mutants.measure3 heldout3|heldout4 [--json OUT] [--seeds 0 1] [--only EXERCISE ...]`

A wrong answer counts as caught when some case fails on every seed; named when any seed's report shows a diagnosis
line. The diagnosis is for a reviewer to compare with the cause: whether the line names the mistake is a judgement."""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings

import utils.checks  # noqa: F401  (registers every exercise)
from utils.checks.core import REGISTRY, run_cases


def diagnosis_lines(results) -> list[str]:
    """The distinct diagnosis lines of a run, in order."""
    lines = []
    for r in results:
        for line in r.diagnosis.splitlines():
            if line and line not in lines:
                lines.append(line)
    return lines


def run_wrong(name, fn, seeds) -> dict:
    caught, lines, raised, problems = True, [], False, []
    for seed in seeds:
        results = run_cases(REGISTRY[name], fn, seed)
        failed = [r for r in results if not r.passed]
        caught = caught and bool(failed)
        raised = raised or any(r.message.startswith("your function raised") for r in results)
        lines += [line for line in diagnosis_lines(results) if line not in lines]
        if failed and not problems:
            problems.append(failed[0].message.splitlines()[0][:160])
    return {"caught": caught, "diagnosis": lines, "raised": raised, "problem": problems[0] if problems else ""}


def run_right(name, fn, seeds) -> tuple[bool, str]:
    for seed in seeds:
        failed = [r for r in run_cases(REGISTRY[name], fn, seed) if not r.passed]
        if failed:
            return False, f"seed {seed}: {failed[0].label}: {failed[0].message.splitlines()[0][:200]}"
    return True, ""


def measure(module: str, seeds=(0, 1), only=(), json_out: str | None = None) -> dict:
    mod = importlib.import_module(f"tests.mutants.{module}")
    rows, accepted = [], []
    for name, ident, fn, cause in mod.WRONG:
        if only and name not in only:
            continue
        if name not in REGISTRY:
            print(f"?????? {name}: not a registered exercise")
            continue
        t = time.time()
        r = run_wrong(name, fn, seeds)
        rows.append({"exercise": name, "ident": ident, "caught": r["caught"], "diagnosis": r["diagnosis"],
                     "cause": cause, "raised": r["raised"], "problem": r["problem"]})
        print(f"{'caught' if r['caught'] else 'MISSED'} {'named' if r['diagnosis'] else '-----'} {name:28} {ident:26}"
              f"{'  (raised)' if r['raised'] else ''}  [{time.time() - t:.1f}s]", flush=True)
        print(f"       cause: {cause}")
        for line in r["diagnosis"]:
            print(f"       {line}")
    for name, ident, fn in mod.RIGHT:
        if only and name not in only:
            continue
        ok, why = run_right(name, fn, seeds)
        accepted.append({"exercise": name, "ident": ident, "accepted": ok, "why": why})
        print(f"{'accept' if ok else 'REJECT'} {name:28} {ident}{'  ' + why if why else ''}", flush=True)
    n = len(rows)
    totals = {"wrong": n, "caught": sum(r["caught"] for r in rows), "named": sum(bool(r["diagnosis"]) for r in rows),
              "raised": sum(r["raised"] for r in rows), "right": len(accepted),
              "accepted": sum(a["accepted"] for a in accepted)}
    if n:
        print(f"\n{module}: wrong answers {n}; caught {totals['caught']} ({totals['caught'] / n:.0%}); "
              f"named {totals['named']} ({totals['named'] / n:.0%}) [of caught: "
              f"{totals['named'] / max(totals['caught'], 1):.0%}]; raised {totals['raised']}")
    if accepted:
        print(f"right answers {len(accepted)}; accepted {totals['accepted']}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"set": module, "seeds": list(seeds), "totals": totals, "wrong": rows, "right": accepted}, f,
                      indent=1)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=["heldout3", "heldout4"])
    parser.add_argument("--json", dest="json_out", default=None, help="write the rows to this JSON file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", nargs="+", default=(), help="only these exercises")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    measure(args.set, tuple(args.seeds), tuple(args.only), args.json_out)


if __name__ == "__main__":
    main()
