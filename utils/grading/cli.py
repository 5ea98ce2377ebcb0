"""The command line: `python -m utils.grade` (see utils/grade.py for the usage)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .batch import Settings, grade_all
from .sandbox import SandboxUnavailable
from .scoring import points_table

USAGE = """\
python -m utils.grade SUBMISSIONS_DIR --out RESULTS_DIR [-j N] [--redo] [--no-sandbox]
python -m utils.grade --list                    # the exercises and their points
python -m utils.grade gradescope --out DIR      # DIR/autograder.zip for Gradescope
"""


def format_points_table() -> str:
    rows = points_table()
    width = max([len(n) for _, n, _ in rows] + [8])
    lines = [f"lesson  {'exercise':<{width}}  points"]
    lines += [f"{lesson:<6}  {name:<{width}}  {pts:>6}" for lesson, name, pts in rows]
    lines.append(f"{'total':<6}  {'':<{width}}  {sum(p for *_, p in rows):>6}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.grade", usage=USAGE,
                                description="Re-run every learner's notebooks in a sandbox and score each exercise.")
    p.add_argument("submissions", nargs="?", type=Path, help="one folder or .zip per learner")
    p.add_argument("--out", type=Path, help="results folder (grades.csv, grades.json, feedback/, skipped.txt)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="learners graded in parallel")
    p.add_argument("--redo", action="store_true", help="grade again learners already graded")
    p.add_argument("--list", action="store_true", help="print the exercises and their points, then exit")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run kernels as your own user without bubblewrap: ONLY for submissions you trust")
    p.add_argument("--sandbox", choices=["bwrap", "user", "none"], default="bwrap", help=argparse.SUPPRESS)
    d = Settings()
    p.add_argument("--cell-timeout", type=int, default=d.cell_timeout, help="seconds per notebook cell")
    p.add_argument("--exercise-timeout", type=int, default=d.exercise_timeout,
                   help="seconds for all test cases of one exercise")
    p.add_argument("--timeout", type=int, default=d.submission_timeout, help="seconds per submission")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help="address-space limit of each kernel")
    p.add_argument("--disk-mb", type=int, default=d.disk_mb, help="size of each of the kernel's private tmpfs")
    p.add_argument("--max-procs", type=int, default=d.max_procs, help="processes + threads per sandbox")
    p.add_argument("--every-cell", action="store_true",
                   help="also run the course's own cells that only show or check results (slower; their errors then "
                        "appear in the feedback)")
    p.add_argument("--seed", type=int, default=None, help="fixed seed for the test cases (default: secret)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gradescope"]:
        from .gradescope import main as gradescope_main

        return gradescope_main(argv[1:])
    ap = parser()
    args = ap.parse_args(argv)
    if args.list:
        print(format_points_table())
        return 0
    if args.submissions is None or args.out is None:
        ap.error("give SUBMISSIONS_DIR and --out RESULTS_DIR (or --list)")
    if not args.submissions.is_dir():
        ap.error(f"{args.submissions} is not a folder")
    settings = Settings(cell_timeout=args.cell_timeout, exercise_timeout=args.exercise_timeout,
                        submission_timeout=args.timeout, memory_mb=args.memory_mb, disk_mb=args.disk_mb,
                        max_procs=args.max_procs, seed=args.seed, sandbox="none" if args.no_sandbox else args.sandbox,
                        every_cell=args.every_cell)
    if settings.sandbox == "none":
        print("--no-sandbox: learners' code runs as your user, with your files and network. Trusted submissions only.",
              file=sys.stderr)
    try:
        results = grade_all(args.submissions, args.out, jobs=args.jobs, redo=args.redo, settings=settings)
    except SandboxUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to grade the rest", file=sys.stderr)
        return 130
    ok = sum(r["status"] == "ok" for r in results)
    skipped = (args.out / "skipped.txt").read_text().splitlines()
    print(f"{len(results)} learner(s) in {args.out / 'grades.csv'} ({ok} ran cleanly); feedback in "
          f"{args.out / 'feedback'}" + (f"; {len(skipped)} entries skipped (see skipped.txt)" if skipped else ""))
    return 0
