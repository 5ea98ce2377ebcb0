"""Run the held-out wrong and right answers (tests/mutants/heldout.py) through every check and print the rates:
caught (rejected), named (a "Likely mistake:" line), misnamed (a line naming a mistake the answer does not make),
accepted (right answers that pass). `python -m tests.mutants.measure [exercise ...]`."""

from __future__ import annotations

import sys
import warnings

from utils.checks import core
from utils.checks.core import REGISTRY, run_cases

from .heldout import RIGHT, WRONG


def named_mistakes(exercise, results) -> list[str]:
    """The catalogued mistakes named, and the generic relations (utils/checks/generic.py) named as
    "generic:<message>": a generic relation holds by construction, so it is never counted as misnamed (read its
    message in the printout to judge whether its cause is the answer's)."""
    lines = [line for r in results for line in r.diagnosis.splitlines()]
    named = [m.name for m in exercise.mistakes for line in lines if line.endswith(m.message)]
    generic = [line.split(": ", 1)[1] for line in lines if not any(line.endswith(m.message) for m in exercise.mistakes)]
    return named + [f"{core.GENERIC}{text}" for text in generic]


def measure(only=(), seeds=(0,)):
    rows = []
    for name, ident, fn, causes in WRONG:
        if (only and name not in only) or name not in REGISTRY:
            continue
        ex = REGISTRY[name]
        caught, named, raised = True, [], False
        for seed in seeds:
            results = run_cases(ex, fn, seed)
            caught = caught and not all(r.passed for r in results)
            raised = raised or any(r.message.startswith("your function raised") for r in results)
            named += named_mistakes(ex, results)
        mis = [n for n in named if n not in causes and not n.startswith(core.GENERIC)]
        rows.append((name, ident, caught, bool(named), mis, raised))
        print(f"{'caught' if caught else 'MISSED':6} {'named' if named else '-----':5} {name:28} {ident:24} "
              f"{','.join(named)}{'  MISNAMED ' + ','.join(mis) if mis else ''}{'  (raised)' if raised else ''}", flush=True)
    accepted = []
    for name, ident, fn in RIGHT:
        if (only and name not in only) or name not in REGISTRY:
            continue
        ok = all(all(r.passed for r in run_cases(REGISTRY[name], fn, seed)) for seed in seeds)
        accepted.append(ok)
        print(f"{'accept' if ok else 'REJECT'} {name:28} {ident}", flush=True)
    n = len(rows)
    if n:
        print(f"\nwrong answers: {n}; caught {sum(r[2] for r in rows)} ({sum(r[2] for r in rows) / n:.0%}); "
              f"named {sum(r[3] for r in rows)} ({sum(r[3] for r in rows) / n:.0%}); "
              f"misnamed {sum(bool(r[4]) for r in rows)}; raised (wrong code in the mutant itself?) {sum(r[5] for r in rows)}")
    if accepted:
        print(f"right answers: {len(accepted)}; accepted {sum(accepted)}")
    return rows, accepted


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    measure(sys.argv[1:])
