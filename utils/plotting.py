"""Thin plotly wrappers shared by every lesson: tensors in, a shown figure out (or returned with show=False).

Every figure a lesson shows needs a title and titled axes (`title=`, `labels={"x": ..., "y": ..., "color": ...}`):
`tests/test_figures.py` checks the stored solutions for both, and that each fits `MAX_WIDTH` (the width of a
notebook's output area in JupyterLab, and of the read-only pages) with every labelled heatmap row at least
`MIN_ROW_PX` tall. The helpers make that the default: a wider figure is narrowed to `MAX_WIDTH`, and a heatmap with
row labels gets the height (and, where equal aspect would squeeze its rows, the free aspect) its rows need.
Attention views go through `show_attention`.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
import torch

from .attention_view import show_attention  # noqa: F401  (re-exported: the one call lessons use)


MAX_WIDTH = 950  # px: JupyterLab's output area at common window sizes, and the read-only pages
MIN_ROW_PX = 14  # px per labelled heatmap row: a 12 px tick label each, none skipped
_FRAME_PX = (260, 200)  # px a heatmap's margins, colour bar and tick labels take (width, height)


def _set_renderer() -> None:
    """Colab needs its own renderer. Elsewhere a figure is stored as its JSON only (`plotly_mimetype`): Jupyter
    (JupyterLab, Notebook 7, VS Code) draws it with the plotly.js that the `plotly` package installs, offline, and
    nothing requests plotly.js from a CDN (the `notebook_connected` HTML copy did, and stored the figure twice).
    Static viewers show the PNG that `python -m utils.notebooks execute` stores beside it (utils/static_images.py)."""
    if "google.colab" in sys.modules:
        pio.renderers.default = "colab"
    else:
        pio.renderers.default = "plotly_mimetype"


_set_renderer()


def to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return np.stack([to_numpy(v) for v in x])
    return x


def _vector(values: Any, what: str) -> np.ndarray:
    """A 1D float array from a tensor / array / list, with a clear message for anything else."""
    array = np.asarray(to_numpy(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be 1D, got shape {tuple(array.shape)}; index or flatten it first")
    return array


def _finish(fig: go.Figure, show: bool, width: int | None, height: int | None, **layout) -> go.Figure | None:
    fig.update_layout(width=None if width is None else min(width, MAX_WIDTH), height=height, **layout)
    if show:
        if not fig.layout.title.text:
            raise ValueError("A figure a lesson shows needs a title: pass title='...' (or show=False and set it).")
        fig.show()
        return None
    return fig


def _axis_titles(fig: go.Figure, labels: Mapping[str, str] | None) -> None:
    """Set the axis titles from labels["x"] / labels["y"] on every subplot (facets included)."""
    labels = labels or {}
    if labels.get("x") is not None:
        fig.update_xaxes(title_text=labels["x"])
    if labels.get("y", labels.get("value")) is not None:
        fig.update_yaxes(title_text=labels.get("y", labels.get("value")))


def imshow(
    tensor, show: bool = True, width: int | None = None, height: int | None = None, text=None, **kwargs
) -> go.Figure | None:
    """Heatmap of a 2D (or, with facet_col, 3D) tensor; zero is white by default.
    labels={"x": ..., "y": ..., "color": ...} titles the axes and the colour bar."""
    kwargs.setdefault("color_continuous_scale", "RdBu")
    kwargs.setdefault("color_continuous_midpoint", 0.0)
    facet_labels = kwargs.pop("facet_labels", None)
    array = to_numpy(tensor)
    rows = _labelled_rows(kwargs.get("y"))
    if rows:
        panels = array.shape[kwargs["facet_col"]] if kwargs.get("facet_col") is not None else 1
        panels = min(panels, kwargs.get("facet_col_wrap") or panels)
        columns = array.shape[-2] if kwargs.get("facet_col") in (-1, array.ndim - 1) else array.shape[-1]
        equal_row_px = (min(width or MAX_WIDTH, MAX_WIDTH) - _FRAME_PX[0]) / panels / max(columns, 1)
        if "aspect" not in kwargs and equal_row_px < MIN_ROW_PX:
            kwargs["aspect"] = "auto"  # equal aspect would squeeze the labelled rows below MIN_ROW_PX
        facet_rows = -(-array.shape[kwargs["facet_col"]] // panels) if kwargs.get("facet_col") is not None else 1
        needed = rows * MIN_ROW_PX * facet_rows + _FRAME_PX[1]
        if needed > (height or 450):  # 450: plotly's default height
            height = needed
    fig = px.imshow(array, **kwargs)
    if facet_labels:
        # Plotly names facet i "facet_col=i", but lists the annotations in grid order, not facet order
        for annotation in fig.layout.annotations:
            index = int(annotation.text.split("=")[-1])
            annotation.text = facet_labels[index]
    if text is not None:
        fig.update_traces(text=text, texttemplate="%{text}", textfont_size=12)
    return _finish(fig, show, width, height)


def _labelled_rows(y: Any) -> int:
    """How many rows a heatmap's y labels name (0 when the rows are unlabelled or numbered)."""
    if y is None:
        return 0
    labels = list(to_numpy(y))
    return len(labels) if any(isinstance(v, str) for v in labels) else 0


def line(y, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Line plot of a 1D tensor, or several lines from a 2D tensor (one per row, names from `names`)."""
    y = to_numpy(y)
    names = kwargs.pop("names", None)
    if getattr(y, "ndim", 1) == 2:
        if names is not None and len(names) != len(y):
            raise ValueError(f"line: {len(names)} names for {len(y)} rows; give one name per row")
        fig = go.Figure()
        x = kwargs.pop("x", None)
        for i, row in enumerate(y):
            fig.add_trace(go.Scatter(x=x, y=row, mode="lines+markers", name=names[i] if names else str(i)))
        labels = kwargs.pop("labels", {})
        fig.update_layout(title=kwargs.pop("title", None), xaxis_title=labels.get("x"), yaxis_title=labels.get("y"))
        return _finish(fig, show, width, height, **kwargs)
    fig = px.line(y=y, **kwargs)
    if names:
        fig.update_traces(name=names[0] if isinstance(names, (list, tuple)) else names, showlegend=True)
    return _finish(fig, show, width, height)


def scatter(x, y, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Scatter plot; pass text=[...] to label the points."""
    textposition = kwargs.pop("textposition", None)
    fig = px.scatter(x=to_numpy(x), y=to_numpy(y), **kwargs)
    if textposition:
        fig.update_traces(textposition=textposition)
    return _finish(fig, show, width, height)


def hist(x, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Histogram of a tensor's values (flattened)."""
    values = to_numpy(x)
    fig = px.histogram(x=values.ravel() if hasattr(values, "ravel") else values, **kwargs)
    return _finish(fig, show, width, height)


def bar(
    y,
    x=None,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
    show: bool = True,
    width: int | None = None,
    height: int | None = None,
    barmode: str = "group",
    **trace_kwargs,
) -> go.Figure | None:
    """Bar chart of a 1D tensor, or grouped bars from a dict {series name: 1D values}, one trace per series.

    x: the category of each bar (default 0, 1, ...). labels: {"x": x-axis title, "y" (or "value"): y-axis title,
    "variable": legend title}. Other keyword arguments go to every go.Bar (e.g. marker_color=...)."""
    labels = dict(labels or {})
    series = y if isinstance(y, Mapping) else {labels.get("variable") or "": y}
    if not series:
        raise ValueError("bar: the dict of series is empty; give at least one {name: values}")
    fig = go.Figure()
    for name, values in series.items():
        values = _vector(values, f"bar: series {name!r}")
        categories = list(range(len(values))) if x is None else list(to_numpy(x))
        if len(categories) != len(values):
            raise ValueError(
                f"bar: series {name!r} has {len(values)} values but x has {len(categories)} categories; "
                "give one value per category"
            )
        fig.add_trace(go.Bar(x=categories, y=values, name=str(name), **trace_kwargs))
    fig.update_layout(
        title=title,
        barmode=barmode,
        showlegend=isinstance(y, Mapping),
        legend_title_text=labels.get("variable") or None,
    )
    _axis_titles(fig, labels)
    return _finish(fig, show, width, height)
