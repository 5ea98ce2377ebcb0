"""Runs one learner's notebooks in fresh kernels for `utils.grade` (never run by hand).

The grader starts this script as `python -I utils/grade_worker.py` (isolated: no PYTHONPATH, no user
site-packages, no current folder on sys.path) in a clean environment, and sends the job as JSON on stdin.
The script imports nothing from `utils`: it only drives kernels. It first sets its resource limits
(address space, file size, no core files), so that every kernel it launches inherits them, then for each
notebook:

1. reads the notebook (only the source of its code cells: stored outputs and cell metadata are ignored) and
   executes it cell by cell in a fresh kernel, errors allowed, with a per-cell timeout (a cell that will not
   stop is interrupted; a kernel that will not answer after that is killed), keeping at most a few kB of
   each cell's output;
2. if the kernel died (os._exit, out of memory, killed) it starts a fresh one and executes the notebook again
   without the cell(s) that killed it, so that the functions defined elsewhere are still graded;
3. restores the sandbox's pristine utils/ and data/ (the notebook may have deleted or changed them);
4. for each exercise: copies the grader's argument files into the sandbox under fresh random names, runs a
   cell that calls the learner's function by name on each case and saves `{"status", "value"}` with
   torch.save under another fresh random name, then moves each output into the private folder (which the
   grader reads with torch.load(weights_only=True) and compares with the reference in its own process).

Progress is written atomically to <private>/progress.json after every step, so a worker killed by the
grader's per-submission timeout loses nothing already done.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

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
"""
WARMUP_TIMEOUT = 180  # seconds
PROBE_TIMEOUT = 10  # seconds a kernel gets to answer `pass` after an interrupted cell


def set_limits(memory_mb: int, file_mb: int) -> None:
    if memory_mb:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if file_mb:
        limit = file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `max_chars` characters of printed output per cell and no rich
    output (figures): a cell printing megabytes costs the grader nothing. It counts the printed characters
    it dropped."""

    max_chars = 20000
    dropped_chars = 0

    def output(self, outs, msg, display_id, cell_index):
        msg_type = msg["msg_type"]
        content = msg.get("content", {})
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


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_of(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), ANSI.sub("", str(out.get("evalue", "")))[:300]
    return None


GRADE_CELL = '''
def {fname}():
    import os, sys
    if {sandbox!r} not in sys.path:
        sys.path.insert(0, {sandbox!r})
    import torch
    import utils.checks
    from utils.checks.core import REGISTRY, materialize

    def plain(v):
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().clone()
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v)
        if isinstance(v, str):
            return str(v)
        if type(v) in (list, tuple):
            return type(v)(plain(x) for x in v)
        if isinstance(v, dict):
            return {{plain(k): plain(x) for k, x in v.items()}}
        if hasattr(v, "item") and getattr(v, "shape", None) == ():  # a numpy scalar
            return plain(v.item())
        raise TypeError(type(v).__name__)

    exercise = REGISTRY[{name!r}]
    fn = globals().get({name!r})
    for args_path, out_path in {calls!r}:
        if os.path.lexists(out_path):
            os.remove(out_path)
        if fn is None or not callable(fn):
            record = {{"status": "missing"}}
        else:
            try:
                inputs = torch.load(args_path, weights_only=False)
                value = exercise.normalize(fn(*materialize(inputs["args"]), **materialize(inputs["kwargs"])))
                try:
                    record = {{"status": "ok", "value": plain(value)}}
                except TypeError as e:
                    record = {{"status": "bad_type", "type": str(e)}}
            except NotImplementedError:
                record = {{"status": "not_implemented"}}
            except Exception as e:
                record = {{"status": "error", "error": (e.__class__.__name__ + ": " + str(e))[:500]}}
        torch.save(record, out_path)
{fname}()
del {fname}
'''


class Runner:
    def __init__(self, job: dict):
        self.job = job
        self.sandbox = Path(job["sandbox"])
        self.private = Path(job["private"])
        self.template = Path(job["template"])
        self.deadline = job["deadline"]
        self.progress = {"notebooks": {}, "done": False}
        self.kernel_pgids: list[int] = []

    def save(self) -> None:
        write_json_atomic(self.private / "progress.json", self.progress)

    def remaining(self) -> float:
        return self.deadline - time.time()

    # ------------------------------------------------------------------ the sandbox
    def course_files(self) -> dict[str, bytes]:
        files = {}
        for top in ("utils", "data"):
            root = self.sandbox / top
            if root.is_symlink() or not root.is_dir():
                continue
            for p in root.rglob("*"):
                if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts:
                    try:
                        files[str(p.relative_to(self.sandbox))] = p.read_bytes()
                    except OSError:
                        pass
        return files

    def restore_sandbox(self) -> bool:
        """Put back pristine utils/ and data/ (and the folders the grader writes to). True if anything changed."""
        pristine = {}
        for top in ("utils", "data"):
            for p in (self.template / top).rglob("*"):
                if p.is_file():
                    pristine[str(p.relative_to(self.template))] = p.read_bytes()
        changed = self.course_files() != pristine
        if changed:
            for top in ("utils", "data"):
                target = self.sandbox / top
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.exists():
                    shutil.rmtree(target, ignore_errors=True)
                self.sandbox.mkdir(parents=True, exist_ok=True)
                shutil.copytree(self.template / top, target, dirs_exist_ok=True)
        for sub in ("notebooks", "home", "tmp"):
            (self.sandbox / sub).mkdir(parents=True, exist_ok=True)
        return changed

    def grading_dir(self) -> Path:
        d = self.sandbox / f".grading-{secrets.token_hex(8)}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------------ kernels
    def new_client(self, nb) -> CappedClient:
        client = CappedClient(
            nb,
            timeout=self.job["cell_timeout"],
            kernel_name="python3",
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_MARK, "evalue": "the cell ran past the time limit", "traceback": []},
            iopub_timeout=2,
            shutdown_kernel="immediate",
            record_timing=False,
            resources={"metadata": {"path": str(self.sandbox / "notebooks")}},
        )
        client.max_chars = self.job["max_output_chars"]
        return client

    def kill_kernel_group(self, client) -> None:
        pgid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pgid", None)
        for g in [pgid] + self.kernel_pgids:
            if g:
                try:
                    os.killpg(g, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def run_cell(self, client, nb, index: int, source: str, timeout: float) -> tuple[str, object]:
        """Execute one cell. Returns ("ok"|"error"|"timeout"|"stuck"|"dead"|"deadline", cell)."""
        if timeout <= 0:
            return "deadline", None
        cell = nbformat.v4.new_code_cell(source)
        nb.cells[index] = cell
        client.timeout = max(1, int(timeout))
        started = time.monotonic()
        try:
            client.execute_cell(cell, index)
        except DeadKernelError:
            return "dead", cell
        err = error_of(cell)
        # nbclient interrupts a cell at its time limit: the cell then holds the kernel's KeyboardInterrupt (or no
        # error at all, if the kernel has not answered yet)
        ran_out = time.monotonic() - started >= client.timeout
        if ran_out and (err is None or err[0] in ("KeyboardInterrupt", TIMEOUT_MARK)):
            # Interrupted: does the kernel answer again?
            probe_index = len(nb.cells)
            nb.cells.append(nbformat.v4.new_code_cell("pass"))
            client.timeout = PROBE_TIMEOUT
            probe_started = time.monotonic()
            try:
                client.execute_cell(nb.cells[probe_index], probe_index)
                # a busy kernel lets the probe run out of time too (with or without an error output)
                stuck = error_of(nb.cells[probe_index]) is not None or time.monotonic() - probe_started >= PROBE_TIMEOUT
            except DeadKernelError:
                stuck = True
            nb.cells.pop()
            return ("stuck" if stuck else "timeout"), cell
        return ("error" if err else "ok"), cell

    # ------------------------------------------------------------------ one notebook
    def grade_notebook(self, spec: dict) -> None:
        name = spec["file"]
        entry = {"status": "ok", "problems": [], "cell_errors": [], "exercises": {}, "attempts": 0}
        self.progress["notebooks"][name] = entry
        self.save()
        sources, why = code_cells(self.sandbox / "notebooks" / name, self.job["max_notebook_bytes"])
        if sources is None:
            entry["status"] = "invalid"
            entry["problems"].append(("invalid-notebook", f"{name} is {why}"))
            self.save()
            return
        skip: set[int] = set()
        pending = [ex["name"] for ex in spec["exercises"]]
        by_name = {ex["name"]: ex for ex in spec["exercises"]}
        first = True
        while entry["attempts"] < self.job["max_kernel_starts"]:
            entry["attempts"] += 1
            if self.remaining() <= 0:
                entry["problems"].append(("time-limit", "the submission ran past its total time limit"))
                break
            restart = False
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell("") for _ in sources]
            client = self.new_client(nb)
            env = dict(self.job["env"])
            try:
                with client.setup_kernel(env=env, cwd=str(self.sandbox / "notebooks")):
                    pgid = getattr(client.km.provisioner, "pgid", None)
                    if pgid:
                        self.kernel_pgids.append(pgid)
                        write_json_atomic(self.private / "kernels.json", self.kernel_pgids)
                    # 0. the libraries, imported off the learner's clock
                    nb.cells.append(nbformat.v4.new_code_cell(""))
                    warm, _ = self.run_cell(client, nb, len(nb.cells) - 1, WARMUP_CELL, min(WARMUP_TIMEOUT, self.remaining()))
                    nb.cells.pop()
                    if warm in ("dead", "stuck"):
                        raise RuntimeError("the kernel could not import the course's libraries")
                    # 1. the learner's cells
                    for i, src in enumerate(sources):
                        if i in skip or not src.strip():
                            continue
                        timeout = min(self.job["cell_timeout"], self.remaining())
                        outcome, cell = self.run_cell(client, nb, i, src, timeout)
                        if outcome == "deadline":
                            entry["problems"].append(("time-limit", "the submission ran past its total time limit"))
                            break
                        if outcome in ("dead", "stuck"):
                            skip.add(i)
                            what = "crashed the kernel" if outcome == "dead" else "would not stop"
                            tag = "kernel-died" if outcome == "dead" else "timeout"
                            entry["problems"].append(
                                (tag, f"{name}: code cell {i + 1} {what}; the notebook was run again without it")
                            )
                            restart = True
                            break
                        if first and outcome == "timeout":
                            entry["problems"].append(
                                ("timeout", f"{name}: code cell {i + 1} ran past {self.job['cell_timeout']} s and was interrupted")
                            )
                        if first and outcome == "error":
                            ename, evalue = error_of(cell)
                            entry["cell_errors"].append({"cell": i + 1, "error": f"{ename}: {evalue}"})
                            if ename == "MemoryError" or "can't allocate memory" in evalue or "out of memory" in evalue.lower():
                                entry["problems"].append(("memory", f"{name}: code cell {i + 1} ran out of memory"))
                    if client.dropped_chars > self.job["flood_chars"] and first:
                        entry["problems"].append(
                            ("output-flood", f"{name}: the notebook printed {client.dropped_chars / 1e6:.1f} M characters; the grader kept only the start of each cell's output")
                        )
                    first = False
                    self.save()
                    if restart:
                        continue
                    # 2. pristine course files, 3. the learner's functions on the grader's cases
                    if self.restore_sandbox() and not any(p[0] == "files-restored" for p in entry["problems"]):
                        entry["problems"].append(
                            ("files-restored", f"{name} deleted or changed the course files (utils/, data/); the grader restored them")
                        )
                    while pending:
                        ex_name = pending[0]
                        status = self.grade_exercise(client, nb, by_name[ex_name], entry)
                        pending.pop(0)
                        self.save()
                        if status in ("dead", "stuck"):
                            restart = True
                            break
                        if status == "deadline":
                            break
            except Exception as e:  # the kernel did not start, or the client broke
                entry["problems"].append(("kernel-error", f"{name}: {e.__class__.__name__}: {str(e)[:300]}"))
                restart = True
            finally:
                self.kill_kernel_group(client)
            if not restart:
                break
        if pending:
            entry["problems"].append(
                ("not-graded", f"{name}: could not grade {', '.join(pending)} (the kernel kept dying or time ran out)")
            )
        self.save()

    def grade_exercise(self, client, nb, ex: dict, entry: dict) -> str:
        name = ex["name"]
        out_dir = self.private / "out" / name
        out_dir.mkdir(parents=True, exist_ok=True)
        io = self.grading_dir()
        calls = []
        for args_file in ex["args"]:
            args_path = io / f"{secrets.token_hex(12)}.pt"
            shutil.copyfile(self.private / "args" / args_file, args_path)
            calls.append((str(args_path), str(io / f"{secrets.token_hex(12)}.pt")))
        source = GRADE_CELL.format(
            fname=f"_codebreak_grade_{secrets.token_hex(6)}", sandbox=str(self.sandbox), name=name, calls=calls
        )
        timeout = min(self.job["exercise_timeout"], self.remaining())
        index = len(nb.cells)
        nb.cells.append(nbformat.v4.new_code_cell(""))
        outcome, cell = self.run_cell(client, nb, index, source, timeout)
        collected = []
        for i, (_, out_path) in enumerate(calls):
            p = Path(out_path)
            target = out_dir / f"{i}.pt"
            if p.is_file() and not p.is_symlink():
                os.replace(p, target)
                collected.append(target.name)
            else:
                collected.append(None)
        shutil.rmtree(io, ignore_errors=True)
        problem = None
        if outcome == "error":
            problem = "grading call failed: " + ": ".join(error_of(cell))
        elif outcome in ("timeout", "stuck", "deadline"):
            problem = f"`{name}` ran past the time limit ({self.job['exercise_timeout']} s for all its test cases)"
        elif outcome == "dead":
            problem = f"`{name}` crashed the kernel"
        entry["exercises"][name] = {"outputs": collected, "problem": problem}
        return outcome


def main() -> int:
    job = json.loads(sys.stdin.read())
    set_limits(job["memory_mb"], job["file_mb"])
    runner = Runner(job)
    try:
        for spec in job["notebooks"]:
            runner.grade_notebook(spec)
        runner.progress["done"] = True
    except Exception:
        runner.progress["worker_error"] = traceback.format_exc()[-2000:]
    runner.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
