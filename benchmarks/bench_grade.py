"""Time to grade a class: `python benchmarks/bench_grade.py [--learners 20] [--jobs 2] [--budget-min 30]`.

Each fabricated learner hands in every solution notebook (full marks expected), so every notebook is re-executed
in its sandbox and every exercise checked, as for a class that did everything. Prints the wall time per run, and
per learner where the time goes: sandbox start (bwrap alone, measured apart), kernel start, library imports,
the learner's cells, the grading calls, the grader's own preparation and scoring. The run stops after
--budget-min minutes (learners not finished are reported), so it always ends. Nothing is written outside a
temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_models import cpu_name  # noqa: E402
from utils import grade  # noqa: E402
from utils.checks.core import GRADING_ENV  # noqa: E402
from utils.grading import sandbox  # noqa: E402
from utils.notebooks import SOLUTIONS  # noqa: E402

STEPS = ["prepare", "sandbox_start", "kernel_start", "imports", "reset", "execute", "grade_calls", "scoring"]


def sandbox_start_seconds(tmp: Path, repeats: int = 5) -> float:
    """Median wall time of `bwrap ... /bin/true` with the grader's mounts and limits."""
    course = sandbox.make_course(tmp / "bench-course")
    for d in ("args", "runtime"):
        (tmp / d).mkdir()
    spec = dict(mode="bwrap", course=str(course), uid=sandbox.sandbox_uid(0), memory_mb=6000, file_mb=1024,
                disk_mb=512, max_procs=256, cpu_seconds=60, args=str(tmp / "args"), runtime=str(tmp / "runtime"),
                env=sandbox.kernel_env(1, GRADING_ENV))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        sandbox.run_sandboxed(spec, ["/bin/true"])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report(results: list[dict], seconds: float, jobs: int, max_points: int, bwrap_s: float, sandbox_mode: str) -> None:
    done = [r for r in results if r.get("timings")]
    full = sum(r["total"] == max_points for r in done)
    print(f"  -j {jobs}, sandbox {sandbox_mode}: {seconds:7.1f} s for {len(done)} learners "
          f"({seconds / max(1, len(done)):.1f} s each); {full} with full marks ({max_points} points)")
    print(f"  {'learner':<12} {'total':>6} {'wall s':>7} " + " ".join(f"{s:>13}" for s in STEPS))

    def steps(r: dict) -> dict:
        starts = sum(nb.get("kernel_starts", 0) for nb in r["notebooks"].values())
        return dict(r["timings"], sandbox_start=bwrap_s * starts)

    for r in sorted(done, key=lambda r: r["learner"]):
        t = steps(r)
        print(f"  {r['learner']:<12} {r['total']:>6g} {r['seconds']:>7.1f} " + " ".join(f"{t.get(s, 0):>13.1f}" for s in STEPS))
    if done:
        means = {s: statistics.mean(steps(r).get(s, 0) for r in done) for s in STEPS}
        print(f"  {'mean':<12} {'':>6} {statistics.mean(r['seconds'] for r in done):>7.1f} "
              + " ".join(f"{means[s]:>13.1f}" for s in STEPS))
    print("  (per learner, seconds of wall time in its own worker; sandbox_start is part of kernel_start; with -j N,\n"
          "   N learners overlap)")
    lost = {}  # exercise -> (learners who lost points on it, one problem)
    for r in done:
        for name, e in r.get("exercises", {}).items():
            if e.get("score", 0) < e.get("points", 0):
                why = e.get("problem") or next((c["message"] for c in e.get("cases", []) if c["status"] != "pass"), "")
                lost.setdefault(name, [[], str(why)[:300]])[0].append(r["learner"])
    for name, (who, why) in sorted(lost.items()):
        print(f"  points lost on {name} by {', '.join(who)} (seed {done[0].get('seed')}): {why}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=20)
    parser.add_argument("--jobs", type=int, nargs="+", default=[2])
    parser.add_argument("--budget-min", type=float, default=30, help="stop each run after this many minutes")
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args()
    notebooks = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    max_points = sum(points for *_, points in grade.points_table())
    mode = "none" if args.no_sandbox else "bwrap"
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{args.learners} learners x {len(notebooks)} notebooks")
    with tempfile.TemporaryDirectory() as tmp:
        bwrap_s = sandbox_start_seconds(Path(tmp)) if mode == "bwrap" else 0.0
        print(f"  bwrap sandbox start (median of 5): {bwrap_s * 1000:.0f} ms")
        subs = Path(tmp) / "submissions"
        for i in range(args.learners):
            folder = subs / f"learner{i:02d}"
            folder.mkdir(parents=True)
            for nb in notebooks:
                shutil.copy(nb, folder / nb.name)
        for jobs in args.jobs:
            out = Path(tmp) / f"results-j{jobs}"
            signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
            signal.alarm(int(args.budget_min * 60))
            start = time.perf_counter()
            try:
                results = grade.grade_all(subs, out, jobs=jobs, progress=True, settings=grade.Settings(sandbox=mode))
            except KeyboardInterrupt:
                print(f"  stopped after the {args.budget_min:g}-minute budget; reporting the learners finished")
                results = grade.build_reports(out, [f"learner{i:02d}" for i in range(args.learners)])
            finally:
                signal.alarm(0)
            report(results, time.perf_counter() - start, jobs, max_points, bwrap_s, mode)


if __name__ == "__main__":
    main()
