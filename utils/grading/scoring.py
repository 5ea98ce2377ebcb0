"""Test cases, reference answers and the score of each exercise, all computed in the grader's own process.

The kernel only ever sends back what the learner's function returned (records.CallResult dicts). Each answer is
loaded with torch.load(weights_only=True) and then rebuilt from scratch (`rebuild`): plain tensors, numbers,
strings and containers, so that nothing loaded (an attribute planted on a tensor, a subclass) reaches the
comparison. An exercise whose learner function calls the library version of that exercise scores 0: that is
decided from the learner's source, in this process (library_rule.py).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import inspect
import struct
import threading
from pathlib import Path
from typing import Any

import torch

from ..checks.core import REGISTRY, Case, Exercise, cause_line, diagnose
from .records import ExerciseRun, NotebookRun

LIBRARY_PREFIXES = ("utils.",)
NOT_LIBRARY = ("utils.reference", "utils.checks", "utils.grading")


def points_table() -> list[tuple[str, str, int]]:
    """(lesson, exercise, points) of every registered exercise, in lesson then registration order:
    the one table of points (`Exercise.points` in utils.checks.core.REGISTRY)."""
    import utils.checks  # noqa: F401  (registers every lesson)

    return sorted(((ex.lesson, ex.name, ex.points) for ex in REGISTRY.values()), key=lambda t: t[0])


def exercises_of(lesson: str) -> list[Exercise]:
    return [ex for ex in REGISTRY.values() if ex.lesson == lesson]


def library_versions(ex: Exercise) -> list[list[str]]:
    """[[module, qualname]] of the course-library function that answers `ex`, found from its reference:
    `utils/reference/lessonNN.py` re-exports library functions (for example from utils.analysis), so a
    reference whose __module__ is a library module names the library version. [] when the reference is its own."""
    candidates = [ex.reference]
    try:
        names = inspect.getclosurevars(ex.reference).nonlocals
        module = importlib.import_module(f"utils.reference.{names.get('lesson_module') or 'lesson' + ex.lesson}")
        candidates.append(getattr(module, names.get("name") or ex.name, None))
    except (TypeError, ImportError, ValueError):
        pass
    found = []
    for fn in candidates:
        if fn is None or not callable(fn):
            continue
        fn = inspect.unwrap(fn)
        module_name = getattr(fn, "__module__", "") or ""
        if module_name.startswith(LIBRARY_PREFIXES) and not module_name.startswith(NOT_LIBRARY):
            entry = [module_name, fn.__qualname__]
            if entry not in found:
                found.append(entry)
    return found


class References:
    """Each exercise's cases on the run's secret seed and the reference outputs, computed once (thread-safe:
    the references share cached models, and one run with hooks must not overlap another's forward pass); and the
    outcome of each case per answer (`outcome`), computed once per distinct answer in the run."""

    def __init__(self, seed: int):
        self.seed = seed
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[list[Case], list[Any] | None, str]] = {}
        self._outcomes: dict[tuple[str, int, bytes], concurrent.futures.Future] = {}
        self._outcomes_lock = threading.Lock()

    def outcome(self, ex: Exercise, index: int, record: dict) -> tuple[str, str]:
        """case_outcome of case `index` for the answer `record`, computed once per run for each distinct answer
        (equal in every bit, type and order: `answer_key`) and shared by the learners who give it. Comparing with
        the reference and diagnosing are functions of (case, reference output, answer) alone, all fixed for the run
        but the answer, so one learner's answer never changes another's outcome; what it saves is the judgement
        exercises' measurements on fresh data (a model run per answer) and the catalogue of mistakes."""
        cases, expected, _ = self.get(ex)
        if record.get("status") != "ok":
            return case_outcome(ex, cases[index], expected[index], record)
        key = (ex.name, index, answer_key(record.get("value")))
        with self._outcomes_lock:
            pending = self._outcomes.get(key)
            mine = pending is None
            if mine:
                pending = self._outcomes[key] = concurrent.futures.Future()
        if mine:
            try:
                pending.set_result(case_outcome(ex, cases[index], expected[index], record))
            except BaseException as e:  # not kept: the next learner with this answer computes it again
                with self._outcomes_lock:
                    del self._outcomes[key]
                pending.set_exception(e)
        return pending.result()

    def get(self, ex: Exercise) -> tuple[list[Case], list[Any] | None, str]:
        with self._lock:
            if ex.name not in self._cache:
                cases = ex.cases(self.seed)
                try:
                    expected, error = [ex.expected(c) for c in cases], ""
                except Exception as e:
                    expected, error = None, f"{e.__class__.__name__}: {e}"
                self._cache[ex.name] = (cases, expected, error)
            return self._cache[ex.name]


# ---------------------------------------------------------------------------------------------------------
# Reading a kernel's answer
# ---------------------------------------------------------------------------------------------------------


MAX_ANSWER_ITEMS = 1_000_000  # values (container entries, tensors, numbers) in one answer


def check_size(value: Any, max_bytes: int) -> None:
    """Raise ValueError when rebuilding `value` would take more than `max_bytes` of tensor data or more than
    MAX_ANSWER_ITEMS values, from the loaded tensors' metadata alone (a few kB of views or expanded tensors of one
    storage, or one list referenced a million times, would otherwise be copied into gigabytes)."""
    items, data, stack = 0, 0, [(value, 0)]
    while stack:
        v, depth = stack.pop()
        items += 1
        if items > MAX_ANSWER_ITEMS or depth > 20:
            raise ValueError(f"the output has more than {MAX_ANSWER_ITEMS} values or is nested too deeply")
        if isinstance(v, torch.Tensor):
            data += torch.Tensor.numel(v) * torch.Tensor.element_size(v)
            if data > max_bytes:
                raise ValueError(f"the output holds more than {max_bytes // 2**20} MB of tensors")
        elif isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1) for x in (list.__iter__(v) if isinstance(v, list) else tuple.__iter__(v)))
        elif isinstance(v, dict):
            for k, x in dict.items(v):
                stack.extend(((k, depth + 1), (x, depth + 1)))


def rebuild(value: Any, depth: int = 0) -> Any:
    """A fresh plain copy of a loaded value: tensors (no subclass, no attributes), bool / int / float / str /
    None, and lists / tuples / dicts of them. Anything else raises TypeError."""
    if depth > 20:
        raise TypeError("nested too deeply")
    if isinstance(value, torch.Tensor):
        t = torch.Tensor.detach(value)
        if t.layout != torch.strided or t.is_quantized:
            raise TypeError(f"a {t.layout} tensor")
        plain = torch.empty(tuple(t.shape), dtype=t.dtype)
        torch.Tensor.copy_(plain, torch.Tensor.as_subclass(t, torch.Tensor))
        return plain
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value) if kind is not str else str.__str__(value)
    if value is None:
        return None
    if isinstance(value, list):
        return [rebuild(v, depth + 1) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return tuple(rebuild(v, depth + 1) for v in tuple.__iter__(value))
    if isinstance(value, dict):
        return {rebuild(k, depth + 1): rebuild(v, depth + 1) for k, v in dict.items(value)}
    raise TypeError(type(value).__name__)


def answer_key(value: Any) -> bytes:
    """A digest of a rebuilt answer (see `rebuild`) that two answers share only when they are the same values of
    the same types in the same order (tensors: dtype, shape and every byte; 1 and True and 1.0 differ)."""
    h = hashlib.sha256()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            h.update(f"T{v.dtype}{tuple(v.shape)};".encode())
            h.update(v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, bool):
            h.update(b"B1" if v else b"B0")
        elif isinstance(v, int):
            h.update(f"I{v};".encode())
        elif isinstance(v, float):
            h.update(b"F" + struct.pack("<d", v))
        elif isinstance(v, str):
            data = v.encode("utf-8", "surrogatepass")
            h.update(f"S{len(data)};".encode() + data)
        elif v is None:
            h.update(b"N")
        elif isinstance(v, (list, tuple)):
            h.update(f"{'L' if isinstance(v, list) else 'U'}{len(v)};".encode())
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            h.update(f"D{len(v)};".encode())
            for k, x in reversed(list(v.items())):
                stack.extend((x, k))
        else:  # rebuild() makes nothing else
            raise TypeError(type(v).__name__)
    return h.digest()


def load_answer(path: Path, max_bytes: int) -> dict:
    """The kernel's answer for one case as a plain dict, or {"status": "unreadable", ...}."""
    try:
        if path.is_symlink() or path.stat().st_size > max_bytes:
            raise ValueError("the output is too large")
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict):
            raise ValueError("not a result record")
        record = {str(k): v for k, v in dict.items(record)}
        if record.get("status") == "ok":
            check_size(record.get("value"), max_bytes)
            record["value"] = rebuild(record.get("value"))
        return {k: (v if k == "value" else str(v)[:500]) for k, v in record.items()}
    except Exception as e:
        return {"status": "unreadable", "error": f"{e.__class__.__name__}: {str(e)[:200]}"}


def case_outcome(ex: Exercise, case: Case, expected: Any, record: dict) -> tuple[str, str]:
    """(status, message) of one case from the kernel's answer."""
    status = record.get("status")
    if status == "ok":
        try:
            problem = ex.check_output(case, expected, record.get("value"))
        except Exception as e:  # a value the comparison cannot handle
            problem = f"could not compare your output ({e.__class__.__name__}: {e})"
        if problem is None:
            return "pass", ""
        # in the grader's process, which has the catalogue; else the cause a judgement check's branch names
        diagnosis = diagnose(ex, case, record.get("value")) or cause_line([problem])
        return "fail", problem + (f"\n{diagnosis}" if diagnosis else "")
    messages = {
        "missing": f"no function named `{ex.name}` is defined in your notebook",
        "not_implemented": "not implemented yet (raises NotImplementedError)",
        "error": f"your function raised {record.get('error', '')}",
        "side_effect": str(record.get("error", "")),
        "bad_type": f"your function returned a {record.get('type')}, which is not what the exercise asks for",
        "library": f"your `{ex.name}` calls the course library's own version of this exercise "
                   f"(`{record.get('library')}`); write it yourself: this exercise scores 0",
    }
    if status == "side_effect":  # a side effect the value check cannot see names its cause
        cause = cause_line([messages[status]])
        return status, messages[status] + (f"\n{cause}" if cause else "")
    if status in messages:
        return status, messages[status]
    return "fail", f"the grader could not read your output ({record.get('error', status)})"


# ---------------------------------------------------------------------------------------------------------
# The score of one exercise
# ---------------------------------------------------------------------------------------------------------


def empty_entry(ex: Exercise, total: int) -> dict:
    return {"lesson": ex.lesson, "points": ex.points, "score": 0.0, "passed": 0, "total": total, "cases": []}


def score_exercise(ex: Exercise, refs: References, nb: NotebookRun, out_dir: Path, max_bytes: int,
                   library_use: str | None = None) -> dict:
    """The exercise's entry: its cases, score and problem. library_use: why the learner's source uses the library's
    version of the exercise (library_rule.Analysis.verdict): the exercise then scores 0 with that reason."""
    cases, expected, error = refs.get(ex)
    entry = empty_entry(ex, len(cases))
    if library_use:
        entry.update(problem=library_use, library=True)
        return entry
    if expected is None:
        entry.update(problem=f"grader error: the reference answer failed ({error})", grader_error=True)
        return entry
    if nb.status == "invalid":
        entry["problem"] = "the notebook could not be read"
        return entry
    run: ExerciseRun | None = nb.exercises.get(ex.name)
    if run is None:
        entry["problem"] = "not graded (the kernel died or time ran out before this exercise)"
        return entry
    statuses = []
    for i, case in enumerate(cases):
        name = run.outputs[i] if i < len(run.outputs) else None
        if name is None:
            status, message = "no-result", "no result: the call did not finish (time limit, or the kernel crashed)"
        else:
            status, message = refs.outcome(ex, i, load_answer(out_dir / ex.name / name, max_bytes))
        statuses.append(status)
        entry["cases"].append({"case": case.describe(), "status": status, "message": str(message)[:1000]})
    finish_entry(ex, entry, statuses, run)
    return entry


def finish_entry(ex: Exercise, entry: dict, statuses: list[str], run: ExerciseRun) -> None:
    """Score and the one-line problem of an exercise from its case statuses."""
    passed = statuses.count("pass")
    entry["passed"] = passed
    entry["score"] = round(ex.points * passed / max(1, len(statuses)), 2)
    library = [c for c in entry["cases"] if c["status"] == "library"]
    if library:  # the library version answered: no credit for any case
        entry.update(score=0.0, passed=0, problem=library[0]["message"])
    elif run.problem:
        entry["problem"] = run.problem
    elif statuses and all(s == "missing" for s in statuses):
        entry["problem"] = "function not defined"
    elif statuses and all(s == "not_implemented" for s in statuses):
        entry["problem"] = "not implemented"
