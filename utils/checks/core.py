"""The machinery behind every learner check: exercises, their test cases, comparison and readable reports.

An `Exercise` names a function the learner writes (`name`), the reference answer (`reference`), a way to
make fresh inputs (`cases(seed)`), and how to compare outputs (`compare`). The same object serves:

- the learner, in a notebook: `test_<name>(learner_fn)` runs the cases on a random seed and prints a pass
  line, or raises `CheckFailed` with which input failed, expected vs got, and a hint;
- the grader (`utils.grade`): it makes the cases in its own process on a secret seed, asks the learner's
  kernel only for the learner's outputs, and compares them with the reference outside that kernel.

Inputs may hold `Ref`s (for example `Ref("model", "easy")`): both sides build the same object from them,
so large objects are never shipped between processes.

Every call, the learner's and the reference's, gets its own fresh copy of every input (`materialize`), so
nothing a learner's function does to a model or tensor reaches the reference or a later check. The check also
fails when the learner's function changed its inputs in place, or left a model with hooks, other weights,
another mode or config (`call_and_inspect`). A wrong output is compared with the exercise's catalogue of
plausible mistakes (`Mistake`, `diagnose`) and, if one reproduces it, the report says "Likely mistake: ..."; if none
does, with a generic relation to the reference's output that holds on every case (`generic.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import inspect
import math
import numbers
import os
import random
import re
import sys
import traceback
from typing import Any, Callable, Sequence

import torch

from . import generic

REGISTRY: dict[str, "Exercise"] = {}


class _MessageOnly:
    """In IPython / Jupyter, show the exception as its message alone: the frames inside utils/checks say nothing
    to a learner (IPython calls `_render_traceback_` instead of formatting the traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class CheckFailed(_MessageOnly, AssertionError):
    """A learner's answer disagrees with the reference. The message says where and how."""


class ExerciseNotDone(_MessageOnly, NotImplementedError):
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


def materialize(value: Any, memo: dict | None = None) -> Any:
    """Replace every Ref inside `value` (tuples, lists, dicts) by a fresh copy of the object it names, and copy
    tensors and other mutable objects: whatever a function does to its inputs, the cached objects (and so the
    next call, and the reference) never see it. One call shares copies (`memo`), so a case that names the same
    model twice gets one model."""
    memo = {} if memo is None else memo
    if isinstance(value, Ref):
        return copy.deepcopy(_build_ref(value), memo)
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(materialize(v, memo) for v in value)
    if isinstance(value, dict):
        return {k: materialize(v, memo) for k, v in value.items()}
    if value is None or isinstance(value, (str, bytes, numbers.Number, torch.dtype, torch.device)):
        return value
    return copy.deepcopy(value, memo)


@dataclasses.dataclass
class Case:
    """One call of the exercise function: positional and keyword arguments, and a label for reports."""

    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    label: str = ""
    # an error whose message holds one of these passes the case: for inputs that only some correct answers can
    # handle (e.g. the "meta" device, which tells a loader that ignores `device` from one that uses it)
    allow_error: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.label:
            return self.label
        parts = [_short(a) for a in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"({', '.join(parts)})"


@dataclasses.dataclass
class SeededCase(Case):
    """A case whose judgement needs data the learner never saw: `seed` picks the fresh dataset (drawn from the
    check's seed, so a check run twice with one seed judges on the same data)."""

    seed: int = 0


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------
# Side effects: what a learner's function changed in its inputs, on a model, or in torch's global state
# ---------------------------------------------------------------------------------------------------------


def _module_hooks(module: torch.nn.Module) -> dict[str, int]:
    """Number of hooks attached to each submodule (PyTorch hooks, and TransformerLens HookPoint lists)."""
    counts = {}
    for name, sub in module.named_modules():
        size = lambda attr: len(getattr(sub, attr, None) or ())  # noqa: E731
        # a TransformerLens hook sits in both HookPoint.fwd_hooks and the module's _forward_hooks: count it once
        n = max(size("_forward_hooks"), size("fwd_hooks")) + max(size("_backward_hooks"), size("bwd_hooks"))
        n += size("_forward_pre_hooks") + size("_backward_pre_hooks")
        if n:
            counts[name or "model"] = n
    return counts


class Snapshot:
    """What the inputs of one call look like before it, to say afterwards what the call changed.

    Tensors are copied, models recorded as weights + hooks + training mode + config, lists / dicts / plain objects
    (datasets, caches) by their items and attributes, recursively."""

    def __init__(self, args: tuple, kwargs: dict, names: list[str]):
        self.records: list[tuple[str, Any, Any]] = []
        self.seen: set[int] = set()
        for i, value in enumerate(args):
            self._add(names[i] if i < len(names) else f"argument {i + 1}", value)
        for key, value in kwargs.items():
            self._add(key, value)
        self.grad_enabled = torch.is_grad_enabled()
        self.default_dtype = torch.get_default_dtype()

    def _add(self, path: str, value: Any, depth: int = 0) -> None:
        if id(value) in self.seen or depth > 4 or value is None or isinstance(value, (str, bytes, numbers.Number)):
            return
        self.seen.add(id(value))
        if isinstance(value, torch.Tensor):
            self.records.append((path, value, (value.shape, value.detach().clone())))
        elif isinstance(value, torch.nn.Module):
            state = {k: v.detach().clone() for k, v in value.state_dict().items()}
            cfg = dict(vars(value.cfg)) if hasattr(value, "cfg") and hasattr(value.cfg, "__dict__") else None
            training = {n for n, m in value.named_modules() if m.training}
            frozen = {n for n, p in value.named_parameters() if not p.requires_grad}
            self.records.append((path, value, (state, _module_hooks(value), training, cfg, frozen)))
        elif isinstance(value, (list, dict)):
            self.records.append((path, value, copy.copy(value)))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                self._add(f"{path}[{k!r}]", v, depth + 1)
        elif isinstance(value, tuple):
            for k, v in enumerate(value):
                self._add(f"{path}[{k}]", v, depth + 1)
        elif hasattr(value, "__dict__") and not inspect.isroutine(value) and not isinstance(value, type):
            attrs = dict(vars(value))
            self.records.append((path, value, attrs))
            for k, v in attrs.items():
                self._add(f"{path}.{k}", v, depth + 1)

    def changes(self) -> list[str]:
        """Sentences, one per changed input / model / global setting (empty if nothing changed)."""
        problems = []
        for path, value, before in self.records:
            try:
                problem = _changed(path, value, before)
            except Exception:  # an object this inspection does not understand: say nothing rather than crash
                problem = None
            if problem:
                problems.append(problem)
        if torch.is_grad_enabled() != self.grad_enabled:
            problems.append(f"your function left gradients {'enabled' if torch.is_grad_enabled() else 'disabled'} "
                            "for everything that follows: use `with torch.no_grad():` (or inference_mode) as a "
                            "block, not torch.set_grad_enabled(...) on its own")
        if torch.get_default_dtype() != self.default_dtype:
            problems.append(f"your function changed torch's default dtype to {torch.get_default_dtype()}: "
                            "convert tensors with .double() / .float() instead of torch.set_default_dtype")
        return problems

    def restore_globals(self) -> None:
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_default_dtype(self.default_dtype)


_INPLACE_HINT = "work on a copy (x = x.clone()) or with out-of-place operations (x = x * 2, not x *= 2 or x[...] = ...)"


def _changed(path: str, value: Any, before: Any) -> str | None:
    if isinstance(value, torch.Tensor):
        shape, old = before
        if value.shape != shape:
            return f"your function changed the shape of its input `{path}` in place ({tuple(shape)} -> {tuple(value.shape)}): {_INPLACE_HINT}"
        new = value.detach()
        same = (new == old) | (new.isnan() & old.isnan()) if old.dtype.is_floating_point else new == old
        if not bool(same.all()):
            return (f"your function changed its input `{path}` in place ({int((~same).sum())} of {same.numel()} values): "
                    f"later cells that use it would see your changes. {_INPLACE_HINT[0].upper()}{_INPLACE_HINT[1:]}")
        return None
    if isinstance(value, torch.nn.Module):
        return _model_changed(path, value, before)
    if isinstance(value, list):
        if len(value) != len(before) or any(a is not b for a, b in zip(value, before)):
            return f"your function changed the list `{path}` it was given (items added, removed or replaced): copy it first (list(x))"
        return None
    if isinstance(value, dict):
        if value.keys() != before.keys() or any(value[k] is not before[k] for k in before):
            return f"your function changed the dict `{path}` it was given: copy it first (dict(x))"
        return None
    attrs = vars(value)
    changed = sorted(k for k in set(attrs) | set(before) if k not in attrs or k not in before or attrs[k] is not before[k])
    lazy = {k for k in changed if isinstance(getattr(type(value), k, None), functools.cached_property) and k not in before}
    changed = [k for k in changed if k not in lazy]
    if changed:
        return f"your function changed attribute(s) {', '.join(changed)} of `{path}`: leave the objects it is given as they were"
    return None


def _model_changed(path: str, model: torch.nn.Module, before: tuple) -> str | None:
    state, hooks, training, cfg, frozen = before
    now = model.state_dict()
    changed = [k for k in state if k not in now or now[k].shape != state[k].shape or not torch.equal(now[k].detach(), state[k])]
    if changed or now.keys() != state.keys():
        names = ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
        return (f"your function left the weights of `{path}` changed ({names or 'parameters added or removed'}): "
                "every later cell would use the damaged model. Change activations with hooks, never the weights")
    added = {k: n - hooks.get(k, 0) for k, n in _module_hooks(model).items() if n > hooks.get(k, 0)}
    if added:
        where = ", ".join(list(added)[:3]) + (" ..." if len(added) > 3 else "")
        return (f"your function left {sum(added.values())} hook(s) on `{path}` ({where}): they would run in every "
                "later forward pass. Use model.run_with_hooks(...) or `with model.hooks(...)`, or call "
                "model.reset_hooks() before returning")
    now_training = {n for n, m in model.named_modules() if m.training}
    if now_training != training:
        mode = "training" if "" in now_training else "eval"
        return f"your function left `{path}` in {mode} mode (it was {'training' if '' in training else 'eval'}): put it back before returning"
    if {n for n, p in model.named_parameters() if not p.requires_grad} != frozen:
        return f"your function changed which parameters of `{path}` require gradients: put requires_grad back before returning"
    if cfg is not None and hasattr(model, "cfg"):
        now_cfg = vars(model.cfg)
        diff = sorted(k for k in set(cfg) | set(now_cfg) if _differs(cfg.get(k), now_cfg.get(k)))
        if diff:
            return (f"your function changed `{path}.cfg` ({', '.join(diff[:3])}), e.g. with model.set_use_attn_result: "
                    "later cells would run a differently configured model. Put it back before returning")
    return None


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:  # e.g. tensors: compare identity
        return a is not b


def _arg_names(fn: Callable) -> list[str]:
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def call_and_inspect(fn: Callable, args: tuple, kwargs: dict) -> tuple[Any, list[str]]:
    """Call `fn` on fresh copies of `args` / `kwargs` (which may hold Refs) and return its output and what it
    changed: sentences saying which input it mutated, which model it left with hooks / other weights / another
    mode, or which global torch setting it changed (the latter is put back). Used by the notebook checks and by
    the grader's learner kernels alike."""
    args, kwargs = materialize((tuple(args), dict(kwargs)))
    snapshot = Snapshot(args, kwargs, _arg_names(fn))
    try:
        value = fn(*args, **kwargs)
    finally:
        problems = snapshot.changes()
        snapshot.restore_globals()
    return value, problems


# ---------------------------------------------------------------------------------------------------------
# Comparisons: each returns None when `got` is right, else a sentence saying what is wrong
# ---------------------------------------------------------------------------------------------------------


def _value_at(t: torch.Tensor, where: tuple) -> str:
    v = t[where].item() if t.dim() else t.item()
    return f"{v:.6g}" if isinstance(v, float) else repr(v)


def compare_tensors(
    expected: torch.Tensor, got: Any, atol: float = 1e-4, rtol: float = 1e-4, transform: Callable | None = None
) -> str | None:
    """Type, shape, dtype kind, NaN, then values (with tolerance for floats).

    transform: compare transform(expected) with transform(got) (for example exp, to compare log-probs as
    probabilities), but the message still shows the values the learner returned."""
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
    raw_got, raw_expected = got.detach().cpu(), expected.detach().cpu()
    got, expected = raw_got, raw_expected
    if transform is not None:
        got, expected = transform(raw_got), transform(raw_expected)
    if got.dtype.is_floating_point:
        if torch.isnan(got).any() and not torch.isnan(expected).any():
            where = tuple(torch.isnan(got).nonzero()[0].tolist())
            return f"your output has {int(torch.isnan(got).sum())} NaN value(s), the first at index {where}"
        ok = torch.isclose(got.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=True)
    else:
        ok = got == expected
    if not ok.all():
        where = tuple((~ok).nonzero()[0].tolist()) if ok.dim() else ()
        note = f" (compared after {getattr(transform, '__name__', 'a transform')})" if transform is not None else ""
        return (
            f"{int((~ok).sum())} of {ok.numel()} values differ{note}; first at index {where}: "
            f"expected {_value_at(raw_expected, where)}, got {_value_at(raw_got, where)}"
        )
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, (bool, torch.Tensor))


def compare_values(
    expected: Any, got: Any, atol: float = 1e-4, rtol: float = 1e-4, strict: bool = False,
    transform: Callable | None = None,
) -> str | None:
    """Tensors, numbers, strings, sets, and lists / tuples / dicts of them.

    strict: where `expected` holds a Python number, `got` must be a number too (int or float, numpy scalars
    included), not a 0-d tensor; where it holds an int, `got` must be an int; a list must be a list and a tuple
    a tuple. Without it a 1-element tensor
    passes as a number. transform: see compare_tensors (applied to every tensor)."""
    if isinstance(expected, torch.Tensor):
        return compare_tensors(expected, got, atol, rtol, transform)
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return None if got == expected and type(got) is type(expected) else f"expected {expected!r}, got {_short(got)}"
    if isinstance(expected, (int, float)):
        if isinstance(got, torch.Tensor):
            if strict:
                kind = "an int" if isinstance(expected, int) else "a float"
                return (f"expected a Python number ({kind}), got a tensor {_short(got)}: return x.item(), so that "
                        "later cells can format, compare and store it as a number")
            if got.numel() == 1:
                got = got.item()
        if not _is_number(got):
            return f"expected a number, got {type(got).__name__}"
        if isinstance(expected, int) and not float(got).is_integer():
            return f"expected the integer {expected}, got {got}"
        if strict and isinstance(expected, int) and not isinstance(got, numbers.Integral):
            return f"expected an int, got {type(got).__name__} {got!r}: later cells use it as an index or count"
        if math.isnan(got):
            return "got NaN"
        return None if math.isclose(got, expected, abs_tol=atol, rel_tol=rtol) else f"expected {expected:.6g}, got {got:.6g}"
    if isinstance(expected, (set, frozenset)):
        if not isinstance(got, (set, frozenset)):
            return f"expected a set, got {_short(got)}"
        if strict and not all(_is_number(g) or isinstance(g, str) for g in got):
            return f"expected a set of Python values, got {_short(got)}: convert tensors with .item() / .tolist()"
        plain = {g.item() if isinstance(g, torch.Tensor) and g.numel() == 1 else g for g in got}
        return None if plain == expected else f"expected {sorted(expected)!r}, got {sorted(plain, key=repr)!r}"
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"expected a {type(expected).__name__}, got {type(got).__name__}"
        if strict and type(got) is not type(expected):
            return (f"expected a {type(expected).__name__}, got a {type(got).__name__} {_short(got)}: the exercise "
                    f"asks for a {type(expected).__name__}")
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare_values(e, g, atol, rtol, strict, transform)
            if problem:
                return f"item {i}: {problem}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got {type(got).__name__}"
        missing = [k for k in expected if k not in got]
        if missing:
            return f"missing key(s) {missing}"
        for k in expected:  # in the expected dict's order: a multi-step answer reports its first wrong step
            problem = compare_values(expected[k], got[k], atol, rtol, strict, transform)
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
    learner's and the reference output), so that the grader can ship it between processes. It runs in the
    learner's kernel: keep it a pure conversion (use `transform` to compare in another space).
    strict_types: a 0-d tensor does not pass where the reference returns a Python number (see compare_values).
    transform: compare transform(expected) with transform(got) for every tensor (e.g. torch.exp to compare
    log-probs as probabilities); messages still show what the learner returned.
    explain: for answers that are dicts of steps (e.g. model loading), a sentence per key: the first key that
    differs (in the reference's key order) is reported with that sentence.
    kind: "code" (the learner writes an implementation) or "judgement" (the learner's answer is a decision a
    researcher makes; `compare` judges it by its consequences, e.g. runs the chosen intervention), as the
    exercise's `Kind:` line says.
    mistakes: the catalogue of plausible wrong answers, for the "Likely mistake:" line (see `diagnose`).
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
    strict_types: bool = False
    transform: Callable | None = None
    explain: dict[str, str] = dataclasses.field(default_factory=dict)
    kind: str = "code"

    def check_output(self, case: Case, expected: Any, got: Any) -> str | None:
        if self.compare is not None:
            return self.compare(expected, got, case)
        problem = compare_values(expected, got, self.atol, self.rtol, self.strict_types, self.transform)
        if problem and isinstance(expected, dict):
            for key, sentence in self.explain.items():
                if problem.startswith(f"[{key!r}]"):
                    return f"{sentence} ({problem})"
        return problem

    def expected(self, case: Case) -> Any:
        """The reference output, on its own fresh copies of the inputs (nothing a learner did can reach them)."""
        return self.normalize(self.reference(*materialize(case.args), **materialize(case.kwargs)))


AMBIGUOUS_Z = (1.5, 2.5)  # a difference this many SEs from zero may be called either way in a verdict exercise


def read_verdict(got: Any, tensor_verdict: bool = False) -> tuple[float, float, Any] | str:
    """(difference, se, real) from a verdict exercise's answer (a dict with those keys), or the problem with its
    form. `tensor_verdict`: a one-element tensor is a verdict too (where the exercise's inputs are tensors)."""
    if not isinstance(got, dict) or not {"difference", "se", "real"} <= set(got):
        return f"return a dict with the keys 'difference', 'se' and 'real'; got {type(got).__name__} {got!r:.80}"
    try:
        diff, se = float(got["difference"]), float(got["se"])
    except (TypeError, ValueError):
        return f"'difference' and 'se' must be numbers; got {got['difference']!r:.40}, {got['se']!r:.40}"
    real = got["real"]
    if not (isinstance(real, bool) or tensor_verdict and isinstance(real, torch.Tensor) and real.numel() == 1):
        return f"'real' must be True or False (a verdict); got {real!r:.40}"
    return diff, se, real


def verdict_problem(real: Any, diff: float, se: float, expected: dict) -> str | None:
    """The shared rule of the "difference, SE, is it real?" judgement exercises: outside the ambiguous band of
    `AMBIGUOUS_Z` standard errors (the reference's), the learner's verdict must match the reference's."""
    z = abs(expected["difference"]) / expected["se"]
    low, high = AMBIGUOUS_Z
    if (z > high or z < low) and real != expected["real"]:
        return (f"verdict real={real} for a difference of {diff:.4f} with a standard error of {se:.4f}: how many "
                "standard errors from zero is it, and how many does 'real' need?")
    return None


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
    """Call the learner's function on a fresh copy of the case's inputs (see call_and_inspect for side effects)."""
    return call_and_inspect(fn, case.args, case.kwargs)[0]


def mistake_function(exercise: Exercise, mistake: Mistake) -> Callable:
    """The wrong implementation `utils.reference.lesson<NN>_mistakes.<exercise>__<mistake>`."""
    module = importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.reference.lesson{exercise.lesson}_mistakes")
    return getattr(module, f"{exercise.name}__{mistake.name}")


@dataclasses.dataclass(frozen=True)
class Raised:
    """What a learner's function raised, kept so that a catalogued mistake that raises the same error names it."""

    kind: str
    text: str

    @classmethod
    def of(cls, error: BaseException) -> "Raised":
        return cls(error.__class__.__name__, str(error))


def _reproduces(exercise: Exercise, mistake: Mistake, case: Case, got: Any) -> bool:
    try:
        fn = mistake_function(exercise, mistake)
    except Exception:  # no catalogue here (a learner's sandbox)
        return False
    try:
        wrong = exercise.normalize(fn(*materialize(case.args), **materialize(case.kwargs)))
    except Exception as e:  # a mistake that raises is named by the same error, and only by it
        return isinstance(got, Raised) and Raised.of(e) == got
    try:
        return not isinstance(got, Raised) and exercise.check_output(case, wrong, got) is None
    except Exception:
        return False


def _format_diagnosis(mistakes: Sequence[Mistake]) -> str:
    lines = [f"Likely mistake: {mistakes[0].message}"]
    if len(mistakes) > 1:  # the same outputs on every case: the learner's code decides which, so name each
        lines += [f"{ALSO} {m.message}" for m in mistakes[1:]]
    return "\n".join(lines)


ALSO = "Or, giving the same outputs:"


def diagnose(
    exercise: Exercise | str,
    case: Case,
    got: Any,
    others: Sequence[tuple[Case, Any]] = (),
    agreeing: Sequence[tuple[Case, Any]] = (),
) -> str | None:
    """The line "Likely mistake: ..." if a catalogued mistake, run on the same inputs, reproduces the learner's
    wrong output `got` on `case` AND on every other failing case (`others`: pairs of case and the learner's
    normalized output) AND agrees with the learner where the learner's output was right (`agreeing`); None if
    no mistake does, or if the catalogue cannot be imported (as in a learner's sandbox). A mistake that explains
    only some of the learner's wrong outputs is not the learner's mistake: naming it would send the learner to
    the wrong place. Where several mistakes reproduce every output, each is named (one line each). Where no
    catalogued mistake does, a generic relation (utils/checks/generic.py: a flipped sign, swapped dimensions, ...)
    that holds under the same rule is named instead. The grader calls this in its own process, one case at a time."""
    exercise = REGISTRY[exercise] if isinstance(exercise, str) else exercise
    candidates = [m for m in exercise.mistakes if _reproduces(exercise, m, case, got)]
    for other_case, other_got in [*others, *agreeing]:
        if not candidates:
            break
        candidates = [m for m in candidates if _reproduces(exercise, m, other_case, other_got)]
    if not candidates:  # no catalogued mistake: a generic relation (generic.py), under the same rule
        candidates = generic_mistakes(exercise, [(case, got), *others, *agreeing])
    return _format_diagnosis(candidates) if candidates else None


def generic_mistakes(exercise: Exercise, observed: Sequence[tuple[Case, Any]]) -> list[Mistake]:
    """The generic relations (utils/checks/generic.py) that hold between the reference's output and the learner's
    on every observed case (the first one wrong), as Mistakes named "generic:<relation>". A catalogued mistake,
    written for the exercise, takes precedence: where one reproduces the outputs it says the same more exactly.
    Silent where the reference cannot run (a learner's sandbox) or the learner's function raised."""
    if any(isinstance(got, Raised) for _, got in observed):
        return []
    try:
        found = generic.explaining(exercise, list(observed), exercise.expected)
    except Exception:  # no reference here, or an output no relation understands
        return []
    return [Mistake(f"{GENERIC}{r.name}", r.message) for r in found]


GENERIC = "generic:"


def learner_frames(exc: BaseException) -> str:
    """The part of a traceback that lies in the learner's own code (notebook cells), not in utils."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "/utils/" not in f.filename.replace("\\", "/")
    ]
    return "".join(traceback.format_list(frames[-3:]))


class Judged(str):
    """A judgement check's problem that also names the decision's mistake: `cause` completes "Likely mistake: ..."
    (a judgement exercise's answer is judged by its consequences, so no catalogued answer can reproduce it; the
    branch of the comparison that rejects it says which mistake it is)."""

    cause: str

    def __new__(cls, problem: str, cause: str) -> "Judged":
        judged = super().__new__(cls, problem)
        judged.cause = cause
        return judged


# what a side effect the value check cannot see (core's own messages, matched by their words) says about the code
_IN_PLACE = ("an in-place operation on an input (a method ending in `_`, `x += ...` or `x[...] = ...` on what you "
             "were given) instead of on a copy")
SIDE_EFFECT_CAUSES = (
    (r"^your function changed (the shape of )?its input", _IN_PLACE),
    (r"^your function changed the list", "the list you were given was changed (append, sort, item assignment) "
                                         "instead of a copy"),
    (r"^your function changed the dict", "the dict you were given was changed instead of a copy"),
    (r"^your function left the weights", "the model's weights were written to (an in-place change of a parameter)"),
    (r"^your function left \d+ hook\(s\)", "hooks added to the model (add_hook) and never removed"),
    (r"^your function left `.*` in \w+ mode", "the model's train/eval mode was changed and not restored"),
    (r"^your function changed which parameters", "requires_grad was changed on the model's parameters and not "
                                                 "restored"),
    (r"^your function changed `.*\.cfg`", "the model's configuration was changed (e.g. set_use_attn_result) and "
                                           "not restored"),
)


def cause_line(problems: Sequence[str]) -> str | None:
    """"Likely mistake: ..." from the problems of every failing case, where each names the same cause: a
    judgement check's `Judged` branch, or a side effect the value check cannot see (core's own messages)."""
    causes = set()
    for problem in problems:
        cause = getattr(problem, "cause", None)
        if cause is None:
            cause = next((c for pattern, c in SIDE_EFFECT_CAUSES if re.match(pattern, str(problem))), None)
        if cause is None:
            return None
        causes.add(cause)
    return _format_diagnosis([Mistake("cause", causes.pop())]) if len(causes) == 1 else None


@dataclasses.dataclass
class CaseResult:
    label: str
    passed: bool
    message: str = ""
    diagnosis: str = ""  # "Likely mistake: ..." (first failing case only), or ""
    wrong_value: bool = False  # the returned value differs from the reference (not only a side effect)
    problem: str | None = None  # the first problem as the comparison returned it (a `Judged` names its cause)


def _run_case(exercise: Exercise, fn: Callable, case: Case) -> tuple[CaseResult, Any]:
    """One case: the learner's output compared with the reference, plus anything the call changed; returns the
    result and the learner's normalized output (None where the function raised)."""
    try:
        raw, side_effects = call_and_inspect(fn, case.args, case.kwargs)
        got = exercise.normalize(raw)
    except NotImplementedError:
        raise ExerciseNotDone(
            f"`{exercise.name}` is not implemented yet: replace `raise NotImplementedError()` with your code."
        ) from None
    except Exception as e:  # the learner's bug, reported, never a crash inside utils
        if any(text in str(e) for text in case.allow_error):
            return CaseResult(case.describe(), True), Raised.of(e)
        msg = f"your function raised {e.__class__.__name__}: {e}\n{learner_frames(e)}"
        return CaseResult(case.describe(), False, msg.rstrip(), wrong_value=True), Raised.of(e)
    problem = exercise.check_output(case, exercise.expected(case), got)
    problems = ([problem] if problem else []) + side_effects
    result = CaseResult(case.describe(), not problems, "\n".join(problems), wrong_value=bool(problem),
                        problem=problems[0] if problems else None)
    return result, got


def run_case(exercise: Exercise, fn: Callable, case: Case, diagnose_it: bool = True) -> CaseResult:
    """One case, diagnosed on its own inputs when its value is wrong."""
    result, got = _run_case(exercise, fn, case)
    if diagnose_it and result.wrong_value:
        result.diagnosis = diagnose(exercise, case, got) or ""
    if diagnose_it and not result.passed and not result.diagnosis:
        result.diagnosis = cause_line([result.problem]) or ""
    return result


def run_cases(exercise: Exercise, fn: Callable, seed: int) -> list[CaseResult]:
    """Run every case; a learner exception becomes a failed case with a readable message. The first failing case
    (the one the report shows) is diagnosed when its value is wrong: a catalogued mistake is named only if it
    reproduces the learner's output on every case whose value is wrong and agrees with it on every other case."""
    results: list[CaseResult] = []
    wrong: list[tuple[int, Case, Any]] = []
    right: list[tuple[Case, Any]] = []
    for case in exercise.cases(seed):
        result, got = _run_case(exercise, fn, case)
        if result.wrong_value:
            wrong.append((len(results), case, got))
        elif not isinstance(got, Raised):  # a tolerated error (Case.allow_error) says nothing about a mistake
            right.append((case, got))
        results.append(result)
    failed = [i for i, r in enumerate(results) if not r.passed]
    if wrong and failed and wrong[0][0] == failed[0]:
        _, case, got = wrong[0]
        others = [(c, g) for _, c, g in wrong[1:]]
        results[failed[0]].diagnosis = diagnose(exercise, case, got, others, right) or ""
    if failed and not results[failed[0]].diagnosis:  # a judged decision, or a side effect only
        results[failed[0]].diagnosis = cause_line([results[i].problem for i in failed]) or ""
    return results


def format_failure(exercise: Exercise, results: list[CaseResult]) -> str:
    failed = [r for r in results if not r.passed]
    first = failed[0]
    lines = [
        f"`{exercise.name}` failed {len(failed)} of {len(results)} test case(s).",
        f"First failing input: {first.label}",
        f"Problem: {first.message}",
    ]
    if getattr(first, "diagnosis", ""):
        lines.append(first.diagnosis)
    if exercise.hint:
        lines.append(f"Hint: {exercise.hint}")
    return "\n".join(lines)


def check(name: str, fn: Callable, seed: int | None = None) -> None:
    """The learner's entry point: test `fn` against exercise `name` on fresh inputs."""
    __tracebackhide__ = True  # IPython and pytest hide this frame: the learner sees the message, not utils' code
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
        __tracebackhide__ = True
        try:
            check(name, fn)
        except (CheckFailed, ExerciseNotDone) as e:
            # Raised afresh from here, with no frames of utils below it (and shown as its message alone in a
            # notebook, see _MessageOnly): the learner sees the message, not the four frames of core.py.
            raise e.with_traceback(None) from None

    test.__name__ = f"test_{name}"
    test.__doc__ = f"Check your `{name}` against the reference on fresh inputs."
    return test
