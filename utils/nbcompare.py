"""How nbval compares a re-executed cell's outputs with the stored ones: numbers at a stated precision.

nbval compares outputs as strings (after the regex substitutions of tests/nbval_sanitize.cfg) and plotly figures as
JSON, bit for bit, with their arrays base64-encoded ("bdata"). Float noise from another CPU, BLAS or a GPU then fails
a notebook with an unreadable diff. `reconcile` runs first (the root conftest.py hooks it into nbval) and treats a
pair of outputs as equal when they differ only in numbers that agree at this precision:

* a printed number: within one unit of its last printed digit (a claim printed as 0.96 is compared at two
  decimals; a value on a rounding boundary may flip by one unit), or within 4 significant digits (relative 1e-4)
  when it is printed with more digits than that (0.00009 and 0.00001 differ; 0.123456789 and 0.123457 agree);
* a plotly figure: every numeric array within 1e-4 of the array's largest |value|, every other number within
  4 significant digits, every string as text above, everything else equal;
* a histogram drawn as bars (a bar trace over 8 or more equally spaced numeric x, no negative y: what
  `np.histogram` + `go.Bar` draws): the same bins and total, and cumulative distributions that differ at no more
  than `HIST_EDGES` bin edges, by at most `HIST_EDGE_MASS` of the total at each. Float noise moves only the values
  that lie on a bin edge (a value of exactly 0 at an edge at 0: lesson 04's embedding DLA has 0.8% of its values
  there), each into the neighbouring bin, so the distributions differ at that edge alone; a real change (values
  shifted or rescaled, another shape) moves values across many edges and fails. A plotly `histogram` trace holds
  the raw values, compared as arrays.

Anything else (words, integers, a figure with another shape) must match exactly. Parts drawn from numbers compared
elsewhere are skipped: the static picture of an attention view (utils/attention_view.py; the view is compared through
its props, not its HTML wording), and a figure's static PNG and HTML copy (utils/static_images.py; the figure is
compared through its JSON). When a figure differs, both sides are rewritten with decoded, rounded arrays so that
nbval's diff is readable.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from typing import Any, Callable

import numpy as np

PLOTLY = "application/vnd.plotly.v1+json"
RTOL = 1e-4
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?(?![\w.])")
# histograms: mass may move across at most 2 bin edges, at most 2% of it at each; a difference in the cumulative
# distribution below HIST_NOISE of the total (rounded shares, half a value in 1,000) is no move
HIST_EDGES, HIST_EDGE_MASS, HIST_NOISE = 2, 0.02, 5e-4
_DERIVED = ("text/html", "image/png")  # a figure's HTML copy and static picture: compared through its JSON
# An attention view is compared through its element name and props (its numbers); its static picture is drawn
# from them, and its wording, scripts and embedded bundle are the renderer's, not the lesson's.
_RENDER_ARGS = re.compile(r'CV\[("\w+")\],\s*(\{.*?\})\);\n', re.S)


def _comparable(text: str, sanitize: Callable[[str], str]) -> str:
    text = sanitize(text)
    if "cbt-attention" not in text:
        return text
    found = _RENDER_ARGS.findall(text)
    return "\n".join(f"<attention view {element} {props}>" for element, props in found) if found else text


def _unit(token: str) -> float:
    """One unit of the last printed digit of a number token ("0.960" -> 0.001, "1.5e-05" -> 1e-06)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_close(ref: str, test: str) -> bool:
    a, b = float(ref), float(test)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    tolerance = max(_unit(ref), _unit(test), RTOL * abs(a))
    return abs(a - b) <= tolerance * (1 + 1e-9)


def texts_close(ref: str, test: str) -> bool:
    """Equal except for number tokens that agree at the precision above."""
    if ref == test:
        return True
    ref_words, test_words = NUMBER.split(ref), NUMBER.split(test)
    if ref_words != test_words:
        return False
    return all(numbers_close(a, b) for a, b in zip(NUMBER.findall(ref), NUMBER.findall(test)))


def decode_array(value: dict) -> np.ndarray:
    """A plotly typed array {"dtype": "f4", "bdata": base64, "shape": "3, 4"} as numpy."""
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    shape = value.get("shape")
    if shape:
        array = array.reshape([int(s) for s in str(shape).split(",")])
    return array


def _as_array(value: Any) -> np.ndarray | None:
    """A numeric array from a typed array or a (nested) list of numbers; None for anything else."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        return decode_array(value).astype(float)
    if isinstance(value, list) and value:
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return None
        flat = value
        while flat and isinstance(flat[0], list):
            flat = flat[0]
        if flat and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            return array
    return None


def arrays_close(ref: np.ndarray, test: np.ndarray) -> bool:
    if ref.shape != test.shape:
        return False
    if not np.array_equal(np.isnan(ref), np.isnan(test)):
        return False
    finite = np.isfinite(ref)
    if not np.array_equal(ref[~finite & ~np.isnan(ref)], test[~finite & ~np.isnan(test)]):
        return False
    scale = np.abs(ref[finite]).max() if finite.any() else 0.0
    return bool(np.all(np.abs(ref[finite] - test[finite]) <= RTOL * scale + 1e-12))


def _histogram_bars(trace: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(bin centres, heights) of a bar trace that draws a histogram; None for any other trace."""
    if trace.get("type") != "bar" or trace.get("orientation") == "h":
        return None
    x, y = _as_array(trace.get("x")), _as_array(trace.get("y"))
    if x is None or y is None or x.ndim != 1 or x.shape != y.shape or len(x) < 8:
        return None
    steps = np.diff(x)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-3)):
        return None
    return (x, y) if np.all(y >= 0) else None


def histograms_close(ref: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> bool:
    """Same bins, same total, and cumulative distributions apart at no more than HIST_EDGES edges, by at most
    HIST_EDGE_MASS of the total at each (values on bin edges that changed bins)."""
    (ref_x, ref_y), (test_x, test_y) = ref, test
    if ref_x.shape != test_x.shape or not arrays_close(ref_x, test_x):
        return False
    total = ref_y.sum()
    if total <= 0 or abs(test_y.sum() - total) > RTOL * total:
        return total == test_y.sum()
    apart = np.abs(np.cumsum(ref_y) - np.cumsum(test_y)) / total  # at each bin's upper edge
    return bool((apart > HIST_NOISE).sum() <= HIST_EDGES and apart.max() <= HIST_EDGE_MASS)


def figures_close(ref: Any, test: Any) -> bool:
    """Plotly figure JSON (or any part of it) equal at the stated precision."""
    if isinstance(ref, dict) and isinstance(test, dict) and ref.get("type") == test.get("type") == "bar":
        ref_bars, test_bars = _histogram_bars(ref), _histogram_bars(test)
        if ref_bars is not None and test_bars is not None and histograms_close(ref_bars, test_bars):
            rest = [k for k in ref if k not in ("x", "y")]
            return ref.keys() == test.keys() and all(figures_close(ref[k], test[k]) for k in rest)
    ref_array, test_array = _as_array(ref), _as_array(test)
    if ref_array is not None or test_array is not None:
        return ref_array is not None and test_array is not None and arrays_close(ref_array, test_array)
    if isinstance(ref, dict) and isinstance(test, dict):
        return ref.keys() == test.keys() and all(figures_close(ref[k], test[k]) for k in ref)
    if isinstance(ref, list) and isinstance(test, list):
        return len(ref) == len(test) and all(figures_close(a, b) for a, b in zip(ref, test))
    if isinstance(ref, str) and isinstance(test, str):
        return texts_close(ref, test)
    numeric = (int, float)
    if isinstance(ref, numeric) and isinstance(test, numeric) and not isinstance(ref, bool):
        return abs(ref - test) <= RTOL * max(abs(ref), abs(test)) + 1e-12
    return ref == test


def readable(value: Any) -> Any:
    """The figure with typed arrays decoded to lists rounded to 6 significant digits (for a readable diff)."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        return np.vectorize(lambda v: float(f"{v:.6g}"), otypes=[float])(decode_array(value)).tolist()
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


def _reconcile_output(test: dict, ref: dict, sanitize: Callable[[str], str]) -> None:
    if test.get("output_type") == "stream" and ref.get("output_type") == "stream":
        if test.get("name") == ref.get("name") and texts_close(sanitize(ref["text"]), sanitize(test["text"])):
            test["text"] = ref["text"]
        return
    test_data, ref_data = test.get("data"), ref.get("data")
    if not isinstance(test_data, dict) or not isinstance(ref_data, dict):
        return
    if PLOTLY in test_data and PLOTLY in ref_data:
        for key in _DERIVED:  # present on one side only after a change of renderer or without Chromium
            test_data.pop(key, None)
            ref_data.pop(key, None)
    for key in set(test_data) & set(ref_data):
        if key == PLOTLY:
            if figures_close(ref_data[key], test_data[key]):
                test_data[key] = ref_data[key]
            else:
                ref_data[key], test_data[key] = readable(ref_data[key]), readable(test_data[key])
        elif isinstance(ref_data[key], str) and isinstance(test_data[key], str):
            if texts_close(_comparable(ref_data[key], sanitize), _comparable(test_data[key], sanitize)):
                test_data[key] = ref_data[key]


def _loader_only(output: dict) -> bool:
    """plotly's `notebook_connected` renderer's first output of a session: a script that loads plotly.js, no figure."""
    data = output.get("data", {})
    return set(data) <= {"text/html", "text/plain"} and "window.PlotlyConfig" in str(data.get("text/html", "")) \
        and "Plotly.newPlot" not in str(data.get("text/html", ""))


def reconcile(test: list, ref: list, sanitize: Callable[[str], str] = lambda s: s) -> tuple[list, list]:
    """Copies of (test, ref) outputs where every value that agrees at the stated precision is made identical
    (renderer boilerplate, plotly's plotly.js loader, left out of both)."""
    test = [o for o in copy.deepcopy(test) if not _loader_only(o)]
    ref = [o for o in copy.deepcopy(ref) if not _loader_only(o)]
    if len(test) == len(ref):
        for test_output, ref_output in zip(test, ref):
            if test_output.get("output_type") == ref_output.get("output_type") or {
                test_output.get("output_type"), ref_output.get("output_type")
            } == {"display_data", "execute_result"}:
                _reconcile_output(test_output, ref_output, sanitize)
    return test, ref
