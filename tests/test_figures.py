"""Every figure stored in solutions/ has a title, titled axes, and no empty or flat trace where data should be.

A figure is read as a learner reads it: a chart without axis titles, or bars that are all the same height because
the helper dropped the data, must fail here even though nbval (which only compares with the stored output) passes.
A trace that is flat on purpose (a baseline) says so with `meta="flat on purpose"`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import plotly.express as px
import pytest

from utils.nbcompare import PLOTLY, decode_array

ROOT = Path(__file__).resolve().parent.parent
CARTESIAN = {"bar", "scatter", "heatmap", "histogram", "box", "violin", "scattergl"}


def stored_figures() -> list[tuple[str, dict]]:
    """(id "notebook:cell N (cell id):figure K", figure JSON) for every plotly figure in solutions/."""
    found = []
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            figures = [o["data"][PLOTLY] for o in cell.get("outputs", []) if PLOTLY in o.get("data", {})]
            for k, figure in enumerate(figures):
                found.append((f"{path.stem}:cell {index} ({cell.get('id')}):figure {k + 1}", figure))
    return found


def _array(value) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, dict) and "bdata" in value:
        return decode_array(value)
    return np.asarray(value, dtype=object)


def _title(obj) -> str:
    title = (obj or {}).get("title")
    return (title.get("text") if isinstance(title, dict) else title) or ""


def _axis_name(reference: str) -> str:
    """Trace axis reference ("x2") -> layout key ("xaxis2")."""
    return reference[0] + "axis" + reference[1:]


def _axis_titled(layout: dict, name: str) -> bool:
    """Titled itself, through the axis it `matches`, or through a titled axis in the same row / column."""
    axis = layout.get(name, {})
    if _title(axis).strip():
        return True
    matches = axis.get("matches")
    if matches and _title(layout.get(_axis_name(matches), {})).strip():
        return True
    domain = axis.get("domain", [0, 1])
    return any(
        key[0] == name[0] and _title(other).strip() and other.get("domain", [0, 1]) == domain
        for key, other in layout.items()
        if key.startswith(name[0] + "axis") and isinstance(other, dict)
    )


def _main_values(trace: dict) -> tuple[str, np.ndarray | None]:
    kind = trace.get("type", "scatter")
    if kind == "heatmap":
        return "z", _array(trace.get("z"))
    if kind == "histogram":
        return "x", _array(trace.get("x") if trace.get("x") is not None else trace.get("y"))
    if kind == "bar" and trace.get("orientation") == "h":
        return "x", _array(trace.get("x"))
    return "y", _array(trace.get("y"))


def figure_problems(figure: dict) -> list[str]:
    """What a reader would miss in this figure (empty list: nothing)."""
    layout, problems = figure.get("layout", {}), []
    if not _title(layout).strip():
        problems.append("no title")
    untitled = set()
    for trace in figure.get("data", []):
        kind = trace.get("type", "scatter")
        if kind in CARTESIAN:
            for ref in (trace.get("xaxis", "x"), trace.get("yaxis", "y")):
                if not _axis_titled(layout, _axis_name(ref)):
                    untitled.add(_axis_name(ref))
        key, values = _main_values(trace)
        name = trace.get("name") or kind
        if values is None or values.size == 0:
            problems.append(f"trace {name!r} has no {key} values")
            continue
        numeric = values.astype(float) if values.dtype != object else None
        if numeric is None:
            try:
                numeric = values.astype(float)
            except (TypeError, ValueError):
                continue
        finite = numeric[np.isfinite(numeric)]
        if trace.get("meta") != "flat on purpose" and finite.size > 1 and np.ptp(finite) == 0:
            problems.append(f"trace {name!r} is flat: every {key} is {finite[0]:g}")
    problems += [f"axis {name} has no title" for name in sorted(untitled)]
    return problems


FIGURES = stored_figures()


def test_solutions_store_figures():
    assert len(FIGURES) >= 20, f"expected the lessons' figures in solutions/, found {len(FIGURES)}"


@pytest.mark.parametrize("figure", [f for _, f in FIGURES], ids=[name for name, _ in FIGURES])
def test_stored_figure_is_readable(figure):
    problems = figure_problems(figure)
    assert not problems, "; ".join(problems)


def test_check_fails_on_the_old_broken_bar_chart_and_passes_a_good_one():
    series = {"easy": [0.5, 0.3, 0.2], "medium": [0.1, 0.6, 0.3]}
    # what utils.plotting.bar used to draw for a dict of series and x=: one series, every bar of height 1
    broken = px.bar(series, x=["a", "b", "c"], barmode="group", title="First-letter frequencies",
                    labels={"x": "first letter", "value": "frequency"})
    assert any("flat" in p for p in figure_problems(broken.to_plotly_json()))
    from utils.plotting import bar

    good = bar(series, x=["a", "b", "c"], title="First-letter frequencies",
               labels={"x": "first letter", "value": "frequency"}, show=False)
    assert figure_problems(good.to_plotly_json()) == []
    untitled = px.imshow(np.eye(3), title="t")
    assert {"axis xaxis has no title", "axis yaxis has no title"} <= set(figure_problems(untitled.to_plotly_json()))
    assert figure_problems(px.line(y=[1.0, 2.0], labels={"x": "p", "y": "v"}).to_plotly_json()) == ["no title"]
