"""Runs inside the learner's kernel (in the sandbox): call the learner's function on the grader's cases.

The worker sends one cell per exercise: `from utils.grading.kernel import grade; grade(...)`. For each case
`grade` loads the inputs (read-only files written by the grader), calls the learner's function by name from the
notebook's globals, normalizes the output to plain tensors / numbers / strings / containers and sends it back as a
display message of type RESULT_MIME (a torch.save'd dict, base64) tagged with the worker's random token.

Nothing here is trusted: the learner's code ran first in this process and may have changed anything. The grader
rebuilds plain values from what it receives and compares them with the reference in its own process; the worst a
tampered kernel can do is report a wrong answer. While an exercise is called, the library function that answers it
(for example `utils.analysis.first_char_probs`) is watched with a profile hook: a call to it makes that case score 0
with status "library" (feedback says why).
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import sys
from typing import Any, Callable

from .records import RESULT_MIME


def plain(v: Any) -> Any:
    """Tensors, numbers, strings, None and lists / tuples / dicts of them, as plain objects (else TypeError)."""
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().cpu().as_subclass(torch.Tensor).clone()
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
        return {plain(k): plain(x) for k, x in v.items()}
    if hasattr(v, "item") and getattr(v, "shape", None) == ():  # a numpy scalar
        return plain(v.item())
    raise TypeError(type(v).__name__)


def library_codes(library: list[list[str]]) -> dict[Any, str]:
    """The code objects of the library functions that answer the exercise: {code: 'module.name'}."""
    codes = {}
    for module_name, qualname in library:
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            fn = inspect.unwrap(obj)
            codes[fn.__code__] = f"{module_name}.{qualname}"
        except Exception:  # a library that changed: nothing to watch
            continue
    return codes


class Watch:
    """A profile hook that notes calls to the given code objects (from any reference to those functions)."""

    def __init__(self, codes: dict[Any, str]):
        self.codes = codes
        self.hits: list[str] = []
        self.previous: Callable | None = None

    def __call__(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:
            self.hits.append(self.codes[frame.f_code])
        if self.previous is not None:
            self.previous(frame, event, arg)

    def __enter__(self) -> "Watch":
        self.previous = sys.getprofile()
        if self.codes:
            sys.setprofile(self)
        return self

    def __exit__(self, *exc) -> None:
        self.removed = bool(self.codes) and sys.getprofile() is not self
        sys.setprofile(self.previous)


def call_one(exercise, fn: Callable, inputs: dict, codes: dict[Any, str]) -> dict:
    """One case: the result record (see records.CALL_STATUSES)."""
    from utils.checks.core import call_and_inspect

    try:
        with Watch(codes) as watch:
            raw, side_effects = call_and_inspect(fn, inputs["args"], inputs["kwargs"])
            value = exercise.normalize(raw)
    except NotImplementedError:
        return {"status": "not_implemented"}
    except Exception as e:
        return {"status": "error", "error": (e.__class__.__name__ + ": " + str(e))[:500]}
    if watch.hits:
        return {"status": "library", "library": watch.hits[0]}
    if watch.removed:
        return {"status": "error", "error": "the grader's call monitor was removed (sys.setprofile) during the call"}
    if side_effects:  # it changed its inputs or left the model changed: the next cell would inherit the damage
        return {"status": "side_effect", "error": "\n".join(side_effects)[:500]}
    try:
        return {"status": "ok", "value": plain(value)}
    except TypeError as e:
        return {"status": "bad_type", "type": str(e)}


def send(record: dict, token: str, index: int) -> None:
    import torch
    from IPython.display import publish_display_data

    buf = io.BytesIO()
    torch.save(record, buf)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    publish_display_data({RESULT_MIME: data}, metadata={RESULT_MIME: {"token": token, "index": index}})


def learner_namespace() -> dict:
    try:
        return get_ipython().user_ns  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return vars(sys.modules["__main__"])


def grade(name: str, arg_files: list[str], library: list[list[str]], token: str) -> None:
    """Call the learner's `name` on each case in `arg_files` and send each result back."""
    import torch
    import utils.checks  # noqa: F401  (registers every exercise)
    from utils.checks.core import REGISTRY

    exercise = REGISTRY[name]
    fn = learner_namespace().get(name)
    codes = library_codes(library)
    for i, path in enumerate(arg_files):
        if fn is None or not callable(fn):
            record = {"status": "missing"}
        else:
            record = call_one(exercise, fn, torch.load(path, weights_only=False), codes)
        send(record, token, i)
