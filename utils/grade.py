"""The instructors' grader: re-run every learner's notebooks and score each exercise.

    python -m utils.grade SUBMISSIONS_DIR --out RESULTS_DIR [-j N] [--redo]
    python -m utils.grade --list          # the exercises and their points (the one table: Exercise.points)

SUBMISSIONS_DIR holds one folder (or one .zip) per learner with any subset of the NN_*.ipynb notebooks.
For each exercise a learner gets `points x (test cases passed / test cases)`. RESULTS_DIR gets
grades.csv (one row per learner), grades.json (every case's result and failure message) and
feedback/<learner>.md; results/<learner>.json keeps each learner's result, keyed by a hash of the
submission and of the grader's checks, so a re-run only grades new or changed submissions (unless --redo).

How a submission is graded (see the README, "For instructors", for what this isolation does and does not
give):

- a worker process (utils/grade_worker.py, started with `python -I` in a clean environment, resource limits
  set) executes each notebook in a fresh kernel in a temporary folder that holds a pristine copy of utils/
  without utils/reference/, a copy of data/ and the learner's notebooks; CODEBREAK_GRADING=1 makes the
  notebook's own `test_*` calls no-ops; stored outputs are never read;
- this process makes each exercise's test cases from a secret random seed, ships only their inputs to the
  kernel, has the kernel call the learner's function by name and save the (normalized) outputs under fresh
  random file names, loads them with torch.load(weights_only=True) and compares them with the reference
  answer computed here. Nothing the kernel does to its own torch, checks or test functions changes a score.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from .checks.core import GRADING_ENV, REGISTRY, Case, Exercise

GRADER_VERSION = 1
PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
DATA_DIR = ROOT / "data"
WORKER = PACKAGE_DIR / "grade_worker.py"
NOTEBOOK_NAME = re.compile(r"^(\d\d)_[A-Za-z0-9_\-]*\.ipynb$")

MAX_NOTEBOOK_BYTES = 20 * 2**20  # a notebook file larger than this is not run
MAX_ZIP_BYTES = 200 * 2**20  # uncompressed notebooks read from one zip
MAX_RESULT_BYTES = 64 * 2**20  # one case's output file


def points_table() -> list[tuple[str, str, int]]:
    """(lesson, exercise, points) of every registered exercise, in lesson then registration order:
    the one table of points (`Exercise.points` in utils.checks.core.REGISTRY)."""
    import utils.checks  # noqa: F401  (registers every lesson)

    return sorted(((ex.lesson, ex.name, ex.points) for ex in REGISTRY.values()), key=lambda t: t[0])


def format_points_table() -> str:
    rows = points_table()
    width = max([len(n) for _, n, _ in rows] + [8])
    lines = [f"lesson  {'exercise':<{width}}  points"]
    lines += [f"{lesson:<6}  {name:<{width}}  {pts:>6}" for lesson, name, pts in rows]
    lines.append(f"{'total':<6}  {'':<{width}}  {sum(p for *_, p in rows):>6}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary file next to `path`, then os.replace it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", name).strip(".") or "learner"


@dataclasses.dataclass
class Submission:
    learner: str
    path: Path

    def read(self) -> tuple[dict[str, bytes], list[tuple[str, str]]]:
        """The learner's notebooks {file name: bytes} (NN_*.ipynb, found at any depth) and problems."""
        problems: list[tuple[str, str]] = []
        found: dict[str, bytes] = {}

        def take(name: str, data: bytes, where: str) -> None:
            base = name.replace("\\", "/").split("/")[-1]
            parts = name.replace("\\", "/").split("/")
            if not NOTEBOOK_NAME.match(base) or any(p in (".ipynb_checkpoints", "__MACOSX") for p in parts):
                return
            if base in found:
                problems.append(("duplicate", f"two files named {base}; graded the first ({where})"))
                return
            found[base] = data

        if self.path.is_dir():
            for p in sorted(self.path.rglob("*.ipynb")):
                if p.is_file() and not p.is_symlink():
                    if p.stat().st_size > MAX_NOTEBOOK_BYTES:
                        problems.append(("invalid-notebook", f"{p.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB"))
                        continue
                    take(str(p.relative_to(self.path)), p.read_bytes(), str(p.relative_to(self.path)))
        else:
            try:
                with zipfile.ZipFile(self.path) as zf:
                    total = 0
                    for info in sorted(zf.infolist(), key=lambda i: i.filename):
                        if info.is_dir() or not info.filename.endswith(".ipynb"):
                            continue
                        total += info.file_size
                        if info.file_size > MAX_NOTEBOOK_BYTES or total > MAX_ZIP_BYTES:
                            problems.append(("invalid-notebook", f"{info.filename} is too large"))
                            continue
                        take(info.filename, zf.read(info), info.filename)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
                problems.append(("invalid-zip", f"{self.path.name} is not a readable zip file ({e})"))
        if not found and not problems:
            problems.append(("no-notebooks", "no NN_*.ipynb notebook found in the submission"))
        return found, problems


def find_submissions(submissions_dir: Path) -> list[Submission]:
    """One folder or .zip per learner (hidden entries ignored). A learner with both gets the folder."""
    subs: dict[str, Submission] = {}
    for p in sorted(submissions_dir.iterdir()):
        if p.name.startswith((".", "_")):
            continue
        if p.is_dir():
            subs[safe_name(p.name)] = Submission(safe_name(p.name), p)
    for p in sorted(submissions_dir.iterdir()):
        if p.is_file() and p.suffix.lower() == ".zip" and not p.name.startswith("."):
            name = safe_name(p.stem)
            if name in subs:
                name = safe_name(p.name)
            subs[name] = Submission(name, p)
    return sorted(subs.values(), key=lambda s: s.learner)


def submission_hash(notebooks: dict[str, bytes], problems) -> str:
    h = hashlib.sha256()
    for name in sorted(notebooks):
        h.update(name.encode() + b"\0" + hashlib.sha256(notebooks[name]).digest())
    h.update(json.dumps(problems).encode())
    return h.hexdigest()


def grader_fingerprint() -> str:
    """Changes when the exercises, their points, the checks or the reference answers change."""
    h = hashlib.sha256(f"v{GRADER_VERSION}".encode())
    for lesson, name, pts in points_table():
        h.update(f"{lesson}/{name}/{pts};".encode())
    for folder in ("checks", "reference"):
        for p in sorted((PACKAGE_DIR / folder).glob("*.py")):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    cell_timeout: int = 120
    exercise_timeout: int = 120
    submission_timeout: int = 1800
    memory_mb: int = 6000
    file_mb: int = 1024
    max_output_chars: int = 20000  # printed characters kept per cell
    flood_chars: int = 1_000_000  # more printed (dropped) characters than this are reported
    max_kernel_starts: int = 4
    seed: int | None = None
    threads: int | None = None  # torch threads per kernel (default: CPU cores / parallel jobs)


def clean_env(sandbox: Path, private: Path, threads: int) -> dict[str, str]:
    """The kernel's whole environment: nothing from the grader's (no PYTHONPATH, no VIRTUAL_ENV...)."""
    home = sandbox / "home"
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "TMPDIR": str(sandbox / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "CUDA_VISIBLE_DEVICES": "",
        GRADING_ENV: "1",
    }


def make_template(dest: Path) -> Path:
    """A pristine copy of the grader's own utils/ (without reference/) and data/."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "reference", "grade.py", "grade_worker.py")
    shutil.copytree(PACKAGE_DIR, dest / "utils", ignore=ignore)
    shutil.copytree(DATA_DIR, dest / "data", ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return dest


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


class Grader:
    def __init__(self, settings: Settings):
        import utils.checks  # noqa: F401  (registers every exercise)

        self.settings = settings
        self.seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
        self.fingerprint = grader_fingerprint()
        self._cases: dict[str, tuple[list[Case], list[Any] | None, str]] = {}
        # One lock for every reference computation: the references share cached models (checks.core._build_ref),
        # and one that runs with hooks (ablations) must not overlap another thread's forward pass.
        self._reference_lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self._procs_lock = threading.Lock()
        self.run_dir = Path(tempfile.mkdtemp(prefix="codebreak-grade-"))
        self.template = make_template(self.run_dir / "template")
        self.stopping = False

    def close(self) -> None:
        self.stopping = True
        with self._procs_lock:
            for proc in list(self._procs):
                _kill_group(proc.pid)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def exercises_of(self, lesson: str) -> list[Exercise]:
        return [ex for ex in REGISTRY.values() if ex.lesson == lesson]

    def cases(self, ex: Exercise) -> tuple[list[Case], list[Any] | None, str]:
        """The cases of `ex` on this run's secret seed and the reference outputs, computed here once."""
        with self._reference_lock:
            if ex.name not in self._cases:
                cases = ex.cases(self.seed)
                try:
                    expected = [ex.expected(c) for c in cases]
                    error = ""
                except Exception as e:
                    expected, error = None, f"{e.__class__.__name__}: {e}"
                self._cases[ex.name] = (cases, expected, error)
            return self._cases[ex.name]

    # -----------------------------------------------------------------------------------------------------
    def grade(self, sub: Submission) -> dict:
        started = time.time()
        notebooks, problems = sub.read()
        result: dict[str, Any] = {
            "learner": sub.learner,
            "submission": sub.path.name,
            "grader": self.fingerprint,
            "hash": submission_hash(notebooks, problems),
            "seed": self.seed,
            "notebooks": {},
            "exercises": {},
            "problems": [list(p) for p in problems],
        }
        by_lesson: dict[str, str] = {}
        for name in sorted(notebooks):
            lesson = NOTEBOOK_NAME.match(name).group(1)
            if lesson in by_lesson:
                result["problems"].append(["duplicate", f"two notebooks for lesson {lesson}: graded {by_lesson[lesson]}"])
                continue
            by_lesson[lesson] = name
        for lesson, name in sorted(by_lesson.items()):
            if not self.exercises_of(lesson):
                result["notebooks"][name] = {"lesson": lesson, "status": "no exercises to grade"}
        to_run = {lesson: name for lesson, name in by_lesson.items() if self.exercises_of(lesson)}
        if to_run:
            self._run_worker(sub, notebooks, to_run, result)
        result["seconds"] = round(time.time() - started, 1)
        summarize(result)
        return result

    def _run_worker(self, sub: Submission, notebooks: dict[str, bytes], to_run: dict[str, str], result: dict) -> None:
        s = self.settings
        box = Path(tempfile.mkdtemp(prefix="sub-", dir=self.run_dir))
        sandbox = box / "sandbox"
        private = Path(tempfile.mkdtemp(prefix="private-", dir=self.run_dir))
        try:
            shutil.copytree(self.template, sandbox)
            for d in ("notebooks", "home", "tmp"):
                (sandbox / d).mkdir(exist_ok=True)
            (private / "args").mkdir()
            (private / "runtime").mkdir()
            for name in to_run.values():
                (sandbox / "notebooks" / name).write_bytes(notebooks[name])
            specs, cases_of = [], {}
            for lesson, name in sorted(to_run.items()):
                exs = []
                for ex in self.exercises_of(lesson):
                    cases, _, _ = self.cases(ex)
                    cases_of[ex.name] = cases
                    files = []
                    for i, case in enumerate(cases):
                        fname = f"{ex.name}-{i}.pt"
                        torch.save({"args": case.args, "kwargs": case.kwargs}, private / "args" / fname)
                        files.append(fname)
                    exs.append({"name": ex.name, "args": files})
                specs.append({"file": name, "lesson": lesson, "exercises": exs})
            deadline = time.time() + s.submission_timeout
            job = {
                "sandbox": str(sandbox),
                "private": str(private),
                "template": str(self.template),
                "deadline": deadline,
                "cell_timeout": s.cell_timeout,
                "exercise_timeout": s.exercise_timeout,
                "memory_mb": s.memory_mb,
                "file_mb": s.file_mb,
                "max_output_chars": s.max_output_chars,
                "flood_chars": s.flood_chars,
                "max_notebook_bytes": MAX_NOTEBOOK_BYTES,
                "max_kernel_starts": s.max_kernel_starts,
                "env": clean_env(sandbox, private, s.threads),
                "notebooks": specs,
            }
            env = clean_env(sandbox, private, s.threads)
            proc = subprocess.Popen(
                [sys.executable, "-I", str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=private,
                env=env,
                start_new_session=True,
            )
            with self._procs_lock:
                self._procs.add(proc)
            try:
                out, _ = proc.communicate(json.dumps(job).encode(), timeout=s.submission_timeout + 60)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                out, _ = proc.communicate()
                result["problems"].append(["time-limit", "the submission ran past its total time limit and was stopped"])
            finally:
                with self._procs_lock:
                    self._procs.discard(proc)
                self._kill_kernels(private)
            progress = {}
            try:
                progress = json.loads((private / "progress.json").read_text())
            except (OSError, ValueError):
                pass
            if self.stopping:
                raise KeyboardInterrupt
            if not progress.get("done"):
                tail = (out or b"").decode(errors="replace")[-1500:]
                why = progress.get("worker_error") or tail
                result["problems"].append(["grader-error" if progress.get("worker_error") else "worker-died",
                                           f"the grading worker stopped early: {why.strip()[-800:]}"])
            for lesson, name in sorted(to_run.items()):
                nb = progress.get("notebooks", {}).get(name)
                if nb is None:
                    nb = {"status": "not run", "problems": [], "cell_errors": [], "exercises": {}}
                result["notebooks"][name] = {
                    "lesson": lesson,
                    "status": nb.get("status"),
                    "cell_errors": nb.get("cell_errors", []),
                    "kernel_starts": nb.get("attempts", 0),
                }
                result["problems"] += [list(p) for p in nb.get("problems", [])]
                for ex in self.exercises_of(lesson):
                    result["exercises"][ex.name] = self._score(ex, nb, private, cases_of[ex.name])
        finally:
            shutil.rmtree(box, ignore_errors=True)
            shutil.rmtree(private, ignore_errors=True)

    def _kill_kernels(self, private: Path) -> None:
        try:
            for pgid in json.loads((private / "kernels.json").read_text()):
                _kill_group(int(pgid))
        except (OSError, ValueError, TypeError):
            pass

    def _score(self, ex: Exercise, nb: dict, private: Path, cases: list[Case]) -> dict:
        _, expected, error = self.cases(ex)
        entry = {"lesson": ex.lesson, "points": ex.points, "score": 0.0, "passed": 0, "total": len(cases), "cases": []}
        if expected is None:
            entry["problem"] = f"grader error: the reference answer failed ({error})"
            entry["grader_error"] = True
            return entry
        if nb.get("status") == "invalid":
            entry["problem"] = "the notebook could not be read"
            return entry
        graded = nb.get("exercises", {}).get(ex.name)
        if graded is None:
            entry["problem"] = "not graded (the kernel died or time ran out before this exercise)"
            return entry
        statuses = []
        for i, (case, exp) in enumerate(zip(cases, expected)):
            name = graded["outputs"][i] if i < len(graded["outputs"]) else None
            status, message = "fail", ""
            if name is None:
                message = "no result: the call did not finish (time limit, or the kernel crashed)"
                status = "no-result"
            else:
                path = private / "out" / ex.name / name
                try:
                    if path.is_symlink() or path.stat().st_size > MAX_RESULT_BYTES:
                        raise ValueError("the output is too large")
                    record = torch.load(path, map_location="cpu", weights_only=True)
                    if not isinstance(record, dict):
                        raise ValueError("not a result record")
                except Exception as e:
                    record = {"status": "unreadable", "error": f"{e.__class__.__name__}: {str(e)[:200]}"}
                status = str(record.get("status"))
                if status == "ok":
                    try:
                        problem = ex.check_output(case, exp, record.get("value"))
                    except Exception as e:  # a value the comparison cannot handle
                        problem = f"could not compare your output ({e.__class__.__name__}: {e})"
                    status, message = ("pass", "") if problem is None else ("fail", problem)
                elif status == "missing":
                    message = f"no function named `{ex.name}` is defined in your notebook"
                elif status == "not_implemented":
                    message = "not implemented yet (raises NotImplementedError)"
                elif status == "error":
                    message = f"your function raised {record.get('error', '')}"
                elif status == "bad_type":
                    message = f"your function returned a {record.get('type')}, which is not what the exercise asks for"
                else:
                    message = f"the grader could not read your output ({record.get('error', status)})"
                    status = "fail"
            statuses.append(status)
            entry["cases"].append({"case": case.describe(), "status": status, "message": str(message)[:1000]})
        passed = statuses.count("pass")
        entry["passed"] = passed
        entry["score"] = round(ex.points * passed / max(1, len(cases)), 2)
        if graded.get("problem"):
            entry["problem"] = graded["problem"]
        elif statuses and all(s == "missing" for s in statuses):
            entry["problem"] = "function not defined"
        elif statuses and all(s == "not_implemented" for s in statuses):
            entry["problem"] = "not implemented"
        return entry


def summarize(result: dict) -> None:
    """Fill total, max, status and notes of a learner's result."""
    table = points_table()
    result["max"] = sum(p for *_, p in table)
    result["total"] = round(sum(e["score"] for e in result["exercises"].values()), 2)
    tags = []
    for tag, _ in result["problems"]:
        if tag not in tags:
            tags.append(tag)
    if any(e.get("grader_error") for e in result["exercises"].values()) and "grader-error" not in tags:
        tags.append("grader-error")
    result["status"] = "ok" if not tags else " ".join(tags)
    notes = [msg for _, msg in result["problems"]]
    submitted = {nb["lesson"] for nb in result["notebooks"].values()}
    missing = sorted({lesson for lesson, *_ in table} - submitted)
    if missing:
        notes.append("no notebook for lesson(s) " + ", ".join(missing))
    result["notes"] = "; ".join(dict.fromkeys(notes))


# ---------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------


def feedback_markdown(result: dict) -> str:
    lines = [f"# Grading feedback: {result['learner']}", ""]
    lines.append(f"**Total: {result['total']:g} / {result['max']:g} points.**")
    lines.append("")
    if result["problems"]:
        lines.append("Problems while running your notebooks:")
        lines += [f"- {msg}" for _, msg in dict.fromkeys(map(tuple, result["problems"]))]
        lines.append("")
    by_lesson: dict[str, list[str]] = {}
    for lesson, name, _ in points_table():
        by_lesson.setdefault(lesson, []).append(name)
    notebooks = {nb["lesson"]: (file, nb) for file, nb in result["notebooks"].items()}
    for lesson, names in by_lesson.items():
        if lesson not in notebooks:
            lines += [f"## Lesson {lesson}", "", "Not submitted.", ""]
            continue
        file, nb = notebooks[lesson]
        lines += [f"## Lesson {lesson} (`{file}`)", ""]
        for err in nb.get("cell_errors", [])[:10]:
            lines.append(f"- code cell {err['cell']} raised {err['error'].rstrip(': ')}")
        if nb.get("cell_errors"):
            lines.append("")
        lines += ["| exercise | points | tests passed |", "| --- | --- | --- |"]
        for name in names:
            e = result["exercises"].get(name)
            if e:
                lines.append(f"| `{name}` | {e['score']:g} / {e['points']:g} | {e['passed']} / {e['total']} |")
        lines.append("")
        for name in names:
            e = result["exercises"].get(name)
            if not e or e["passed"] == e["total"]:
                continue
            lines.append(f"### `{name}`")
            if e.get("problem"):
                lines.append(f"{e['problem'][0].upper()}{e['problem'][1:]}.")
                if e["problem"] in ("not implemented", "function not defined"):
                    lines.append("")
                    continue
            failed = [c for c in e["cases"] if c["status"] != "pass"]
            if failed:
                first = failed[0]
                lines.append(f"Failed {len(failed)} of {e['total']} test cases. First failing input: `{first['case']}`")
                lines.append("")
                lines.append("```")
                lines.append(first["message"])
                lines.append("```")
                hint = REGISTRY[name].hint if name in REGISTRY else ""
                if hint:
                    lines.append(f"Hint: {hint}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def build_reports(out: Path, learners: list[str]) -> list[dict]:
    """grades.csv, grades.json and feedback/*.md from the per-learner results of `learners`."""
    results = []
    for learner in learners:
        p = out / "results" / f"{learner}.json"
        try:
            results.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    names = [name for _, name, _ in points_table()]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["learner", *names, "total", "max", "status", "notes"])
    for r in results:
        cells = []
        for name in names:
            e = r["exercises"].get(name)
            cells.append("" if e is None else f"{e['score']:g}")
        writer.writerow([r["learner"], *cells, f"{r['total']:g}", f"{r['max']:g}", r["status"], r["notes"]])
    write_atomic(out / "grades.csv", buf.getvalue())
    write_atomic(out / "grades.json", json.dumps({r["learner"]: r for r in results}, indent=1))
    for r in results:
        write_atomic(out / "feedback" / f"{r['learner']}.md", feedback_markdown(r))
    return results


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def already_graded(path: Path, key_hash: str, fingerprint: str) -> bool:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return old.get("hash") == key_hash and old.get("grader") == fingerprint and "grader-error" not in old.get("status", "")


def grade_all(submissions_dir: Path, out: Path, jobs: int = 1, redo: bool = False, settings: Settings | None = None,
              progress: bool = True) -> list[dict]:
    """Grade every submission not graded yet; rebuild the reports. Returns the results of every learner."""
    from tqdm.auto import tqdm

    settings = settings or Settings()
    if settings.threads is None:
        settings.threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    subs = find_submissions(submissions_dir)
    (out / "results").mkdir(parents=True, exist_ok=True)
    grader = Grader(settings)
    todo = []
    for sub in subs:
        notebooks, problems = sub.read()
        key = submission_hash(notebooks, problems)
        if redo or not already_graded(out / "results" / f"{sub.learner}.json", key, grader.fingerprint):
            todo.append(sub)
    bar = tqdm(total=len(todo), desc="grading", unit="learner", disable=not progress)
    if len(todo) < len(subs):
        bar.write(f"{len(subs) - len(todo)} learner(s) already graded (use --redo to grade them again)")

    def one(sub: Submission) -> dict:
        try:
            result = grader.grade(sub)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # never stop the batch
            import traceback

            result = {"learner": sub.learner, "submission": sub.path.name, "grader": grader.fingerprint,
                      "hash": "", "notebooks": {}, "exercises": {},
                      "problems": [["grader-error", f"{e.__class__.__name__}: {e}"]],
                      "traceback": traceback.format_exc()[-2000:]}
            summarize(result)
        write_atomic(out / "results" / f"{sub.learner}.json", json.dumps(result, indent=1))
        return result

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(one, sub): sub for sub in todo}
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            bar.set_postfix_str(f"{r['learner']}: {r['total']:g}/{r['max']:g}")
            bar.update()
    except KeyboardInterrupt:
        bar.write("interrupted: stopping the workers; learners already graded are kept")
        grader.close()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
        grader.close()
        results = build_reports(out, [s.learner for s in subs])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="?", type=Path, help="one folder or .zip per learner")
    parser.add_argument("--out", type=Path, help="results folder (grades.csv, grades.json, feedback/)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="learners graded in parallel")
    parser.add_argument("--redo", action="store_true", help="grade again learners already graded")
    parser.add_argument("--list", action="store_true", help="print the exercises and their points, then exit")
    d = Settings()
    parser.add_argument("--cell-timeout", type=int, default=d.cell_timeout, help="seconds per notebook cell")
    parser.add_argument("--exercise-timeout", type=int, default=d.exercise_timeout,
                        help="seconds for all test cases of one exercise")
    parser.add_argument("--timeout", type=int, default=d.submission_timeout, help="seconds per submission")
    parser.add_argument("--memory-mb", type=int, default=d.memory_mb, help="address-space limit of each kernel")
    parser.add_argument("--seed", type=int, default=None, help="fixed seed for the test cases (default: secret)")
    args = parser.parse_args(argv)
    if args.list:
        print(format_points_table())
        return 0
    if args.submissions is None or args.out is None:
        parser.error("give SUBMISSIONS_DIR and --out RESULTS_DIR (or --list)")
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    settings = Settings(cell_timeout=args.cell_timeout, exercise_timeout=args.exercise_timeout,
                        submission_timeout=args.timeout, memory_mb=args.memory_mb, seed=args.seed)
    try:
        results = grade_all(args.submissions, args.out, jobs=args.jobs, redo=args.redo, settings=settings)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to grade the rest", file=sys.stderr)
        return 130
    ok = sum(r["status"] == "ok" for r in results)
    print(f"{len(results)} learner(s) in {args.out / 'grades.csv'} ({ok} ran cleanly); feedback in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
