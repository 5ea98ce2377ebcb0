"""Grading a folder of submissions: one worker per learner (parallel with -j), resumable, interruptible.

For each learner the grader writes the notebooks and each case's inputs into a private folder, starts the worker
(runner.py) on it, and scores what the worker collected (scoring.py). Only this process writes results; a
re-run skips learners whose submission and grader are unchanged (their results/<key>.json is kept). Ctrl-C,
SIGTERM and SIGHUP stop every worker and kernel at once and remove the temporary folder; a learner not finished
is graded by the next run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import hashlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..checks.core import GRADING_ENV
from . import library_rule, sandbox, slicing
from .records import Job, NotebookSpec, ExerciseSpec, SandboxSpec, progress_from_json, Progress, NotebookRun, to_json
from .runner import code_cells
from .reports import build_reports, summarize, terminal, write_atomic
from .scoring import References, exercises_of, points_table, score_exercise
from .submissions import MAX_NOTEBOOK_BYTES, Submission, display_name, find_submissions, submission_hash

GRADER_VERSION = 2
MAX_RESULT_BYTES = 64 * 2**20  # one case's output
WORKER_MEMORY_MB = 2048 + 8 * MAX_RESULT_BYTES // 2**20  # the worker's address space (answers travel base64'd)


@dataclasses.dataclass
class Settings:
    cell_timeout: int = 120
    exercise_timeout: int = 120
    submission_timeout: int = 1800
    memory_mb: int = 6000
    file_mb: int = 1024
    disk_mb: int = 512  # each of the kernel's two private tmpfs (cwd, /tmp)
    max_procs: int = 256  # processes + threads per sandbox
    max_output_chars: int = 20000  # printed characters kept per cell
    flood_chars: int = 1_000_000  # more printed (dropped) characters than this are reported
    max_kernel_starts: int = 4
    seed: int | None = None
    threads: int | None = None  # torch threads per kernel (default: CPU cores / parallel jobs)
    sandbox: str = "bwrap"  # "none": no sandbox, trusted submissions only (there is no other mode)
    every_cell: bool = False  # run the course's display-only cells too (slicing.py), for their errors in feedback


def grader_fingerprint() -> str:
    """Changes when the exercises, their points, the checks, the reference answers or the grader change."""
    h = hashlib.sha256(f"v{GRADER_VERSION}".encode())
    for lesson, name, pts in points_table():
        h.update(f"{lesson}/{name}/{pts};".encode())
    utils_dir = sandbox.UTILS_DIR
    for folder in ("checks", "reference", "grading"):
        for p in sorted((utils_dir / folder).glob("*.py")):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def plain_env(private: Path, threads: int) -> dict[str, str]:
    """--no-sandbox: the kernel's environment, with the course copied into the learner's private folder."""
    env = sandbox.kernel_env(threads, GRADING_ENV)
    for key in sandbox.python_env():  # what the sandbox's relocated Python needs, not this one
        env.pop(key)
    home = private / "home"
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
               HOME=str(home), TMPDIR=str(private / "tmp"), PYTHONPATH=str(private / "course"),
               IPYTHONDIR=str(home / ".ipython"), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / "data"), MPLCONFIGDIR=str(home / ".matplotlib"))
    return env


def worker_env(private: Path) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(private / "home"), "LANG": "C.UTF-8",
            "JUPYTER_RUNTIME_DIR": str(private / "runtime"), "JUPYTER_PLATFORM_DIRS": "1",
            "JUPYTER_CONFIG_DIR": str(private / "home" / ".jupyter"), "JUPYTER_DATA_DIR": str(private / "home" / "data"),
            "PYTHONDONTWRITEBYTECODE": "1"}


def limit_worker(private_mounts: bool = False) -> None:
    """In the worker, before exec: a soft address-space limit (the kernel launcher sets its own, lower or higher),
    so that nothing a kernel sends can make the worker exhaust the grader's machine; as root, a mount namespace of
    its own (the kernels' socket folders are tmpfs mounted there, gone with the worker however it ends)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = WORKER_MEMORY_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    if private_mounts:
        try:
            sandbox.private_mount_namespace()
        except OSError:  # root without CAP_SYS_ADMIN (some containers): the runner sees that and mounts nothing
            pass


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def new_result(sub: Submission, fingerprint: str, key_hash: str, seed: int, problems: list) -> dict[str, Any]:
    return {"learner": sub.learner, "key": sub.key, "submission": " + ".join(display_name(p.name) for p in sub.paths),
            "grader": fingerprint, "hash": key_hash, "seed": seed, "notebooks": {}, "exercises": {},
            "problems": [list(p) for p in problems], "timings": {}}


# Python 3.11's parser is not safe to run in two threads at once ("SystemError: AST constructor recursion depth
# mismatch"): the grader's analyses of learners' source (the slicer, the library rule) take turns. They are pure
# Python, which takes turns on the interpreter lock anyway.
SYNTAX_LOCK = threading.Lock()


def library_verdicts(path: Path, lesson: str, nb: NotebookRun, left_out: list[int]) -> tuple[dict, dict]:
    """({exercise: why it scores 0 under the library rule, or None}, {exercise: a note on code copied from the
    library, or None}) for the lesson's exercises, from the notebook as its grading run ran it."""
    with SYNTAX_LOCK:
        rule = library_rule.for_notebook(path, lesson, nb, left_out)
        verdicts = {ex.name: rule.verdict(ex) if rule else None for ex in exercises_of(lesson)}
        copies = {ex.name: rule.copied(ex) if rule and not verdicts[ex.name] else None for ex in exercises_of(lesson)}
    return verdicts, copies


class Grader:
    """Grades one learner at a time (thread-safe: grade() may run in several threads)."""

    def __init__(self, settings: Settings, run_dir: Path):
        import utils.checks  # noqa: F401  (registers every exercise)

        self.settings = settings
        self.seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
        self.fingerprint = grader_fingerprint()
        self.refs = References(self.seed)
        self.run_dir = run_dir
        self.course = sandbox.make_course(run_dir / "course")
        self.course_cells = {} if settings.every_cell else slicing.course_cells()
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.uids = sandbox.UidPool()
        self.stopping = False

    def close(self) -> None:
        self.stopping = True
        with self._lock:
            for proc in list(self._procs):
                kill_group(proc.pid)
        self.uids.close()

    def grade(self, sub: Submission) -> dict:
        started = time.time()
        notebooks, problems = sub.read()
        result = new_result(sub, self.fingerprint, submission_hash(notebooks, problems), self.seed, problems)
        to_run = {}
        for name in sorted(notebooks):
            lesson = name[:2]
            if exercises_of(lesson):
                to_run[lesson] = name
            else:
                result["notebooks"][name] = {"lesson": lesson, "status": "no exercises to grade"}
        if to_run:
            private = Path(tempfile.mkdtemp(prefix="learner-", dir=self.run_dir))
            uid = self.uids.acquire() if self.settings.sandbox == "bwrap" else None
            try:
                self.run_learner(notebooks, to_run, private, result, uid)
            finally:
                sandbox.remove_tree(private)
                self.uids.release(uid)
        result["seconds"] = round(time.time() - started, 1)
        summarize(result)
        return result

    # -----------------------------------------------------------------------------------------------------
    def prepare(self, notebooks: dict[str, bytes], to_run: dict[str, str], private: Path,
                uid: int | None = None) -> Job:
        """Write the notebooks and every case's inputs into `private`; the worker's job."""
        s = self.settings
        for d in ("notebooks", "args", "cases", "out", "home", "tmp", "runtime"):  # runtime: jupyter's, never the kernel's
            (private / d).mkdir()
        specs = []
        for lesson, name in sorted(to_run.items()):
            (private / "notebooks" / name).write_bytes(notebooks[name])
            sources, _ = code_cells(private / "notebooks" / name, MAX_NOTEBOOK_BYTES)
            exercises = []
            for ex in exercises_of(lesson):
                cases, _, _ = self.refs.get(ex)
                files = []
                for i, case in enumerate(cases):
                    files.append(f"{ex.name}-{i}.pt")
                    # cases/ is the worker's: it puts an exercise's files in args/ (which the kernel sees) only for
                    # that exercise's grading call, so no earlier cell can read the secret inputs
                    torch.save({"args": case.args, "kwargs": case.kwargs}, private / "cases" / files[-1])
                exercises.append(ExerciseSpec(ex.name, files, []))  # the library rule is decided here, not there
            with SYNTAX_LOCK:
                skip = slicing.skippable_cells(sources, self.course_cells.get(lesson, set()),
                                               {ex.name for ex in exercises}) \
                    if sources and self.course_cells.get(lesson) else []
                changes = library_rule.leaves_changes(sources, lesson) if sources is not None else False
            specs.append(NotebookSpec(name, lesson, exercises, skip, changes))
        for p in (private / "cases").iterdir():
            p.chmod(0o644)
        (private / "args").chmod(0o755)
        threads = s.threads or 1
        spec = SandboxSpec(mode=s.sandbox, course=str(self.course), uid=uid,
                           memory_mb=s.memory_mb, file_mb=s.file_mb, disk_mb=s.disk_mb, max_procs=s.max_procs,
                           cpu_seconds=s.submission_timeout * threads + 60)
        if s.sandbox == "bwrap":
            env, cwd, args_dir = sandbox.kernel_env(threads, GRADING_ENV), "", sandbox.ARGS_MOUNT
        else:
            env, cwd, args_dir = self.plain_kernel_dirs(private, threads)
        return Job(private=str(private), deadline=time.time() + s.submission_timeout, cell_timeout=s.cell_timeout,
                   exercise_timeout=s.exercise_timeout, max_output_chars=s.max_output_chars, flood_chars=s.flood_chars,
                   max_notebook_bytes=MAX_NOTEBOOK_BYTES, max_result_bytes=MAX_RESULT_BYTES,
                   max_kernel_starts=s.max_kernel_starts, env=env, sandbox=spec, notebooks=specs, kernel_cwd=cwd,
                   kernel_args_dir=args_dir, parent_pid=os.getpid(),
                   private_mounts=s.sandbox == "bwrap" and os.geteuid() == 0)

    def plain_kernel_dirs(self, private: Path, threads: int) -> tuple[dict, str, str]:
        """--no-sandbox: a copy of the course in the learner's folder, the kernel's cwd inside it."""
        shutil.copytree(self.course, private / "course")
        return plain_env(private, threads), str(private / "course" / "notebooks"), ""

    def run_worker(self, job: Job, private: Path, result: dict) -> Progress:
        """Start the worker, wait for it (killing it at the submission's time limit), read its progress."""
        log = open(private / "worker.log", "wb")
        with log:
            proc = subprocess.Popen(sandbox.bootstrap_argv("runner"), stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=private, env=worker_env(private),
                                    start_new_session=True,
                                    preexec_fn=lambda: limit_worker(job.private_mounts))
            with self._lock:
                self._procs.add(proc)
            try:
                proc.communicate(to_json(job).encode(), timeout=self.settings.submission_timeout + 60)
            except subprocess.TimeoutExpired:
                result["problems"].append(["time-limit", "the submission ran past its total time limit and was stopped"])
            finally:
                kill_group(proc.pid)
                proc.wait()
                with self._lock:
                    self._procs.discard(proc)
                self.kill_kernels(private)
        if self.stopping:
            raise KeyboardInterrupt
        try:
            progress = progress_from_json((private / "progress.json").read_text())
        except (OSError, ValueError, TypeError):
            progress = Progress()
        if not progress.done:
            tail = (private / "worker.log").read_bytes()[-1500:].decode(errors="replace")
            why = progress.worker_error or tail
            tag = "grader-error" if progress.worker_error else "worker-died"
            result["problems"].append([tag, f"the grading worker stopped early: {why.strip()[-800:]}"])
        return progress

    def kill_kernels(self, private: Path) -> None:
        """--no-sandbox kernels run in their own process groups (sandboxed ones die with the worker)."""
        try:
            for pgid in json.loads((private / "kernels.json").read_text()):
                kill_group(int(pgid))
        except (OSError, ValueError, TypeError):
            pass

    def run_learner(self, notebooks: dict[str, bytes], to_run: dict[str, str], private: Path, result: dict,
                    uid: int | None = None) -> None:
        t0 = time.monotonic()
        job = self.prepare(notebooks, to_run, private, uid)
        t1 = time.monotonic()
        progress = self.run_worker(job, private, result)
        t2 = time.monotonic()
        for lesson, name in sorted(to_run.items()):
            nb = progress.notebooks.get(name) or NotebookRun(status="not run")
            skipped = next((len(spec.skip) for spec in job.notebooks if spec.file == name), 0)
            result["notebooks"][name] = {"lesson": lesson, "status": nb.status, "cell_errors": nb.cell_errors,
                                         "course_cells_not_run": skipped,
                                         "runs": nb.attempts, "kernel_starts": nb.kernels_started,
                                         "timings": nb.timings}
            result["problems"] += [list(p) for p in nb.problems]
            spec = next((spec for spec in job.notebooks if spec.file == name), None)
            left_out = nb.left_out if nb.left_out is not None else (spec.skip if spec else [])
            verdicts, copies = library_verdicts(private / "notebooks" / name, lesson, nb, left_out)
            for ex in exercises_of(lesson):
                result["exercises"][ex.name] = score_exercise(ex, self.refs, nb, private / "out", MAX_RESULT_BYTES,
                                                              library_use=verdicts[ex.name])
                if copies[ex.name]:
                    result["problems"].append(["copied-library", f"{name}: {copies[ex.name]}"])
        timings = {"prepare": t1 - t0, "worker": t2 - t1, "scoring": time.monotonic() - t2}
        for nb in progress.notebooks.values():
            for k, v in nb.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        result["timings"] = {k: round(v, 2) for k, v in timings.items()}


# ---------------------------------------------------------------------------------------------------------
# A whole folder
# ---------------------------------------------------------------------------------------------------------


def already_graded(path: Path, key_hash: str, fingerprint: str) -> bool:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return old.get("hash") == key_hash and old.get("grader") == fingerprint and "grader-error" not in old.get("status", "")


def failed_result(sub: Submission, grader: Grader, e: Exception) -> dict:
    result = new_result(sub, grader.fingerprint, "", grader.seed, [["grader-error", f"{e.__class__.__name__}: {e}"]])
    result["traceback"] = traceback.format_exc()[-2000:]
    summarize(result)
    return result


RUN_PREFIX = "codebreak-run-"
OWNER = ".owner"  # in a run folder: the grader's pid, flock-ed while it runs
RUN_LOCKS: dict[str, int] = {}  # this process's run-folder locks (released when it exits, however it ends)


def run_is_stale(folder: Path) -> bool:
    """Is `folder` (a run folder of this user's) left by a grader that is gone? Its owner file is no longer locked;
    a folder without one is an older grader's (pid in its name) or a half-made one (over ten minutes old)."""
    try:
        fd = os.open(folder / OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            os.kill(int(folder.name[len(RUN_PREFIX):].split("-")[0]), 0)
            return False
        except (ValueError, IndexError):
            return time.time() - folder.lstat().st_mtime > 600
        except ProcessLookupError:
            return True
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def make_run_dir(base: Path | None = None) -> Path:
    """<system temp>/codebreak-run-*: this run's temporary files (the course copy, each learner's private folder and
    its kernels' socket folders), outside the results folder, so that no path the sandbox sees names the
    instructor's folders and nothing is left in the results. Its name holds no pid; its owner file (the pid,
    readable by the grader's user only) stays locked while this process lives, so that folders of this user's runs
    that are gone (a grader killed with SIGKILL) are removed at the next start, without following links."""
    base = Path(base or tempfile.gettempdir())
    for old in base.glob(RUN_PREFIX + "*"):
        try:
            if not old.is_symlink() and old.lstat().st_uid == os.geteuid() and run_is_stale(old):
                sandbox.remove_tree(old)
        except OSError:
            pass
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=base))
    fd = os.open(run_dir / OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, str(os.getpid()).encode())
    RUN_LOCKS[str(run_dir)] = fd
    run_dir.chmod(0o711)
    return run_dir


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run folder (never following links) and release its lock."""
    sandbox.remove_tree(run_dir)
    fd = RUN_LOCKS.pop(str(run_dir), None)
    if fd is not None:
        os.close(fd)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def grade_all(submissions_dir: Path, out: Path, jobs: int = 1, redo: bool = False, settings: Settings | None = None,
              progress: bool = True) -> list[dict]:
    """Grade every submission not graded yet; rebuild the reports. Returns every learner's result."""
    from tqdm.auto import tqdm

    settings = dataclasses.replace(settings or Settings())
    if settings.sandbox == "bwrap":
        sandbox.check()
    elif settings.sandbox != "none":
        raise sandbox.SandboxUnavailable(f"sandbox mode {settings.sandbox!r} does not exist: the sandbox is bwrap; "
                                         "--no-sandbox only for submissions you trust")
    if settings.threads is None:
        settings.threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    subs, skipped = find_submissions(submissions_dir)
    (out / "results").mkdir(parents=True, exist_ok=True)
    run_dir = make_run_dir()
    try:  # an empty .tmp left in the results by an older version of the grader
        (out / ".tmp").rmdir()
    except OSError:
        pass
    grader = Grader(settings, run_dir)
    todo = [s for s in subs if redo or not already_graded(out / "results" / f"{s.key}.json",
                                                          submission_hash(*s.read()), grader.fingerprint)]
    bar = tqdm(total=len(todo), desc="grading", unit="learner", disable=not progress)
    for line in skipped:
        bar.write(terminal(line))
    if len(todo) < len(subs):
        bar.write(f"{len(subs) - len(todo)} learner(s) already graded (use --redo to grade them again)")

    def one(sub: Submission) -> dict | None:
        if grader.stopping:
            return None
        try:
            result = grader.grade(sub)
        except KeyboardInterrupt:
            return None
        except Exception as e:  # never stop the batch
            result = failed_result(sub, grader, e)
        write_atomic(out / "results" / f"{sub.key}.json", json.dumps(result, indent=1))
        return result

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for s in handlers:
            signal.signal(s, on_signal)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(one, sub) for sub in todo]
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            if r is not None:
                bar.set_postfix_str(terminal(f"{r['learner']}: {r['total']:g}/{r['max']:g}"))
                bar.update()
    except KeyboardInterrupt:
        bar.write("interrupted: stopping every worker and kernel; learners already graded are kept")
        raise
    finally:
        grader.close()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        remove_run_dir(run_dir)
        if in_main:
            for s, h in handlers.items():
                signal.signal(s, h)
        results = build_reports(out, [s.key for s in subs], skipped)
    return results
