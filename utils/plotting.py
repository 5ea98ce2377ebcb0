"""Thin plotly wrappers shared by every lesson: tensors in, a shown figure out (or returned with show=False)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
import torch


def _set_renderer() -> None:
    """Colab needs its own renderer; elsewhere embed the figure JSON and load plotly.js from its CDN, which
    keeps stored notebooks small (the default would embed 3 MB of JavaScript in each)."""
    if "google.colab" in sys.modules:
        pio.renderers.default = "colab"
    else:
        pio.renderers.default = "plotly_mimetype+notebook_connected"


_set_renderer()


def to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return np.stack([to_numpy(v) for v in x])
    return x


def _finish(fig: go.Figure, show: bool, width: int | None, height: int | None, **layout) -> go.Figure | None:
    fig.update_layout(width=width, height=height, **layout)
    if show:
        fig.show()
        return None
    return fig


def imshow(
    tensor, show: bool = True, width: int | None = None, height: int | None = None, text=None, **kwargs
) -> go.Figure | None:
    """Heatmap of a 2D (or, with facet_col, 3D) tensor; zero is white by default."""
    kwargs.setdefault("color_continuous_scale", "RdBu")
    kwargs.setdefault("color_continuous_midpoint", 0.0)
    facet_labels = kwargs.pop("facet_labels", None)
    fig = px.imshow(to_numpy(tensor), **kwargs)
    if facet_labels:
        # Plotly names facet i "facet_col=i", but lists the annotations in grid order, not facet order
        for annotation in fig.layout.annotations:
            index = int(annotation.text.split("=")[-1])
            annotation.text = facet_labels[index]
    if text is not None:
        fig.update_traces(text=text, texttemplate="%{text}", textfont_size=12)
    return _finish(fig, show, width, height)


def line(y, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Line plot of a 1D tensor, or several lines from a 2D tensor (one per row, names from `names`)."""
    y = to_numpy(y)
    names = kwargs.pop("names", None)
    if getattr(y, "ndim", 1) == 2:
        fig = go.Figure()
        x = kwargs.pop("x", None)
        for i, row in enumerate(y):
            fig.add_trace(go.Scatter(x=x, y=row, mode="lines+markers", name=names[i] if names else str(i)))
        labels = kwargs.pop("labels", {})
        fig.update_layout(title=kwargs.pop("title", None), xaxis_title=labels.get("x"), yaxis_title=labels.get("y"))
        return _finish(fig, show, width, height, **kwargs)
    fig = px.line(y=y, **kwargs)
    return _finish(fig, show, width, height)


def scatter(x, y, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Scatter plot; pass text=[...] to label the points."""
    textposition = kwargs.pop("textposition", None)
    fig = px.scatter(x=to_numpy(x), y=to_numpy(y), **kwargs)
    if textposition:
        fig.update_traces(textposition=textposition)
    return _finish(fig, show, width, height)


def hist(x, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Histogram of a tensor's values."""
    fig = px.histogram(x=to_numpy(x).ravel() if hasattr(to_numpy(x), "ravel") else x, **kwargs)
    return _finish(fig, show, width, height)


def bar(y, show: bool = True, width: int | None = None, height: int | None = None, **kwargs) -> go.Figure | None:
    """Bar chart of a 1D tensor (or grouped bars from a dict of name -> values with `x`)."""
    fig = px.bar(y=to_numpy(y), **kwargs) if not isinstance(y, dict) else px.bar(
        {k: to_numpy(v) for k, v in y.items()}, barmode="group", **kwargs
    )
    return _finish(fig, show, width, height)


def show_attention(view) -> Any:
    """Display a circuitsvis view (e.g. `cv.attention.attention_heads(...)`): the one call lessons use, so that
    how attention views render (online, offline, in stored notebooks) is decided in one place."""
    from IPython.display import HTML

    return HTML(str(view))
