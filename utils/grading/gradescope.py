"""The Gradescope autograder: `python -m utils.grade gradescope --out DIR [--lessons 01 02]` writes
DIR/autograder.zip.

Gradescope unpacks the zip into /autograder/source, runs setup.sh once to build the image (Ubuntu: Python, the
pinned requirements with CPU torch, bubblewrap), then for each submission runs /autograder/run_autograder, which
grades /autograder/submission/ (notebooks or zips at any depth) with the same scoring as `python -m utils.grade`
and writes /autograder/results/results.json: one test per exercise (name, score, max_score, output = that
exercise's feedback). The root comes from $AUTOGRADER_ROOT (default /autograder), so tests/ run it in a temporary
folder laid out the same way.

Inside Gradescope's container the grader runs as root: the learner's kernel runs in the bubblewrap sandbox where
the container allows user namespaces, else as an unprivileged user (mode "user") with /autograder/source made
unreadable to it (chmod 700), so the reference answers stay out of reach either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from . import sandbox
from .batch import Grader, Settings, make_run_dir
from .reports import exercise_feedback
from .scoring import points_table
from .submissions import Submission

ROOT = sandbox.ROOT

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, in /autograder/source, when it builds the autograder image (Ubuntu 22.04 or 24.04).
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends bubblewrap ca-certificates software-properties-common
if ! command -v python3.12 >/dev/null && ! command -v python3.11 >/dev/null; then
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y --no-install-recommends python3.11 python3.11-venv
fi
PY=$(command -v python3.12 || command -v python3.11)
apt-get install -y --no-install-recommends "$(basename "$PY")-venv" || true
"$PY" -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
# CPU-only torch (the pinned version), then every other pinned requirement
TORCH=$(grep -E '^torch==' requirements.txt)
/autograder/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu "$TORCH"
/autograder/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
chmod -R a+rX /autograder/venv
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for each submission. AUTOGRADER_ROOT (default /autograder) and AUTOGRADER_PYTHON
# (default $AUTOGRADER_ROOT/venv/bin/python) let tests run it elsewhere.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
chmod 700 "$ROOT/source" "$ROOT/results" 2>/dev/null || true
mkdir -p "$ROOT/results"
cd "$ROOT/source"
exec "$PY" -m utils.grading.gradescope run --root "$ROOT"
"""


def discovered_lessons() -> list[str]:
    return sorted({lesson for lesson, *_ in points_table()})


def export(out: Path, lessons: list[str] | None = None) -> Path:
    """Write out/autograder.zip; `lessons` (default: every lesson) are the ones this assignment grades."""
    lessons = lessons or discovered_lessons()
    unknown = sorted(set(lessons) - set(discovered_lessons()))
    if unknown:
        raise ValueError(f"no exercises for lesson(s) {', '.join(unknown)} (known: {', '.join(discovered_lessons())})")
    out.mkdir(parents=True, exist_ok=True)
    target = out / "autograder.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            zf.writestr(info, text)
        zf.writestr("config.json", json.dumps({"lessons": lessons}))
        zf.write(ROOT / "requirements.txt", "requirements.txt")
        for top in ("utils", "data", "notebooks"):  # notebooks/: the templates, to tell the course's cells
            for p in sorted((ROOT / top).rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"):
                    zf.write(p, str(p.relative_to(ROOT)))
    return target


# ---------------------------------------------------------------------------------------------------------
# Inside Gradescope's container
# ---------------------------------------------------------------------------------------------------------


def sandbox_mode() -> str:
    """bwrap where the container allows it, else (as root) an unprivileged user. CODEBREAK_SANDBOX forces one."""
    forced = os.environ.get("CODEBREAK_SANDBOX")
    if forced in ("bwrap", "user"):
        return forced
    try:
        sandbox.check()
        return "bwrap"
    except sandbox.SandboxUnavailable:
        if os.geteuid() == 0:
            return "user"
        raise


def results_json(result: dict, lessons: list[str]) -> dict:
    """Gradescope's results: one test per exercise of the assignment's lessons."""
    tests = []
    submitted = {nb["lesson"] for nb in result["notebooks"].values()}
    for lesson, name, points in points_table():
        if lesson not in lessons:
            continue
        e = result["exercises"].get(name)
        if e is None:
            why = "not submitted" if lesson not in submitted else "not graded"
            output = f"No notebook for lesson {lesson} was found in your submission." if why == "not submitted" else why
            tests.append({"name": f"{lesson} {name}", "score": 0.0, "max_score": float(points), "output": output})
            continue
        if e["passed"] == e["total"] and e["score"] == e["points"]:
            output = f"All {e['total']} test cases passed."
        else:
            output = "\n".join(exercise_feedback(name, e)[1:]).strip()
        tests.append({"name": f"{lesson} {name}", "score": float(e["score"]), "max_score": float(points), "output": output})
    general = [msg for _, msg in dict.fromkeys(map(tuple, result["problems"]))]
    return {"tests": tests, "output": "\n".join(general) if general else "Graded.", "visibility": "visible"}


def run(root: Path) -> dict:
    config = json.loads((root / "source" / "config.json").read_text()) if (root / "source" / "config.json").exists() else {}
    lessons = config.get("lessons") or discovered_lessons()
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        settings = Settings(sandbox=sandbox_mode(), threads=os.cpu_count() or 1)
    except sandbox.SandboxUnavailable as e:
        data = {"score": 0.0, "output": f"The autograder could not start its sandbox: {e}"}
        (results_dir / "results.json").write_text(json.dumps(data, indent=1))
        return data
    with tempfile.TemporaryDirectory(prefix="codebreak-") as tmp:
        Path(tmp).chmod(0o711)
        run_dir = make_run_dir(Path(tmp))
        grader = Grader(settings, run_dir)
        try:
            result = grader.grade(Submission("submission", "submission", [root / "submission"]))
        finally:
            grader.close()
            shutil.rmtree(run_dir, ignore_errors=True)
    data = results_json(result, lessons)
    (results_dir / "results.json").write_text(json.dumps(data, indent=1))
    return data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        p = argparse.ArgumentParser(prog="utils.grading.gradescope run")
        p.add_argument("--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")))
        run(p.parse_args(argv[1:]).root)
        return 0
    p = argparse.ArgumentParser(prog="python -m utils.grade gradescope")
    p.add_argument("--out", type=Path, required=True, help="folder for autograder.zip")
    p.add_argument("--lessons", nargs="+", default=None, help="the lessons this assignment grades (default: all)")
    args = p.parse_args(argv)
    try:
        target = export(args.out, args.lessons)
    except ValueError as e:
        p.error(str(e))
    print(f"{target}: upload it as the autograder of a Gradescope programming assignment (Ubuntu image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
