"""The Gradescope autograder: `python -m utils.grade gradescope --out DIR [--lessons 01 02]` writes
DIR/autograder.zip.

Gradescope unpacks the zip into /autograder/source, runs setup.sh once to build the image (Ubuntu: Python, the
pinned requirements with CPU torch, bubblewrap), then for each submission runs /autograder/run_autograder, which
grades /autograder/submission/ (notebooks or zips at any depth) with the same scoring as `python -m utils.grade`
and writes /autograder/results/results.json: one test per exercise (name, score, max_score, output = that
exercise's feedback). The root comes from $AUTOGRADER_ROOT (default /autograder), so tests/ run it in a temporary
folder laid out the same way.

Inside Gradescope's container the grader runs as root and the learner's kernel runs in the same bubblewrap sandbox
as on an instructor's machine, as an unprivileged uid. Where the container does not let bwrap start (no unprivileged
user namespaces), the autograder refuses: it runs no learner code and writes a results.json that says why and what
the image needs. There is no fallback without the sandbox: a kernel as a plain unprivileged user beside a root
launcher leaves root acting on paths the learner controls (its runtime folder, its connection file) and lets its
daemons outlive it, and making that sound is a second sandbox to maintain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

from . import sandbox
from .batch import Grader, Settings, make_run_dir, remove_run_dir
from .reports import INSTRUCTOR_ONLY, exercise_feedback
from .scoring import points_table
from .submissions import Submission

ROOT = sandbox.ROOT

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, in /autograder/source, when it builds the autograder image (Ubuntu 22.04 or 24.04).
# The image needs bubblewrap and a kernel that lets an unprivileged user create user namespaces (bwrap runs as an
# unprivileged uid): kernel.unprivileged_userns_clone=1 where that sysctl exists, user.max_user_namespaces > 0,
# no AppArmor restriction (kernel.apparmor_restrict_unprivileged_userns=0) and a seccomp profile that allows
# unshare/clone with CLONE_NEWUSER. Where it does not, run_autograder grades nothing and every submission's
# results.json says so: use "Test Autograder" once after upload to see which.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends bubblewrap ca-certificates software-properties-common
sysctl -w kernel.unprivileged_userns_clone=1 2>/dev/null || true  # where the image may set it (often it may not)
sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 2>/dev/null || true
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
# the sandbox must start here, or every submission will be refused (the message says what is missing)
/autograder/venv/bin/python -c "
import sys, types; m = types.ModuleType('utils'); m.__path__ = ['utils']; sys.modules['utils'] = m
from utils.grading import sandbox
try:
    sandbox.check(); print('bubblewrap sandbox: OK')
except sandbox.SandboxUnavailable as e:
    print('WARNING: the autograder will refuse every submission:', e)
" || true
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


REFUSAL = ("The autograder could not grade your submission: its sandbox (bubblewrap) cannot start in this "
           "Gradescope image ({why}), and learners' code is never run without it. Nothing was run; your instructor "
           "has been told by this message. (Instructors: the image needs bubblewrap and unprivileged user "
           "namespaces; see setup.sh and the course README, or grade this class with `python -m utils.grade`.)")


def refusal(why: str, lessons: list[str]) -> dict:
    """results.json when the sandbox cannot start: every test 0 with the reason, nothing run."""
    output = REFUSAL.format(why=why.strip()[:600])
    tests = [{"name": f"{lesson} {name}", "score": 0.0, "max_score": float(points), "output": output}
             for lesson, name, points in points_table() if lesson in lessons]
    return {"score": 0.0, "tests": tests, "output": output, "visibility": "visible"}


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
    general = [msg for tag, msg in dict.fromkeys(map(tuple, result["problems"])) if tag not in INSTRUCTOR_ONLY]
    return {"tests": tests, "output": "\n".join(general) if general else "Graded.", "visibility": "visible"}


def run(root: Path) -> dict:
    config = json.loads((root / "source" / "config.json").read_text()) if (root / "source" / "config.json").exists() else {}
    lessons = config.get("lessons") or discovered_lessons()
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        sandbox.check()
    except sandbox.SandboxUnavailable as e:
        data = refusal(str(e).split(". Install bubblewrap")[0], lessons)
        (results_dir / "results.json").write_text(json.dumps(data, indent=1))
        return data
    settings = Settings(sandbox="bwrap", threads=os.cpu_count() or 1)
    run_dir = make_run_dir()
    grader = Grader(settings, run_dir)
    try:
        result = grader.grade(Submission("submission", "submission", [root / "submission"]))
    finally:
        grader.close()
        remove_run_dir(run_dir)
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
