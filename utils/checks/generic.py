"""Generic mistakes: relations between the reference's output and a learner's on the same case that name a cause
whatever the exercise (a flipped sign, swapped dimensions, a sum where a mean is asked, ...).

A catalogue (`Exercise.mistakes`) only names what its author foresaw; these relations need no author. Each is a
`Relation`: `holds(exercise, case, expected, got)` says whether the learner's output `got` stands in that relation
to the reference output `expected` of that case. Most are exact: `got` equals a transform of `expected` (its
negation, its transpose, ...) under the exercise's own comparison. A few only describe a property (`got` sums to 1
over another dimension than `expected`); they are named only where no exact relation holds.

`core.diagnose` names a relation under the same rule as a catalogued mistake: it holds on every case whose output
is wrong AND on every case whose output is right (there `got` is the reference's, so the relation must leave the
reference unchanged), and only where no catalogued mistake reproduces the output. Messages state the relation and
the causes it implies, never a cause it does not.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import math
import numbers
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

if TYPE_CHECKING:
    from .core import Case, Exercise

Path = tuple  # keys / indices from the top of an output to one of its leaves; () is the whole output


@dataclasses.dataclass(frozen=True)
class Relation:
    """One generic mistake: `name` is unique per exercise output; `message` completes "Likely mistake: ..."."""

    name: str
    message: str
    holds: Callable[["Exercise", "Case", Any, Any], bool]
    exact: bool = True


# ---------------------------------------------------------------------------------------------------------
# Leaves: the tensors and numbers inside an output, and a copy of the output with a function applied to some
# ---------------------------------------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_leaf(x: Any) -> bool:
    return isinstance(x, torch.Tensor) or _is_number(x)


def leaf_paths(value: Any) -> list[Path]:
    """The paths of the tensors and numbers in a dict / short tuple or list output (a leaf itself: [()])."""
    if _is_leaf(value):
        return [()]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and len(value) <= 8:
        items = list(enumerate(value))
    else:
        return []
    return [(key, *path) for key, item in items for path in leaf_paths(item)]


def apply_at(value: Any, path: Path | None, fn: Callable[[Any], Any]) -> Any:
    """A copy of `value` with `fn` applied to the leaf at `path` (None: to every leaf). Raises where `fn` does not
    apply (then the relation does not hold)."""
    if path is None:
        if _is_leaf(value):
            return fn(value)
        if isinstance(value, dict):
            return {k: apply_at(v, None, fn) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(apply_at(v, None, fn) for v in value)
        return value
    if not path:
        return fn(value)
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: apply_at(v, rest, fn) if k == key else v for k, v in value.items()}
    return type(value)(apply_at(v, rest, fn) if i == key else v for i, v in enumerate(value))


def leaf_at(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def _where(path: Path | None) -> str:
    return "" if not path else "".join(f"[{k!r}]" for k in path) + ": "


# ---------------------------------------------------------------------------------------------------------
# Value transforms of one leaf (a tensor or a number); each raises ValueError where it does not apply
# ---------------------------------------------------------------------------------------------------------


def _floating(x: Any) -> bool:
    return isinstance(x, float) or (isinstance(x, torch.Tensor) and x.dtype.is_floating_point)


def _integral(x: Any) -> bool:
    return (isinstance(x, numbers.Integral) and not isinstance(x, bool)) or (
        isinstance(x, torch.Tensor) and not x.dtype.is_floating_point and x.dtype != torch.bool)


def _need(ok: bool) -> None:
    if not ok:
        raise ValueError("this relation does not apply to this output")


def negated(x: Any) -> Any:
    _need(_floating(x))
    return -x


def exponentiated(x: Any) -> Any:
    _need(_floating(x))
    return x.exp() if isinstance(x, torch.Tensor) else math.exp(x)


def logged(x: Any) -> Any:
    _need(_floating(x) and bool((torch.as_tensor(x) >= 0).all()))
    return x.log() if isinstance(x, torch.Tensor) else math.log(x) if x > 0 else -math.inf


def complemented(x: Any) -> Any:
    _need(_floating(x) and bool(((torch.as_tensor(x) >= 0) & (torch.as_tensor(x) <= 1)).all()))
    return 1 - x


def _scaled(x: Any, factor: float) -> Any:
    _need(_floating(x))
    return x * factor


def plus(step: int) -> Callable[[Any], Any]:
    def shifted(x: Any) -> Any:
        _need(_integral(x))
        return x + step
    return shifted


# Exact relations of the values: (name, transform, message)
VALUE_TRANSFORMS: tuple[tuple[str, Callable[[Any], Any], str], ...] = (
    ("sign_flipped", negated, "your output is the reference's with every sign flipped: a subtraction in the wrong "
     "order, or a minus sign missing or extra (e.g. a loss where a log-prob is asked, or the reverse)."),
    ("exp_of_reference", exponentiated, "your output is exp of the reference's: probabilities where log-probabilities "
     "are asked, or one exp too many."),
    ("log_of_reference", logged, "your output is the log of the reference's: log-probabilities where probabilities are "
     "asked, or one log too many."),
    ("one_minus_reference", complemented, "your output is 1 minus the reference's: the probability of the opposite "
     "event (e.g. of being wrong where being right is asked)."),
    ("log_base_2", lambda x: _scaled(x, 1 / math.log(2)), "your output is the reference's divided by ln 2: "
     "logarithms in base 2 (bits) where the natural log (nats) is asked."),
    ("log_base_10", lambda x: _scaled(x, 1 / math.log(10)), "your output is the reference's divided by ln 10: "
     "logarithms in base 10 where the natural log is asked."),
    ("times_26", lambda x: _scaled(x, 26), "your output is 26 times the reference's: a sum over the 26 letters or "
     "shifts where the reference averages over them (a division by 26 missing)."),
    ("over_26", lambda x: _scaled(x, 1 / 26), "your output is the reference's divided by 26: an average over the 26 "
     "letters or shifts where the reference sums over them (or a division by 26 too many)."),
    ("plus_one", plus(1), "every integer of your output is 1 more than the reference's: an off-by-one (counting from "
     "1, or a + 1 too many)."),
    ("minus_one", plus(-1), "every integer of your output is 1 less than the reference's: an off-by-one (a - 1 too "
     "many, or a + 1 missing)."),
)


def _transform_relation(name: str, fn: Callable[[Any], Any], message: str, path: Path | None) -> Relation:
    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        return exercise.check_output(case, apply_at(expected, path, fn), got) is None

    return Relation(f"{name}{_where(path)}", _where(path) + message, holds)


# ---------------------------------------------------------------------------------------------------------
# A factor equal to the size of an input's dimension: a sum where a mean is asked, or the reverse
# ---------------------------------------------------------------------------------------------------------


def _argument_names(exercise: "Exercise") -> list[str]:
    try:
        module = importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.reference.lesson{exercise.lesson}")
        return list(inspect.signature(getattr(module, exercise.name)).parameters)
    except Exception:  # no reference module here, or the reference lives elsewhere: number the arguments
        return []


def input_sizes(case: "Case", expected: Any) -> dict[tuple[int, int], int]:
    """{(argument index, dim): size} for every tensor argument (dim -1: a list's length, dim -2: a tensor's number
    of elements) and {(-1, dim): size} for a tensor output's dims; sizes above 1."""
    sizes = {}
    for i, arg in enumerate(case.args):
        if isinstance(arg, torch.Tensor):
            sizes.update({(i, d): n for d, n in enumerate(arg.shape) if n > 1})
            if arg.dim() > 1:
                sizes[(i, -2)] = arg.numel()
        elif isinstance(arg, (list, tuple)) and len(arg) > 1:
            sizes[(i, -1)] = len(arg)
    if isinstance(expected, torch.Tensor):
        sizes.update({(-1, d): n for d, n in enumerate(expected.shape) if n > 1})
    return sizes


def _size_name(key: tuple[int, int], names: list[str]) -> str:
    i, d = key
    if i < 0:
        return f"the size of dim {d} of the output"
    arg = f"`{names[i]}`" if i < len(names) else f"argument {i + 1}"
    return f"the length of {arg}" if d == -1 else f"the number of elements of {arg}" if d == -2 else f"the size of dim {d} of {arg}"


def _scale_relation(key: tuple[int, int], up: bool, path: Path | None, names: list[str]) -> Relation:
    i, d = key
    size = _size_name(key, names)
    message = (f"your output is the reference's multiplied by {size}: a division by that count is missing (e.g. a "
               "sum where the reference takes a mean)." if up else
               f"your output is the reference's divided by {size}: an extra division by that count (e.g. a mean "
               "where the reference sums, or a total taken over that dimension as well).")

    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        n = input_sizes(case, expected).get(key)
        if n is None:
            return False
        fn = lambda x: _scaled(x, n if up else 1 / n)  # noqa: E731
        return exercise.check_output(case, apply_at(expected, path, fn), got) is None

    return Relation(f"{'times' if up else 'over'}_size_{i}_{d}{_where(path)}", _where(path) + message, holds)


# ---------------------------------------------------------------------------------------------------------
# Tensor layout: dimensions permuted, order reversed, values shifted by one place along a dimension
# ---------------------------------------------------------------------------------------------------------


def _tensor_relation(name: str, message: str, fn: Callable[[torch.Tensor], torch.Tensor], path: Path | None) -> Relation:
    def on_tensor(x: Any) -> Any:
        _need(isinstance(x, torch.Tensor))
        return fn(x)

    return _transform_relation(name, on_tensor, message, path)


def _layout_relations(x: torch.Tensor, path: Path | None) -> Iterator[Relation]:
    n = x.dim()
    if 2 <= n <= 4:
        for perm in itertools.permutations(range(n)):
            if list(perm) != list(range(n)):
                yield _tensor_relation(
                    f"dims_{''.join(map(str, perm))}",
                    f"your output holds the reference's values with its dimensions in the order {perm} (your dim k is "
                    "the reference's dim perm[k]): dimensions swapped (check the order of the indices, or the einops "
                    "pattern).", lambda t, p=perm: t.permute(*p), path)
    for d in range(n):
        yield _tensor_relation(
            f"reversed_{d}", f"your output is the reference's in reverse order along dim {d}: an index along that "
            "dimension runs the wrong way.", lambda t, d=d: t.flip(d), path)
        for step in (1, -1):
            yield _shift_relation(d, step, path)
        if x.shape[d] > 2:
            yield _reordered_relation(d, path)


def _same_slices(e: torch.Tensor, g: torch.Tensor, d: int, atol: float, rtol: float) -> bool:
    """g's slices along dim d are e's, in some order (each matched once)."""
    rows_e = e.movedim(d, 0).reshape(e.shape[d], -1).double()
    rows_g = g.movedim(d, 0).reshape(g.shape[d], -1).double()
    if not e.dtype.is_floating_point:
        return sorted(map(tuple, rows_e.tolist())) == sorted(map(tuple, rows_g.tolist()))
    if not bool(torch.isfinite(rows_e).all() & torch.isfinite(rows_g).all()):
        return False
    gap = torch.cdist(rows_g, rows_e, p=float("inf"))
    nearest = gap.argmin(1)
    close = gap.min(1).values <= atol + rtol * rows_e.abs().max()
    return bool(close.all()) and len(set(nearest.tolist())) == len(nearest)


def _reordered_relation(d: int, path: Path | None) -> Relation:
    message = (f"your output holds the reference's slices along dim {d} in another order: an index, a flattening "
               f"order or a sort along that dimension differs from the one asked.")

    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        e, g = leaf_at(expected, path or ()), leaf_at(got, path or ())
        if not (isinstance(e, torch.Tensor) and isinstance(g, torch.Tensor) and e.shape == g.shape and e.dim() > d):
            return False
        rest = apply_at(got, path or (), lambda t: e)  # everything but this leaf must be right
        return exercise.check_output(case, expected, rest) is None and _same_slices(e, g, d, exercise.atol, exercise.rtol)

    return Relation(f"reordered_{d}{_where(path)}", _where(path) + message, holds, exact=False)


def _shift_relation(d: int, step: int, path: Path | None) -> Relation:
    later = step == 1
    message = (f"your value at place i along dim {d} is the reference's at place {'i - 1' if later else 'i + 1'}: "
               f"everything is shifted one place {'later' if later else 'earlier'} along that dimension (an "
               "off-by-one in a position or index).")

    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        from .core import compare_tensors

        e, g = leaf_at(expected, path or ()), leaf_at(got, path or ())
        if not (isinstance(e, torch.Tensor) and isinstance(g, torch.Tensor) and e.shape == g.shape and e.dim() > d):
            return False
        size = e.shape[d]
        if size < 3:  # too short to tell a shift: it holds only where the output is right
            return compare_tensors(e, g, exercise.atol, exercise.rtol, exercise.transform) is None
        head, tail = e.narrow(d, 0, size - 1), e.narrow(d, 1, size - 1)
        if compare_tensors(head, tail, exercise.atol, exercise.rtol) is None:
            return compare_tensors(e, g, exercise.atol, exercise.rtol, exercise.transform) is None  # constant along d
        mine, theirs = (g.narrow(d, 1, size - 1), head) if later else (g.narrow(d, 0, size - 1), tail)
        return compare_tensors(theirs, mine, exercise.atol, exercise.rtol, exercise.transform) is None

    return Relation(f"shift_{d}_{step}{_where(path)}", _where(path) + message, holds)


# ---------------------------------------------------------------------------------------------------------
# Normalisation: over which dimension an output sums to 1 (in probability or in log space)
# ---------------------------------------------------------------------------------------------------------


def _normalised(x: torch.Tensor, d: int, log: bool) -> bool:
    """x sums to 1 over dim d: as probabilities (all >= 0), or in log space (all <= 0, -inf allowed for a 0)."""
    if not x.dtype.is_floating_point or x.dim() <= d or x.shape[d] < 2 or bool(x.isnan().any() | (x == math.inf).any()):
        return False
    if not log and not bool(torch.isfinite(x).all()):
        return False
    total = x.double().logsumexp(d) if log else x.double().sum(d)
    signs = (x <= 1e-6).all() if log else (x >= 0).all()
    return bool(signs) and bool(torch.isfinite(total).all()) and bool((total - (0.0 if log else 1.0)).abs().max() < 1e-3)


def _renormalised(x: torch.Tensor, d: int, log: bool) -> torch.Tensor:
    _need(isinstance(x, torch.Tensor) and x.dtype.is_floating_point)
    return x - x.logsumexp(d, keepdim=True) if log else x / x.sum(d, keepdim=True)


def _missing_normalisation(d: int, log: bool, path: Path | None) -> Relation:
    message = (f"your output minus its logsumexp over dim {d} is the reference's: log-probabilities not normalised "
               f"over dim {d} (the log_softmax, or the subtraction of the logsumexp, is missing or uses another total)."
               if log else
               f"your output is proportional to the reference's along dim {d} but does not sum to 1 over it: the "
               "division by the total over that dimension is missing, or divides by another total.")

    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        e = leaf_at(expected, path or ())
        if not isinstance(e, torch.Tensor) or not _normalised(e, d, log):
            return False
        fixed = apply_at(got, path or (), lambda t: _renormalised(t, d, log))
        return exercise.check_output(case, expected, fixed) is None

    return Relation(f"unnormalised_{d}_{'log' if log else 'p'}{_where(path)}", _where(path) + message, holds)


def _wrong_dim_normalisation(d: int, other: int, log: bool, path: Path | None) -> Relation:
    space = "in log space (logsumexp 0)" if log else ""
    message = (f"your output sums to 1 over dim {other} {space}where the reference's sums to 1 over dim {d}: "
               "normalised (softmax, or division by a total) over the wrong dimension.").replace("  ", " ")

    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        e, g = leaf_at(expected, path or ()), leaf_at(got, path or ())
        if not (isinstance(e, torch.Tensor) and isinstance(g, torch.Tensor) and e.shape == g.shape):
            return False
        if exercise.check_output(case, expected, got) is None:  # a right output: it must be normalised both ways
            return _normalised(e, d, log) and _normalised(e, other, log)
        return _normalised(e, d, log) and _normalised(g, other, log) and not _normalised(g, d, log)

    return Relation(f"normalised_{other}_not_{d}_{'log' if log else 'p'}{_where(path)}", _where(path) + message, holds,
                    exact=False)


def _normalisation_relations(x: torch.Tensor, path: Path | None) -> Iterator[Relation]:
    for log in (False, True):
        for d in range(x.dim()):
            if _normalised(x, d, log):
                yield _missing_normalisation(d, log, path)
                for other in range(x.dim()):
                    if other != d and x.shape[other] > 1:
                        yield _wrong_dim_normalisation(d, other, log, path)


# ---------------------------------------------------------------------------------------------------------
# Types: the right values in another dtype, or as a tensor / tuple where a number / list is asked
# ---------------------------------------------------------------------------------------------------------


def _tensorwise(convert: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[Any, Any], Any]:
    """A conversion of the learner's output, tensor by tensor against the reference's, through dicts and lists."""

    def apply(got: Any, expected: Any) -> Any:
        if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor):
            return convert(got, expected)
        if isinstance(expected, dict) and isinstance(got, dict):
            return {k: apply(v, expected[k]) if k in expected else v for k, v in got.items()}
        if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)) and len(got) == len(expected):
            return type(got)(apply(g, e) for g, e in zip(got, expected))
        return got

    return apply


_as_dtype_of = _tensorwise(lambda g, e: g.to(e.dtype))
_as_shape_of = _tensorwise(lambda g, e: g.reshape(e.shape) if g.numel() == e.numel() else g)


def _as_type_of(got: Any, expected: Any) -> Any:
    if _is_number(expected) and isinstance(got, torch.Tensor) and got.numel() == 1:
        return type(expected)(got.item())
    if _is_number(expected) and _is_number(got) and float(got) == float(type(expected)(got)):
        return type(expected)(got)  # numpy scalars, and an integral float where an int is asked
    if isinstance(expected, dict) and isinstance(got, dict):
        return {k: _as_type_of(v, expected[k]) if k in expected else v for k, v in got.items()}
    if isinstance(expected, dict) and isinstance(got, (list, tuple)) and len(got) == len(expected):
        return {k: _as_type_of(g, e) for (k, e), g in zip(expected.items(), got)}  # the values in the keys' order
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)) and len(got) == len(expected):
        return type(expected)(_as_type_of(g, e) for g, e in zip(got, expected))
    if isinstance(expected, (set, frozenset)) and isinstance(got, (list, tuple)):
        return set(got)
    if isinstance(expected, str) and isinstance(got, (list, tuple)) and all(isinstance(g, str) for g in got):
        return "".join(got)
    if isinstance(expected, list) and isinstance(got, (set, frozenset)):
        return sorted(got)
    if isinstance(expected, torch.Tensor) and not isinstance(got, torch.Tensor) and isinstance(got, (list, tuple)) or (
            isinstance(expected, torch.Tensor) and type(got).__module__ == "numpy"):
        return torch.tensor(got, dtype=expected.dtype)
    return got


def _type_relation(name: str, convert: Callable[[Any, Any], Any], message: str) -> Relation:
    def holds(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
        return exercise.check_output(case, expected, convert(got, expected)) is None

    return Relation(name, message, holds)


def _items_reordered(exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
    """A short tuple / list output whose items are the reference's in another order (the right order: unchanged)."""
    if not (isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)) and 1 < len(got) == len(expected) <= 4):
        return False
    return any(exercise.check_output(case, expected, type(got)(got[i] for i in order)) is None
               for order in itertools.permutations(range(len(got))))


TYPE_RELATIONS = (
    Relation("items_reordered", "your output holds the reference's items in another order: return them in the order "
             "the exercise names them.", _items_reordered),
    _type_relation("other_shape", _as_shape_of, "your output holds the reference's values in the same order but in "
                   "another shape: dimensions merged, split, added or dropped (reshape, flatten, squeeze or unsqueeze "
                   "to the shape the exercise asks for)."),
    _type_relation("other_dtype", _as_dtype_of, "your values are right but their dtype is not the reference's: the "
                   "tensor was built or converted in another dtype (check the dtype the exercise asks for)."),
    _type_relation("other_python_type", _as_type_of, "your values are right but their Python type is not: e.g. a "
                   "tensor where a Python number is asked (use .item()), a list or array where a tensor is asked, a "
                   "tuple or set where a list is asked, a tuple where a dict is asked, a list of characters where a str is "
                   "asked, or a float where an int is asked."),
)


# ---------------------------------------------------------------------------------------------------------
# All the relations for one output, and the ones that explain a learner's outputs
# ---------------------------------------------------------------------------------------------------------


def relations(exercise: "Exercise", case: "Case", expected: Any) -> list[Relation]:
    """Every generic relation that could apply to this reference output: value transforms and scale factors of
    the whole output and of each leaf, the layout and normalisation of each tensor leaf, and the type relations."""
    paths = leaf_paths(expected)
    targets: list[Path | None] = [None] + ([p for p in paths if p] if len(paths) > 1 or paths != [()] else [])
    names = _argument_names(exercise)
    found = list(TYPE_RELATIONS)
    for path in targets:
        found += [_transform_relation(n, fn, m, path) for n, fn, m in VALUE_TRANSFORMS]
        found += [_scale_relation(key, up, path, names) for key in input_sizes(case, expected) for up in (True, False)]
        leaf = leaf_at(expected, path or ()) if path is not None or paths == [()] else None
        if isinstance(leaf, torch.Tensor):
            found += list(_layout_relations(leaf, path)) + list(_normalisation_relations(leaf, path))
    return found


def _safely(relation: Relation, exercise: "Exercise", case: "Case", expected: Any, got: Any) -> bool:
    try:
        return bool(relation.holds(exercise, case, expected, got))
    except Exception:  # a relation that does not apply to this output (shape, dtype, type) does not hold
        return False


def explaining(exercise: "Exercise", observed: list[tuple["Case", Any]], expected_of: Callable[["Case"], Any]) -> list[Relation]:
    """The relations that hold on every (case, learner output) pair in `observed` (the first must be a wrong
    output): the exact ones if any hold, else the descriptive ones."""
    if not observed or exercise.kind != "code":
        return []
    first_case, first_got = observed[0]
    first_expected = expected_of(first_case)
    candidates = [r for r in relations(exercise, first_case, first_expected)
                  if _safely(r, exercise, first_case, first_expected, first_got)]
    for case, got in observed[1:]:
        if not candidates:
            break
        expected = expected_of(case)
        candidates = [r for r in candidates if _safely(r, exercise, case, expected, got)]
    exact = [r for r in candidates if r.exact]
    return exact or candidates
