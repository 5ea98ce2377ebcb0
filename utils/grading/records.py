"""Records that cross a process boundary (grader -> worker -> kernel and back), defined once.

Only the standard library is imported here: the worker and the learner's kernel import this module too.
Records travel as JSON (`to_json` / `from_json`); a kernel's result travels as a torch.save'd dict (`CallResult`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional, TypeVar

T = TypeVar("T")

RESULT_MIME = "application/x-codebreak-result"  # the display_data type a kernel answers a grading call with


def to_json(record: Any) -> str:
    return json.dumps(dataclasses.asdict(record), indent=1)


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a (nested) dataclass from its asdict() form, ignoring unknown keys."""
    hints = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        if name not in hints:
            continue
        kind = NESTED.get((cls.__name__, name))
        if kind is not None and isinstance(value, dict):
            value = {k: from_dict(kind, v) for k, v in value.items()}
        elif kind is not None and isinstance(value, list):
            value = [from_dict(kind, v) for v in value]
        kwargs[name] = value
    return cls(**kwargs)


@dataclasses.dataclass
class ExerciseSpec:
    """One exercise to grade in a notebook: the learner's function name, one argument file per case, and the
    library function that answers it (module, qualified name), which the kernel refuses while grading it."""

    name: str
    args: list[str]
    library: list[list[str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class NotebookSpec:
    file: str
    lesson: str
    exercises: list[ExerciseSpec]
    skip: list[int] = dataclasses.field(default_factory=list)  # code cells not run (slicing.skippable_cells)
    # its cells may leave code running or modules patched (library_rule.leaves_changes): the next notebook gets a
    # fresh kernel, so that nothing of this one answers for another notebook's exercises
    fresh_kernel_after: bool = False


@dataclasses.dataclass
class SandboxSpec:
    """How the worker launches each kernel (see sandbox.py). mode: "bwrap" (the sandbox) or "none" (a plain kernel
    as the grader's own user: trusted submissions only). uid: the unprivileged uid leased for this sandbox alone
    (sandbox.UidPool) when the grader runs as root, else None."""

    mode: str
    course: str  # the pristine course library (utils/ without answers, data/), mounted read-only
    uid: Optional[int] = None  # run as this unprivileged user (when the grader runs as root)
    memory_mb: int = 6000
    file_mb: int = 1024
    disk_mb: int = 512  # size of each private tmpfs (cwd, /tmp and /dev/shm)
    max_procs: int = 256  # processes and threads
    cpu_seconds: int = 3600


@dataclasses.dataclass
class Job:
    """Everything the worker needs for one learner (sent as JSON on its stdin)."""

    private: str  # worker-only folder: notebooks, argument files, each kernel's socket folder, progress.json
    deadline: float
    cell_timeout: int
    exercise_timeout: int
    max_output_chars: int
    flood_chars: int
    max_notebook_bytes: int
    max_result_bytes: int
    max_kernel_starts: int
    env: dict[str, str]
    sandbox: SandboxSpec
    notebooks: list[NotebookSpec]
    kernel_cwd: str = ""  # the kernel's working folder (sandbox: /course/notebooks)
    kernel_args_dir: str = ""  # where the kernel reads the argument files (sandbox: read-only mount)
    parent_pid: int = 0
    private_mounts: bool = False  # the worker runs in a mount namespace of its own (root): sized socket folders


@dataclasses.dataclass
class ExerciseRun:
    """What the worker saw while calling one exercise: one output file per case (None: no answer)."""

    outputs: list[Optional[str]]
    problem: Optional[str] = None
    seconds: float = 0.0


@dataclasses.dataclass
class NotebookRun:
    status: str = "ok"
    problems: list[list[str]] = dataclasses.field(default_factory=list)
    cell_errors: list[dict] = dataclasses.field(default_factory=list)
    exercises: dict[str, ExerciseRun] = dataclasses.field(default_factory=dict)
    attempts: int = 0  # times the notebook's cells were run (again after a cell killed the kernel)
    kernels_started: int = 0  # fresh kernels started for it (the others ran in the learner's kernel, reset)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # kernel_start, imports, reset, execute, grade_calls
    # code cells (0-based) left out of every run that made grading calls (the slicer's and those that killed or hung
    # a kernel): nothing of them ran in a kernel that answered for an exercise. None: no grading call was made.
    left_out: Optional[list[int]] = None
    interrupted: list[int] = dataclasses.field(default_factory=list)  # code cells (0-based) stopped at their time limit


@dataclasses.dataclass
class Progress:
    """Written atomically by the worker after every step; the grader reads it (never the kernel's files)."""

    notebooks: dict[str, NotebookRun] = dataclasses.field(default_factory=dict)
    done: bool = False
    worker_error: str = ""


NESTED = {
    ("NotebookSpec", "exercises"): ExerciseSpec,
    ("Job", "notebooks"): NotebookSpec,
    ("Progress", "notebooks"): NotebookRun,
    ("NotebookRun", "exercises"): ExerciseRun,
}


def job_from_json(text: str) -> Job:
    data = json.loads(text)
    data["sandbox"] = from_dict(SandboxSpec, data["sandbox"])
    return from_dict(Job, data)


def progress_from_json(text: str) -> Progress:
    return from_dict(Progress, json.loads(text))


# A call's result, as the kernel saves it (a plain dict, loaded by the grader with weights_only=True):
#   {"status": "ok", "value": ...} | {"status": "missing"} | {"status": "not_implemented"}
#   | {"status": "error", "error": str} | {"status": "bad_type", "type": str}
#   | {"status": "library", "library": "utils.analysis.first_char_probs"}
CALL_STATUSES = ("ok", "missing", "not_implemented", "error", "bad_type", "library", "side_effect")
