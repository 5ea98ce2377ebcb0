"""The machinery behind every learner check: exercises, their test cases, comparison and readable reports.

An `Exercise` names a function the learner writes (`name`), the reference answer (`reference`), a way to
make fresh inputs (`cases(seed)`), and how to compare outputs (`compare`). The same object serves:

- the learner, in a notebook: `test_<name>(learner_fn)` runs the cases on a random seed and prints a pass
  line, or raises `CheckFailed` with which input failed, expected vs got, and a hint;
- the grader (`utils.grade`): it makes the cases in its own process on a secret seed, asks the learner's
  kernel only for the learner's outputs, and compares them with the reference outside that kernel.

Inputs may hold `Ref`s (for example `Ref("model", "easy")`): both sides build the same object from them,
so large objects are never shipped between processes.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import os
import random
import sys
import traceback
from typing import Any, Callable

import torch

REGISTRY: dict[str, "Exercise"] = {}


class CheckFailed(AssertionError):
    """A learner's answer disagrees with the reference. The message says where and how."""


class ExerciseNotDone(NotImplementedError):
    """The learner's function still raises NotImplementedError."""


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ref:
    """A large input both sides can build: Ref("model", mode), Ref("dataset", mode, size, seed),
    Ref("cache", mode, size, seed) (the model's run_with_cache on that dataset's tokens)."""

    kind: str
    args: tuple = ()

    def __init__(self, kind: str, *args):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "args", tuple(args))

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(map(repr, self.args))})"


@functools.lru_cache(maxsize=8)
def _build_ref(ref: Ref):
    from ..data import CodeBreakingDataset
    from ..model import load_model

    if ref.kind == "model":
        return load_model(ref.args[0], device="cpu")
    if ref.kind == "dataset":
        mode, size, seed = ref.args
        return CodeBreakingDataset(mode, size=size, seed=seed)
    if ref.kind == "cache":
        mode, size, seed = ref.args
        model, dataset = _build_ref(Ref("model", mode)), _build_ref(Ref("dataset", mode, size, seed))
        with torch.inference_mode():
            return model.run_with_cache(dataset.toks)[1]
    raise ValueError(f"Unknown Ref kind {ref.kind!r}")


def materialize(value: Any) -> Any:
    """Replace every Ref inside `value` (tuples, lists, dicts) by the object it names; copy tensors, so that
    a function that writes into its inputs cannot spoil the next call."""
    if isinstance(value, Ref):
        return _build_ref(value)
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(materialize(v) for v in value)
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class Case:
    """One call of the exercise function: positional and keyword arguments, and a label for reports."""

    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    label: str = ""

    def describe(self) -> str:
        if self.label:
            return self.label
        parts = [_short(a) for a in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"({', '.join(parts)})"


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------
# Comparisons: each returns None when `got` is right, else a sentence saying what is wrong
# ---------------------------------------------------------------------------------------------------------


def compare_tensors(expected: torch.Tensor, got: Any, atol: float = 1e-4, rtol: float = 1e-4) -> str | None:
    """Type, shape, dtype kind, NaN, then values (with tolerance for floats)."""
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
    if expected.dtype.is_floating_point != got.dtype.is_floating_point or (expected.dtype == torch.bool) != (
        got.dtype == torch.bool
    ):
        return f"wrong dtype: expected {expected.dtype}, got {got.dtype}"
    if not expected.dtype.is_floating_point and got.dtype != expected.dtype:
        return f"wrong dtype: expected {expected.dtype}, got {got.dtype} (use .long() for token ids and labels)"
    if expected.dtype.is_floating_point and got.dtype != expected.dtype:
        # float32 vs float64 matters: later cells compare your tensors with float64 ones, and precision differs
        fix = ".double()" if expected.dtype == torch.float64 else ".float()" if expected.dtype == torch.float32 else f".to({expected.dtype})"
        return f"wrong dtype: expected {expected.dtype}, got {got.dtype} (convert with {fix}, or build it in that dtype)"
    if got.device.type != expected.device.type:
        return f"your output is on {got.device}, but the inputs were on {expected.device}: keep tensors on the inputs' device"
    got = got.detach().cpu()
    expected = expected.detach().cpu()
    if got.dtype.is_floating_point:
        if torch.isnan(got).any() and not torch.isnan(expected).any():
            return f"your output has {int(torch.isnan(got).sum())} NaN value(s)"
        ok = torch.isclose(got.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=True)
    else:
        ok = got == expected
    if not ok.all():
        bad = (~ok).nonzero()[0].tolist()
        where = tuple(bad) if bad else ()
        return (
            f"{int((~ok).sum())} of {ok.numel()} values differ; first at index {where}: "
            f"expected {expected[where].item() if bad else expected.item():.6g}, "
            f"got {got[where].item() if bad else got.item():.6g}"
        )
    return None


def compare_values(expected: Any, got: Any, atol: float = 1e-4, rtol: float = 1e-4) -> str | None:
    """Tensors, numbers, strings, and lists / tuples / dicts of them."""
    if isinstance(expected, torch.Tensor):
        return compare_tensors(expected, got, atol, rtol)
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return None if got == expected and type(got) is type(expected) else f"expected {expected!r}, got {got!r}"
    if isinstance(expected, (int, float)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return f"expected a number, got {type(got).__name__}"
        if isinstance(expected, int) and isinstance(got, float) and not got.is_integer():
            return f"expected the integer {expected}, got {got}"
        if math.isnan(got):
            return "got NaN"
        return None if math.isclose(got, expected, abs_tol=atol, rel_tol=rtol) else f"expected {expected:.6g}, got {got:.6g}"
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"expected a {type(expected).__name__}, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare_values(e, g, atol, rtol)
            if problem:
                return f"item {i}: {problem}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got {type(got).__name__}"
        missing = [k for k in expected if k not in got]
        if missing:
            return f"missing key(s) {missing}"
        for k in expected:
            problem = compare_values(expected[k], got[k], atol, rtol)
            if problem:
                return f"[{k!r}]: {problem}"
        return None
    return None if got == expected else f"expected {expected!r}, got {got!r}"


# ---------------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A plausible wrong implementation of an exercise, and the sentence that names it for the learner.

    The wrong implementation itself lives in `utils/reference/<lesson>_mistakes.py` as the function
    `<exercise>__<name>` (imported only when needed, like the references, and never shipped to a learner's
    sandbox); `tests/` imports the same functions to show that the check rejects each one and names it.
    `message` completes the line "Likely mistake: ..." and says what is wrong and where to look, not the fix.
    """

    name: str
    message: str


@dataclasses.dataclass
class Exercise:
    """One exercise: learner function `name`, its reference, fresh test cases and how to compare.

    normalize: turns a return value into tensors / numbers / strings / lists / dicts (applied to both the
    learner's and the reference output), so that the grader can ship it between processes.
    """

    name: str
    lesson: str
    reference: Callable
    cases: Callable[[int], list[Case]]
    points: int = 1
    hint: str = ""
    atol: float = 1e-4
    rtol: float = 1e-4
    normalize: Callable[[Any], Any] = lambda x: x
    compare: Callable[..., str | None] | None = None
    mistakes: tuple[Mistake, ...] = ()

    def check_output(self, case: Case, expected: Any, got: Any) -> str | None:
        if self.compare is not None:
            return self.compare(expected, got, case)
        return compare_values(expected, got, self.atol, self.rtol)

    def expected(self, case: Case) -> Any:
        return self.normalize(self.reference(*materialize(case.args), **materialize(case.kwargs)))


def reference(lesson_module: str, name: str | None = None) -> Callable:
    """The reference answer `utils.reference.<lesson_module>.<name>`, imported only when first called, so
    that `utils.checks` imports where `utils/reference/` is absent (as in the grader's learner kernels)."""

    def call(*args, **kwargs):
        module = importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.reference.{lesson_module}")
        return getattr(module, name or call.__name__)(*args, **kwargs)

    call.__name__ = name or "reference"
    return call


GRADING_ENV = "CODEBREAK_GRADING"


def register(exercise: Exercise) -> Exercise:
    if exercise.name in REGISTRY:
        raise ValueError(f"Two exercises are named {exercise.name!r}: exercise names must be unique.")
    REGISTRY[exercise.name] = exercise
    return exercise


def call_learner(fn: Callable, case: Case) -> Any:
    """Call the learner's function on a fresh copy of the case's inputs."""
    return fn(*materialize(case.args), **materialize(case.kwargs))


def learner_frames(exc: BaseException) -> str:
    """The part of a traceback that lies in the learner's own code (notebook cells), not in utils."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "/utils/" not in f.filename.replace("\\", "/")
    ]
    return "".join(traceback.format_list(frames[-3:]))


@dataclasses.dataclass
class CaseResult:
    label: str
    passed: bool
    message: str = ""


def run_cases(exercise: Exercise, fn: Callable, seed: int) -> list[CaseResult]:
    """Run every case; a learner exception becomes a failed case with a readable message."""
    results = []
    for case in exercise.cases(seed):
        try:
            got = exercise.normalize(call_learner(fn, case))
        except NotImplementedError:
            raise ExerciseNotDone(
                f"`{exercise.name}` is not implemented yet: replace `raise NotImplementedError()` with your code."
            ) from None
        except Exception as e:  # the learner's bug, reported, never a crash inside utils
            msg = f"your function raised {e.__class__.__name__}: {e}\n{learner_frames(e)}"
            results.append(CaseResult(case.describe(), False, msg.rstrip()))
            continue
        problem = exercise.check_output(case, exercise.expected(case), got)
        results.append(CaseResult(case.describe(), problem is None, problem or ""))
    return results


def format_failure(exercise: Exercise, results: list[CaseResult]) -> str:
    failed = [r for r in results if not r.passed]
    first = failed[0]
    lines = [
        f"`{exercise.name}` failed {len(failed)} of {len(results)} test case(s).",
        f"First failing input: {first.label}",
        f"Problem: {first.message}",
    ]
    if exercise.hint:
        lines.append(f"Hint: {exercise.hint}")
    return "\n".join(lines)


def check(name: str, fn: Callable, seed: int | None = None) -> None:
    """The learner's entry point: test `fn` against exercise `name` on fresh inputs."""
    exercise = REGISTRY[name]
    if os.environ.get(GRADING_ENV) == "1":
        print(f"(test_{name} is skipped while grading: the grader checks `{name}` itself.)")
        return
    if not callable(fn):
        raise CheckFailed(f"Pass your function itself, e.g. test_{name}({name}), not {type(fn).__name__}.")
    seed = random.randrange(2**31) if seed is None else seed
    results = run_cases(exercise, fn, seed)
    if all(r.passed for r in results):
        print(f"All {len(results)} tests in `test_{name}` passed!")
        return
    message = format_failure(exercise, results)
    # Raise from here with no chained context: the learner sees the message, not utils' internals.
    sys.stderr.flush()
    raise CheckFailed(message) from None


def make_test(name: str) -> Callable[[Callable], None]:
    """Build the `test_<name>(fn)` function a learner calls."""

    def test(fn: Callable) -> None:
        check(name, fn)

    test.__name__ = f"test_{name}"
    test.__doc__ = f"Check your `{name}` against the reference on fresh inputs."
    return test
