"""Every figure stored in solutions/ has a title, titled axes, and no empty or flat trace where data should be; it
fits 950 px, and a heatmap whose rows are labelled shows every label.

A figure is read as a learner reads it: a chart without axis titles, or bars that are all the same height because
the helper dropped the data, must fail here even though nbval (which only compares with the stored output) passes.
A trace that is flat on purpose (a baseline) says so with `meta="flat on purpose"`.

Layout (`layout_problems`), from the stored layout as plotly.js lays it out (its default margins 80/80/100/80 px,
height 450 px, about 100 px for a colour bar): a figure wider than MAX_WIDTH is cut off in JupyterLab's output area
and on the pages (a facet panel, the colour bar); a panel narrower than MIN_PANEL_PX is unreadable; a heatmap with
text labels on its rows needs MIN_ROW_PX per row (plotly.js skips tick labels closer than their font size, and
equal aspect squeezes wide matrices into a strip), and its labels must be shown (not hidden, not thinned by dtick).
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


MAX_WIDTH, MIN_ROW_PX, MIN_PANEL_PX = 950, 12, 80
MARGIN = {"l": 80, "r": 80, "t": 100, "b": 80}  # plotly.js's defaults
COLOUR_BAR_PX = 100


def _domain(axis: dict) -> tuple[float, float]:
    low, high = axis.get("domain", [0, 1])
    return float(low), float(high)


def _labels(trace: dict, axis: dict) -> list | None:
    """The text labels of a heatmap's rows (its y, or its axis's ticktext); None when the rows are numbered."""
    for values in (axis.get("ticktext"), trace.get("y")):
        if isinstance(values, list) and any(isinstance(v, str) for v in values):
            return values
    return None


def _labels_shown(layout: dict, name: str) -> bool:
    """The y axis `name`'s tick labels are drawn, by itself or by another axis of the same row."""
    axis = layout.get(name, {})
    if axis.get("showticklabels", True) and not (isinstance(axis.get("dtick"), (int, float)) and axis["dtick"] > 1):
        return True
    return any(
        key != name and key.startswith("yaxis") and isinstance(other, dict) and _domain(other) == _domain(axis)
        and other.get("showticklabels", True)
        for key, other in layout.items()
    )


def layout_problems(figure: dict) -> list[str]:
    """Where this figure would be cut off or its labelled rows unreadable at MAX_WIDTH (empty list: nowhere)."""
    layout, problems = figure.get("layout", {}), []
    width = layout.get("width")
    if width and width > MAX_WIDTH:
        problems.append(f"{width} px wide: beyond {MAX_WIDTH} px its right-hand panels and colour bar are cut off")
    margin = {**MARGIN, **{k: v for k, v in (layout.get("margin") or {}).items() if k in MARGIN}}
    heatmaps = [t for t in figure.get("data", []) if t.get("type") == "heatmap"]
    colour_bar = COLOUR_BAR_PX if heatmaps and any(t.get("showscale", True) for t in heatmaps) else 0
    plot_w = min(width or MAX_WIDTH, MAX_WIDTH) - margin["l"] - margin["r"] - colour_bar
    plot_h = (layout.get("height") or 450) - margin["t"] - margin["b"]
    for key, axis in layout.items():
        if key.startswith("xaxis") and isinstance(axis, dict):
            low, high = _domain(axis)
            if low < 0 or high > 1:
                problems.append(f"{key} lies outside the figure (domain {low}..{high}): a panel is cut off")
            elif (high - low) * plot_w < MIN_PANEL_PX:
                problems.append(f"{key} is {(high - low) * plot_w:.0f} px wide: a panel too narrow to read")
    for trace in heatmaps:
        xname, yname = _axis_name(trace.get("xaxis", "x")), _axis_name(trace.get("yaxis", "y"))
        xaxis, yaxis = layout.get(xname, {}), layout.get(yname, {})
        labels, z = _labels(trace, yaxis), _array(trace.get("z"))
        if labels is None or z is None or z.ndim != 2:
            continue
        rows, columns = z.shape
        panel_w = (_domain(xaxis)[1] - _domain(xaxis)[0]) * plot_w
        row_px = (_domain(yaxis)[1] - _domain(yaxis)[0]) * plot_h / rows
        scale_anchor = xaxis.get("scaleanchor") or layout.get(_axis_name(xaxis.get("matches", "x")), {}).get("scaleanchor")
        if scale_anchor:
            row_px = min(row_px, panel_w / columns)  # equal aspect: a square per cell
        name = trace.get("name") or "heatmap"
        if row_px < MIN_ROW_PX:
            problems.append(f"heatmap {name!r}: {rows} labelled rows get {row_px:.0f} px each (< {MIN_ROW_PX}): "
                            "their labels are skipped or unreadable; give it the height (and free aspect) they need")
        if not _labels_shown(layout, yname):
            problems.append(f"heatmap {name!r}: its row labels are hidden ({yname})")
        if len(labels) != rows:
            problems.append(f"heatmap {name!r}: {len(labels)} row labels for {rows} rows")
    return problems


FIGURES = stored_figures()


def test_solutions_store_figures():
    assert len(FIGURES) >= 20, f"expected the lessons' figures in solutions/, found {len(FIGURES)}"


@pytest.mark.parametrize("figure", [f for _, f in FIGURES], ids=[name for name, _ in FIGURES])
def test_stored_figure_is_readable(figure):
    problems = figure_problems(figure)
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("figure", [f for _, f in FIGURES], ids=[name for name, _ in FIGURES])
def test_stored_figure_fits_and_shows_its_row_labels(figure):
    problems = layout_problems(figure)
    assert not problems, "; ".join(problems)


def test_layout_check_fails_on_a_strip_heatmap_and_a_cut_off_panel_and_the_helpers_pass_it():
    from utils.plotting import imshow

    words, rows = [f"w{i}" for i in range(100)], [f"head {h} reads {s}" for h in ("1.0", "1.1") for s in "ABC"]
    labels = {"x": "word", "y": "head and letter", "color": "logit"}
    z = np.random.default_rng(0).normal(size=(6, 100))
    # lesson 05's old OV heatmap: 6 labelled rows x 100 words at equal aspect, 1100 px wide
    strip = px.imshow(z, x=words, y=rows, labels=labels, title="t", width=1100, height=380).to_plotly_json()
    problems = layout_problems(strip)
    assert any("1100 px wide" in p for p in problems) and any("6 labelled rows" in p for p in problems), problems
    narrow = px.imshow(z, x=words, y=rows, labels=labels, title="t", width=900, height=380).to_plotly_json()
    assert any("6 labelled rows" in p for p in layout_problems(narrow))
    hidden = px.imshow(z, x=words, y=rows, aspect="auto", labels=labels, title="t", height=400)
    hidden.update_yaxes(showticklabels=False)
    assert any("hidden" in p for p in layout_problems(hidden.to_plotly_json()))
    facets = px.imshow(np.zeros((4, 4, 4)), facet_col=0, title="t", width=1100).to_plotly_json()  # lesson 04's old 4 heads
    assert any("cut off" in p for p in layout_problems(facets))
    # the helpers' defaults: the same calls fit and show every row label
    for figure in (
        imshow(z, x=words, y=rows, labels=labels, title="t", width=1100, height=380, show=False),
        imshow(np.zeros((4, 4, 4)), facet_col=0, x=list("abcd"), y=list("abcd"), labels=labels, title="t",
               width=1100, height=380, show=False),
        imshow(np.zeros((2, 26, 100)), facet_col=0, x=words, y=[chr(97 + i) for i in range(26)], labels=labels,
               title="t", show=False),
    ):
        assert layout_problems(figure.to_plotly_json()) == [], layout_problems(figure.to_plotly_json())


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
