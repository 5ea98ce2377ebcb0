"""The worker: runs one learner's notebooks in a (sandboxed) kernel for the grader (never run by hand).

Started by `batch` as `python -I` (see sandbox.bootstrap_argv) with the job (records.Job) as JSON on stdin. It
imports no torch and nothing of the course. It starts one kernel for the learner (importing the course's
libraries once: they are most of a notebook's time) and for each notebook:

1. resets the kernel's namespace (the learner's names are gone, imported modules stay) and working directory,
   so that no notebook sees another's names, as in a fresh kernel (after a notebook whose cells may leave code
   running or modules patched, NotebookSpec.fresh_kernel_after, the next one gets a fresh kernel instead);
2. reads the code cells (stored outputs are ignored) and executes them cell by cell, but those the grader found
   it need not run (slicing.py), errors allowed, with a per-cell time limit (a cell that will not stop is
   interrupted; a kernel that will not answer after that is killed), keeping at most a few kB of each cell's
   output;
3. if the kernel died (os._exit, out of memory, killed) or a cell would not stop when interrupted, starts a fresh
   one and runs the notebook again without the cell(s) that did it, so that the functions defined elsewhere are
   still graded (a re-run that leaves out a new cell or grades a new exercise is progress and does not count
   against the notebook's kernel starts: only the submission's time limit bounds them);
4. for each exercise, runs one cell that calls `utils.grading.kernel.grade`: the kernel answers each case with a
   display message carrying a random token; the worker stores each answer under `<private>/out/` (a folder the
   kernel cannot see) for the grader to load with torch.load(weights_only=True).

All of a learner's notebooks share the one sandbox, as they share one kernel at home; learners never share one.
Each kernel gets a fresh socket folder in the worker's private folder, removed (without following links) when the
kernel is shut down. Widget and comm messages are dropped, and at most MAX_OUTPUTS outputs are kept per cell.
Progress (records.Progress) is written atomically to <private>/progress.json after every step.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from . import sandbox
from .records import RESULT_MIME, ExerciseRun, ExerciseSpec, Job, NotebookRun, NotebookSpec, Progress, job_from_json, to_json

TIMEOUT_MARK = "CodebreakCellTimeout"
# Run in each fresh kernel before the learner's first cell, so that importing the course's libraries (seconds on
# a busy machine) is not charged to the learner's per-cell time limit. Its output is discarded.
WARMUP_CELL = """\
import importlib
for _name in ("torch", "einops", "jaxtyping", "eindex", "transformer_lens", "plotly.express", "circuitsvis"):
    try:
        importlib.import_module(_name)
    except Exception:
        pass
del importlib, _name
__import__("os").environ["CODEBREAK_KERNEL_CWD"] = __import__("os").getcwd()
"""
# Run in the learner's kernel before each notebook but the first: as a fresh kernel, but with the libraries imported.
# It drops every name the learner's cells made (what IPython's own `reset` drops, without its full garbage
# collection, which takes a second with torch loaded: refcounting frees the rest at once, cycles at the next
# automatic collection).
RESET_CELL = """\
(lambda ip, keep: [ip.user_ns["_oh"].clear()] + [ip.user_ns.pop(k) for k in list(ip.user_ns) if k not in keep]
 + [ip.user_ns.update(_="", __="", ___="")])(get_ipython(), {
    "In", "Out", "_ih", "_oh", "_dh", "get_ipython", "exit", "quit", "open", "__builtin__", "__builtins__", "__name__",
    "__doc__", "__loader__", "__package__", "__spec__"})
__import__("os").chdir(__import__("os").environ.get("CODEBREAK_KERNEL_CWD", "."))
__import__("torch").set_grad_enabled(True);
"""
WARMUP_TIMEOUT = 180  # seconds
PROBE_TIMEOUT = 10  # seconds a kernel gets to answer `pass` after an interrupted cell
MAX_OUTPUTS = 50  # outputs kept per cell (the rest counted as dropped output)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KERNEL_NAME = "codebreak-sandbox"
ARGS_MB = 1024  # as root, the arguments folder is a tmpfs of this size (the grader writes it: the cases of one exercise)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this worker when the grader dies (Linux), so that nothing outlives an interrupted batch."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `max_chars` printed characters per cell and no rich output; it takes
    the kernel's grading answers (display messages of type RESULT_MIME tagged with `token`) into `answers`."""

    max_chars = 20000
    max_answer_bytes = 64 * 2**20
    dropped_chars = 0
    token = ""
    answers: dict

    def handle_comm_msg(self, outs, msg, cell_index):
        """Widget and comm messages: dropped (nbclient would keep every widget's state, without a bound)."""
        return None

    def output(self, outs, msg, display_id, cell_index):
        msg_type = msg["msg_type"]
        content = msg.get("content", {})
        if msg_type in ("display_data", "execute_result", "update_display_data"):
            self.take_answer(content)
        if len(outs) >= MAX_OUTPUTS and msg_type != "error":
            self.dropped_chars += len(str(content.get("text", ""))) + 1
            return None
        if msg_type in ("display_data", "execute_result", "update_display_data"):
            content["data"] = {"text/plain": "[rich output not kept by the grader]"}
            content["metadata"] = {}
            content.pop("transient", None)
        elif msg_type == "stream":
            kept = sum(len(o.get("text", "")) for o in outs if o.get("output_type") == "stream")
            text = content.get("text", "")
            room = max(0, self.max_chars - kept)
            if len(text) > room:
                self.dropped_chars += len(text) - room
                content["text"] = text[:room]
                if not content["text"]:
                    return None
        elif msg_type == "error":
            content["traceback"] = [t[:2000] for t in content.get("traceback", [])[-10:]]
            content["evalue"] = str(content.get("evalue", ""))[:2000]
        return super().output(outs, msg, None, cell_index)

    def take_answer(self, content: dict) -> None:
        data = content.get("data", {}).get(RESULT_MIME)
        meta = content.get("metadata", {}).get(RESULT_MIME)
        if not self.token or not isinstance(data, str) or not isinstance(meta, dict) or meta.get("token") != self.token:
            return
        index = meta.get("index")
        if isinstance(index, int) and index not in self.answers and len(data) <= self.max_answer_bytes * 4 // 3 + 4:
            try:
                self.answers[index] = base64.b64decode(data, validate=True)
            except ValueError:
                pass


def code_cells(path: Path, max_bytes: int) -> tuple[list[str] | None, str]:
    """The source of every code cell, or (None, why the file is not a notebook)."""
    size = path.stat().st_size
    if size > max_bytes:
        return None, f"the file is {size / 2**20:.1f} MB, more than the {max_bytes / 2**20:.0f} MB allowed"
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"), as_version=4)
        sources = []
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                src = cell.get("source", "")
                sources.append("".join(src) if isinstance(src, list) else str(src))
        return sources, ""
    except Exception as e:  # not JSON, not a notebook
        return None, f"not a valid notebook ({e.__class__.__name__}: {str(e)[:200]})"


def error_of(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), ANSI.sub("", str(out.get("evalue", "")))[:300]
    return None


def is_memory_error(ename: str, evalue: str) -> bool:
    return ename == "MemoryError" or "can't allocate memory" in evalue or "out of memory" in evalue.lower()


class Runner:
    def __init__(self, job: Job):
        self.job = job
        self.private = Path(job.private)
        self.progress = Progress()
        self.kernel_pgids: list[int] = []
        self.client: CappedClient | None = None  # the learner's kernel, kept from one notebook to the next
        self.kernel_stack: contextlib.ExitStack | None = None
        self.runtime: Path | None = None  # the live kernel's socket folder
        self.reported: set[tuple] = set()
        # root, in a mount namespace of its own (batch.limit_worker): size-limited tmpfs for each kernel's folders
        self.mounts = job.sandbox.mode == "bwrap" and job.private_mounts and sandbox.has_own_mounts(job.parent_pid)

    def save(self) -> None:
        write_atomic(self.private / "progress.json", to_json(self.progress))

    def remaining(self) -> float:
        return self.job.deadline - time.time()

    # ------------------------------------------------------------------ kernels
    def write_kernelspec(self, name: str, runtime: Path) -> str:
        """kernel.json of one kernel: the sandbox launcher (sandbox.main) or, with --no-sandbox, a plain ipykernel.
        Its connection file and sockets live in `runtime`, a fresh folder of the worker's own (at
        sandbox.RUNTIME_MOUNT in the sandbox), which the launcher hands to the sandbox's user by file descriptor."""
        kernel = f"{KERNEL_NAME}-{name}"
        if self.job.sandbox.mode == "bwrap":
            spec = dict(vars(self.job.sandbox), args=str(self.private / "args"), runtime=str(runtime), env=self.job.env,
                        cwd=self.job.kernel_cwd)
            (self.private / f"sandbox-{name}.json").write_text(json.dumps(spec))
            argv = sandbox.bootstrap_argv("sandbox", str(self.private / f"sandbox-{name}.json"), "{connection_file}")
        elif self.job.sandbox.mode == "none":  # the kernel's own address-space limit, not the worker's
            code = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (%d, resource.getrlimit("
                    "resource.RLIMIT_AS)[1])); os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', "
                    "'-f', sys.argv[1]])" % (self.job.sandbox.memory_mb * 2**20))
            argv = [sys.executable, "-c", code, "{connection_file}"]
        else:
            raise RuntimeError(f"unknown sandbox mode {self.job.sandbox.mode!r}")
        folder = self.private / "kernels" / kernel
        folder.mkdir(parents=True, exist_ok=True)
        spec = {"argv": argv, "display_name": "graded", "language": "python", "interrupt_mode": "signal"}
        (folder / "kernel.json").write_text(json.dumps(spec))
        return kernel

    def new_client(self, nb) -> CappedClient:
        name = secrets.token_hex(4)
        self.remove_runtime()
        runtime = self.runtime = Path(tempfile.mkdtemp(prefix="codebreak-kernel-", dir=self.private))
        if self.mounts:  # root: a size-limited socket folder
            sandbox.mount_tmpfs(runtime, max(16, self.job.sandbox.disk_mb))
        kernel = self.write_kernelspec(name, runtime)
        ksm = KernelSpecManager(kernel_dirs=[str(self.private / "kernels")])
        extra = dict(transport="ipc", ip=str(runtime / f"k{name}")) if self.job.sandbox.mode == "bwrap" else {}
        km = AsyncKernelManager(kernel_name=kernel, kernel_spec_manager=ksm, **extra)
        km.connection_file = str(runtime / f"kernel-{name}.json")
        client = CappedClient(
            nb, km=km, timeout=self.job.cell_timeout, kernel_name=kernel, allow_errors=True,
            interrupt_on_timeout=True, iopub_timeout=2, shutdown_kernel="immediate", record_timing=False,
            error_on_timeout={"ename": TIMEOUT_MARK, "evalue": "the cell ran past the time limit", "traceback": []},
            startup_timeout=120,
        )
        client.max_chars = self.job.max_output_chars
        client.max_answer_bytes = self.job.max_result_bytes
        client.answers = {}
        return client

    def remove_runtime(self) -> None:
        if self.runtime is not None:
            if self.mounts:
                sandbox.unmount(self.runtime)
            sandbox.remove_tree(self.runtime)
            self.runtime = None

    def kill_kernel_group(self, client) -> None:
        pgid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pgid", None)
        for g in [pgid] + self.kernel_pgids:
            if g:
                try:
                    os.killpg(g, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def kernel_for(self, entry: NotebookRun) -> CappedClient:
        """The learner's kernel with a clean namespace: the live one, reset, or a fresh one (libraries imported)."""
        if self.client is not None:
            started = time.monotonic()
            outcome, _ = self.run_cell(self.client, RESET_CELL, min(WARMUP_TIMEOUT, self.remaining()))
            self.add_time(entry, "reset", started)
            if outcome == "ok":
                return self.client
            self.close_kernel()
        client = self.new_client(nbformat.v4.new_notebook())
        stack = contextlib.ExitStack()
        started = time.monotonic()
        try:
            stack.enter_context(client.setup_kernel(env=dict(self.job.env), cwd=self.job.kernel_cwd or str(self.private)))
        except BaseException:
            stack.close()
            self.kill_kernel_group(client)
            raise
        self.client, self.kernel_stack = client, stack
        entry.kernels_started += 1
        pgid = getattr(client.km.provisioner, "pgid", None)
        if pgid:
            self.kernel_pgids.append(pgid)
            write_atomic(self.private / "kernels.json", json.dumps(self.kernel_pgids))
        self.add_time(entry, "kernel_start", started)
        started = time.monotonic()
        warm, _ = self.run_cell(client, WARMUP_CELL, min(WARMUP_TIMEOUT, self.remaining()))
        self.add_time(entry, "imports", started)
        if warm in ("dead", "stuck"):
            raise RuntimeError("the kernel could not import the course's libraries")
        return client

    def close_kernel(self) -> None:
        """Shut the learner's kernel down (killing its process group: nothing it started outlives it)."""
        client, stack = self.client, self.kernel_stack
        self.client = self.kernel_stack = None
        if client is None:
            return
        try:
            stack.close()
        except Exception:
            pass
        finally:
            self.kill_kernel_group(client)
            self.remove_runtime()

    def run_cell(self, client, source: str, timeout: float) -> tuple[str, object]:
        """Execute one cell. Returns ("ok"|"error"|"timeout"|"stuck"|"dead"|"deadline", cell)."""
        if timeout <= 0:
            return "deadline", None
        cell = nbformat.v4.new_code_cell(source)
        client.nb.cells = [cell]
        client.timeout = max(1, int(timeout))
        started = time.monotonic()
        try:
            client.execute_cell(cell, 0)
        except DeadKernelError:
            return "dead", cell
        err = error_of(cell)
        # at its time limit nbclient interrupts a cell: it then holds KeyboardInterrupt (or nothing yet)
        ran_out = time.monotonic() - started >= client.timeout
        if ran_out and (err is None or err[0] in ("KeyboardInterrupt", TIMEOUT_MARK)):
            return ("stuck" if self.is_stuck(client) else "timeout"), cell
        return ("error" if err else "ok"), cell

    def is_stuck(self, client) -> bool:
        """After an interrupt: does the kernel answer `pass` within PROBE_TIMEOUT?"""
        cell = nbformat.v4.new_code_cell("pass")
        client.nb.cells = [cell]
        client.timeout = PROBE_TIMEOUT
        started = time.monotonic()
        try:
            client.execute_cell(cell, 0)
            return error_of(cell) is not None or time.monotonic() - started >= PROBE_TIMEOUT
        except DeadKernelError:
            return True

    # ------------------------------------------------------------------ one notebook
    def grade_notebook(self, spec: NotebookSpec) -> None:
        entry = NotebookRun()
        self.progress.notebooks[spec.file] = entry
        self.save()
        sources, why = code_cells(self.private / "notebooks" / spec.file, self.job.max_notebook_bytes)
        if sources is None:
            entry.status = "invalid"
            entry.problems.append(["invalid-notebook", f"{spec.file} is {why}"])
            self.save()
            return
        skip = set(spec.skip)  # the course's cells that only show results (the grader chose them)
        pending = list(spec.exercises)
        self.reported: set[tuple] = set()  # (kind, cell) already in the notebook's problems or cell errors
        wasted = 0  # re-runs that left out no new cell and graded no new exercise
        while wasted < self.job.max_kernel_starts and (pending or entry.attempts == 0):
            entry.attempts += 1
            if self.remaining() <= 0:
                entry.problems.append(["time-limit", "the submission ran past its total time limit"])
                break
            progress = (len(skip), len(pending))
            if not self.attempt(spec, sources, skip, pending, entry):
                break
            wasted += progress == (len(skip), len(pending))
        if pending:
            names = ", ".join(ex.name for ex in pending)
            entry.problems.append(["not-graded", f"{spec.file}: could not grade {names} (the kernel kept dying or time ran out)"])
        if spec.fresh_kernel_after:  # threads, handlers or patches of this notebook must not reach the next one
            self.close_kernel()
        self.save()

    def attempt(self, spec: NotebookSpec, sources: list[str], skip: set[int], pending: list[ExerciseSpec],
                entry: NotebookRun) -> bool:
        """Run the cells in a clean kernel, then grade the pending exercises. True: run again in a fresh kernel
        (the kernel died or hung; it is shut down)."""
        try:
            client = self.kernel_for(entry)
            started = time.monotonic()
            restart = self.run_learner_cells(client, spec.file, sources, skip, entry)
            self.add_time(entry, "execute", started)
            self.save()
            if not restart:
                if entry.left_out is None:  # the skip set only grows: the first grading run left out the fewest
                    entry.left_out = sorted(skip)
                started = time.monotonic()
                restart = self.grade_pending(client, pending, entry)
                self.add_time(entry, "grade_calls", started)
        except Exception as e:  # the kernel did not start, or the client broke
            entry.problems.append(["kernel-error", f"{spec.file}: {e.__class__.__name__}: {str(e)[:300]}"])
            restart = True
        if restart:
            self.close_kernel()
        return restart

    @staticmethod
    def add_time(entry: NotebookRun, what: str, started: float) -> None:
        entry.timings[what] = round(entry.timings.get(what, 0.0) + time.monotonic() - started, 2)

    def run_learner_cells(self, client, file: str, sources: list[str], skip: set[int], entry: NotebookRun) -> bool:
        """Run every cell not skipped. True when a cell killed or hung the kernel (then run again without it).
        Each cell's error, timeout or memory problem is reported once, from whichever run met it first; an output
        flood is reported whenever a run meets one."""
        client.dropped_chars = 0
        try:
            for i, src in enumerate(sources):
                if i in skip or not src.strip():
                    continue
                outcome, cell = self.run_cell(client, src, min(self.job.cell_timeout, self.remaining()))
                if outcome == "deadline":
                    entry.problems.append(["time-limit", "the submission ran past its total time limit"])
                    return False
                if outcome in ("dead", "stuck"):
                    skip.add(i)
                    what, tag = ("crashed the kernel", "kernel-died") if outcome == "dead" else ("would not stop", "timeout")
                    entry.problems.append([tag, f"{file}: code cell {i + 1} {what}; the notebook was run again without it"])
                    return True
                if outcome == "timeout" and i not in entry.interrupted:
                    entry.interrupted.append(i)
                if outcome == "timeout" and self.first_time("timeout", i):
                    entry.problems.append(["timeout", f"{file}: code cell {i + 1} ran past {self.job.cell_timeout} s and was interrupted"])
                if outcome == "error" and self.first_time("error", i):
                    ename, evalue = error_of(cell)
                    entry.cell_errors.append({"cell": i + 1, "error": f"{ename}: {evalue}"})
                    if is_memory_error(ename, evalue):
                        entry.problems.append(["memory", f"{file}: code cell {i + 1} ran out of memory"])
            return False
        finally:
            if client.dropped_chars > self.job.flood_chars and self.first_time("flood", 0):
                entry.problems.append(["output-flood", f"{file}: the notebook printed {client.dropped_chars / 1e6:.1f} M "
                                       "characters; the grader kept only the start of each cell's output"])

    def first_time(self, kind: str, cell: int) -> bool:
        key = (kind, cell)
        if key in self.reported:
            return False
        self.reported.add(key)
        return True

    def grade_pending(self, client, pending: list[ExerciseSpec], entry: NotebookRun) -> bool:
        while pending:
            status = self.grade_exercise(client, pending[0], entry)
            pending.pop(0)
            self.save()
            if status in ("dead", "stuck"):
                return True
            if status == "deadline":
                return False
        return False

    def show_cases(self, ex: ExerciseSpec) -> list[Path]:
        """Put the exercise's case files (written by the grader in cases/) where the kernel reads them (args/),
        only for its own grading call: no earlier cell can read the secret inputs and precompute answers."""
        shown = []
        for f in ex.args:
            src, dst = self.private / "cases" / f, self.private / "args" / f
            if src.is_file():
                shutil.copyfile(src, dst)
                dst.chmod(0o644)
                shown.append(dst)
        return shown

    def grade_exercise(self, client, ex: ExerciseSpec, entry: NotebookRun) -> str:
        started = time.monotonic()
        out_dir = self.private / "out" / ex.name
        out_dir.mkdir(parents=True, exist_ok=True)
        args_dir = self.job.kernel_args_dir or str(self.private / "args")
        files = [f"{args_dir}/{f}" for f in ex.args]
        client.token, client.answers = secrets.token_hex(16), {}
        fn = f"_codebreak_grade_{secrets.token_hex(6)}"
        source = (f"from utils.grading.kernel import grade as {fn}\n"
                  f"{fn}({ex.name!r}, {files!r}, {ex.library!r}, {client.token!r})\ndel {fn}")
        shown = self.show_cases(ex)
        try:
            outcome, cell = self.run_cell(client, source, min(self.job.exercise_timeout, self.remaining()))
        finally:
            for p in shown:
                p.unlink(missing_ok=True)
        collected: list[str | None] = []
        for i in range(len(files)):
            data = client.answers.get(i)
            if data is None:
                collected.append(None)
                continue
            (out_dir / f"{i}.pt").write_bytes(data)
            collected.append(f"{i}.pt")
        client.token = ""
        problem = None
        if outcome == "error":
            problem = "grading call failed: " + ": ".join(error_of(cell))
        elif outcome in ("timeout", "stuck", "deadline"):
            problem = f"`{ex.name}` ran past the time limit ({self.job.exercise_timeout} s for all its test cases)"
        elif outcome == "dead":
            problem = f"`{ex.name}` crashed the kernel"
        entry.exercises[ex.name] = ExerciseRun(collected, problem, round(time.monotonic() - started, 2))
        return outcome


def main(argv: list[str] | None = None) -> int:
    job = job_from_json(sys.stdin.read())
    die_with_parent(job.parent_pid)
    runner = Runner(job)
    try:
        if runner.mounts:  # root: the arguments folder is a filesystem of its own
            sandbox.mount_tmpfs(runner.private / "args", ARGS_MB, mode=0o755)
        for spec in job.notebooks:
            runner.grade_notebook(spec)
        runner.progress.done = True
    except Exception:
        runner.progress.worker_error = traceback.format_exc()[-2000:]
    finally:
        runner.close_kernel()
    runner.save()
    return 0
