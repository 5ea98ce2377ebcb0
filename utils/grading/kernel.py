"""Runs inside the learner's kernel (in the sandbox): call the learner's function on the grader's cases.

The worker sends one cell per exercise: `from utils.grading.kernel import grade; grade(...)`. For each case
`grade` loads the inputs (read-only files written by the grader), calls the learner's function by name from the
notebook's globals, normalizes the output to plain tensors / numbers / strings / containers and sends it back as a
display message of type RESULT_MIME (a torch.save'd dict, base64) tagged with the worker's random token.

Nothing here is trusted: the learner's code ran first in this process and may have changed anything. The grader
rebuilds plain values from what it receives and compares them with the reference in its own process; the worst a
tampered kernel can do is report a wrong answer. Whether the learner's function uses the library's version of
the exercise is decided outside this process, from the notebook's source (utils/grading/library_rule.py): a
watch inside the learner's own process cannot be made sound. The case files appear in the arguments folder only
for this exercise's call (the worker puts them there just before it).
"""

from __future__ import annotations

import base64
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


def call_one(exercise, fn: Callable, inputs: dict) -> dict:
    """One case: the result record (see records.CALL_STATUSES)."""
    from utils.checks.core import call_and_inspect

    try:
        raw, side_effects = call_and_inspect(fn, inputs["args"], inputs["kwargs"])
        value = exercise.normalize(raw)
    except NotImplementedError:
        return {"status": "not_implemented"}
    except Exception as e:
        return {"status": "error", "error": (e.__class__.__name__ + ": " + str(e))[:500]}
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
    """Call the learner's `name` on each case in `arg_files` and send each result back. (`library` is unused:
    the library rule is decided outside the kernel.)"""
    import torch
    import utils.checks  # noqa: F401  (registers every exercise)
    from utils.checks.core import REGISTRY

    exercise = REGISTRY[name]
    fn = learner_namespace().get(name)
    for i, path in enumerate(arg_files):
        if fn is None or not callable(fn):
            record = {"status": "missing"}
        else:
            record = call_one(exercise, fn, torch.load(path, weights_only=False))
        send(record, token, i)
