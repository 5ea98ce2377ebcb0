"""Time to grade a class: `python benchmarks/bench_grade.py [--learners 20] [--jobs 1 2]`.

Each fabricated learner hands in every solution notebook (full marks expected), so every notebook is
re-executed and every exercise checked, as for a class that did everything. Prints the wall time per run of
`utils.grade` and per learner. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_models import cpu_name  # noqa: E402
from utils import grade  # noqa: E402
from utils.notebooks import SOLUTIONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=20)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    notebooks = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    max_points = sum(points for *_, points in grade.points_table())
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores; {args.learners} learners x {len(notebooks)} notebooks")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        for i in range(args.learners):
            folder = subs / f"learner{i:02d}"
            folder.mkdir(parents=True)
            for nb in notebooks:
                shutil.copy(nb, folder / nb.name)
        for jobs in args.jobs:
            out = Path(tmp) / f"results-j{jobs}"
            start = time.perf_counter()
            results = grade.grade_all(subs, out, jobs=jobs, progress=True)
            seconds = time.perf_counter() - start
            full = sum(r["total"] == max_points for r in results)
            print(f"  -j {jobs}: {seconds:7.1f} s for {len(results)} learners ({seconds / len(results):.1f} s each); "
                  f"{full} with full marks ({max_points} points)")


if __name__ == "__main__":
    main()
