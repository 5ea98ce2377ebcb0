"""Each plotting helper draws the data it is given, with its titles; attention views and the nbval comparison."""

import base64
import json
import re

import numpy as np
import plotly
import plotly.graph_objects as go
import pytest
import torch

from utils import plotting
from utils.attention_view import AttentionView, _state, parse_view, show_attention, static_svg
from utils.nbcompare import figures_close, reconcile, texts_close


def values(trace_array) -> np.ndarray:
    return np.asarray(trace_array, dtype=float)


def test_bar_dict_of_series_draws_one_trace_per_series():
    easy, medium = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.6, 0.3])
    fig = plotting.bar(
        {"easy": easy, "medium": medium},
        x=["a", "b", "c"],
        labels={"x": "first letter", "value": "frequency", "variable": "mode"},
        title="First-letter frequencies",
        show=False,
    )
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert [t.name for t in fig.data] == ["easy", "medium"]
    assert list(fig.data[0].x) == ["a", "b", "c"] and list(fig.data[1].x) == ["a", "b", "c"]
    np.testing.assert_allclose(values(fig.data[0].y), easy.numpy(), rtol=1e-6)
    np.testing.assert_allclose(values(fig.data[1].y), medium.numpy(), rtol=1e-6)
    assert fig.layout.barmode == "group" and fig.layout.showlegend
    assert fig.layout.title.text == "First-letter frequencies"
    assert fig.layout.xaxis.title.text == "first letter" and fig.layout.yaxis.title.text == "frequency"
    assert fig.layout.legend.title.text == "mode"


def test_bar_single_series_and_default_categories():
    fig = plotting.bar(torch.tensor([3.0, 1.0]), title="t", labels={"x": "k", "y": "v"}, show=False)
    assert len(fig.data) == 1 and list(fig.data[0].x) == [0, 1]
    np.testing.assert_allclose(values(fig.data[0].y), [3.0, 1.0])
    assert fig.layout.yaxis.title.text == "v" and not fig.layout.showlegend


def test_bar_rejects_mismatched_lengths_and_2d_input():
    with pytest.raises(ValueError, match="one value per category"):
        plotting.bar({"a": [1.0, 2.0]}, x=["x", "y", "z"], title="t", show=False)
    with pytest.raises(ValueError, match="must be 1D"):
        plotting.bar({"a": torch.zeros(2, 2)}, title="t", show=False)
    with pytest.raises(ValueError, match="empty"):
        plotting.bar({}, title="t", show=False)


def test_shown_figure_needs_a_title():
    with pytest.raises(ValueError, match="needs a title"):
        plotting.bar([1.0, 2.0])


def test_imshow_facets_labels_and_values():
    data = torch.arange(12, dtype=torch.float64).reshape(2, 2, 3)
    fig = plotting.imshow(
        data, facet_col=0, facet_labels=["easy", "medium"], x=["a", "b", "c"], y=["r0", "r1"],
        labels={"x": "letter", "y": "position", "color": "frequency"}, title="freqs", show=False,
    )
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    np.testing.assert_allclose(values(fig.data[0].z), data[0].numpy())
    np.testing.assert_allclose(values(fig.data[1].z), data[1].numpy())
    assert sorted(a.text for a in fig.layout.annotations) == ["easy", "medium"]
    assert fig.layout.xaxis.title.text == "letter" and fig.layout.yaxis.title.text == "position"
    assert fig.layout.coloraxis.colorbar.title.text == "frequency"
    assert fig.layout.title.text == "freqs"


def test_line_one_trace_per_row_with_names_and_axes():
    y = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    fig = plotting.line(y, x=[5, 6, 7], names=["up", "down"], labels={"x": "pos", "y": "loss"}, title="t", show=False)
    assert [t.name for t in fig.data] == ["up", "down"]
    np.testing.assert_allclose(values(fig.data[1].y), [3.0, 2.0, 1.0])
    assert list(fig.data[0].x) == [5, 6, 7]
    assert fig.layout.xaxis.title.text == "pos" and fig.layout.yaxis.title.text == "loss"
    with pytest.raises(ValueError, match="one name per row"):
        plotting.line(y, names=["only one"], title="t", show=False)


def test_line_1d_scatter_hist():
    fig = plotting.line(torch.tensor([1.0, 4.0]), labels={"x": "pos", "y": "v"}, title="t", show=False)
    assert len(fig.data) == 1 and fig.layout.xaxis.title.text == "pos" and fig.layout.yaxis.title.text == "v"
    np.testing.assert_allclose(values(fig.data[0].y), [1.0, 4.0])
    fig = plotting.scatter(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0]), labels={"x": "a", "y": "b"}, title="t",
                           text=["p", "q"], textposition="top center", show=False)
    np.testing.assert_allclose(values(fig.data[0].x), [1.0, 2.0])
    np.testing.assert_allclose(values(fig.data[0].y), [3.0, 5.0])
    assert fig.data[0].textposition == "top center" and fig.layout.yaxis.title.text == "b"
    fig = plotting.hist(torch.tensor([[1.0, 2.0], [2.0, 3.0]]), labels={"x": "value"}, title="t", show=False)
    np.testing.assert_allclose(np.sort(values(fig.data[0].x)), [1.0, 2.0, 2.0, 3.0])
    assert fig.layout.xaxis.title.text == "value"


# ---- attention views

def _view(seed=0, n=6, heads=2):
    import circuitsvis as cv

    torch.manual_seed(seed)
    pattern = torch.softmax(torch.randn(heads, n, n), -1)
    return cv.attention.attention_heads(attention=pattern, tokens=[f"t{i}" for i in range(n)],
                                        attention_head_names=["0.0", "0.1"][:heads]), pattern


def test_show_attention_static_picture_interactive_view_and_bundle_once(monkeypatch):
    monkeypatch.delenv("CBT_ATTENTION_BUNDLE", raising=False)
    monkeypatch.setitem(_state, "bundle_sent", False)
    view, pattern = _view()
    shown = show_attention(view)
    assert isinstance(shown, AttentionView)
    element_id, element, props = parse_view(view)
    first, second = shown._repr_html_(), show_attention(view)._repr_html_()
    assert element == "AttentionHeads" and element_id in first
    assert first.count("cbt-circuitsvis-bundle") >= 1 and "cbt-circuitsvis-bundle\">" not in second
    assert len(first) > 300_000 and len(second) < 20_000  # the bundle travels once per kernel
    assert 'src="data:image/svg+xml;base64,' in second and "unpkg.com/circuitsvis" in second
    svg = base64.b64decode(second.split('data:image/svg+xml;base64,')[1].split('"')[0]).decode()
    assert svg.count("<image") == 2 and "t5" in svg and "0.1" in svg
    stored = json.loads(second.split("CV[\"AttentionHeads\"], ")[1].split(");\n")[0])
    np.testing.assert_allclose(stored["attention"], pattern.numpy(), atol=5e-5)  # rounded to 4 decimals


def test_show_attention_policies_and_bad_input(monkeypatch):
    view, _ = _view()
    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "never")
    monkeypatch.setitem(_state, "bundle_sent", False)
    assert "cbt-circuitsvis-bundle\">" not in show_attention(view)._repr_html_()
    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "always")
    assert "cbt-circuitsvis-bundle\">" in show_attention(view)._repr_html_()
    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "sometimes")
    with pytest.raises(ValueError, match="once, always or never"):
        show_attention(view)._repr_html_()
    with pytest.raises(ValueError, match="expects a circuitsvis view"):
        show_attention("<div>not a view</div>")


def test_static_svg_one_panel_per_head_for_2d_and_3d():
    assert static_svg({"attention": np.eye(3).tolist(), "tokens": ["a", "b", "<c>"]}).count("<image") == 1
    svg = static_svg({"attention": np.ones((4, 3, 3)).tolist(), "tokens": ["a", "b", "c"]})
    assert svg.count("<image") == 4 and "head 3" in svg


# ---- nbval comparison at a stated precision

def test_texts_close_rounds_at_the_printed_precision():
    assert texts_close("ce 0.9634 nats", "ce 0.9635 nats")  # one unit of the last digit: a rounding flip
    assert not texts_close("ce 0.96 nats", "ce 0.98 nats")
    assert not texts_close("p = 0.00009", "p = 0.00001")  # truncation to 4 decimals would call these equal
    assert texts_close("0.123456789", "0.1234568")
    assert not texts_close("12 words", "13 words")  # integers are exact
    assert not texts_close("ce 0.96 nats", "ce 0.96 bits")


def _figure(z):
    return json.loads(go.Figure(go.Heatmap(z=z), layout={"title": {"text": "t"}}).to_json())


def test_figures_close_tolerates_float_noise_but_not_a_real_change():
    z = np.random.default_rng(0).normal(size=(5, 7))
    reference = _figure(z)
    # plotly 6+ stores arrays as base64 `bdata` (the case the tolerance exists for); plotly 5 (Colab's) as lists
    assert ("bdata" in json.dumps(reference)) == (int(plotly.__version__.split(".")[0]) >= 6)
    assert figures_close(reference, _figure(z * (1 + 1e-7)))
    assert not figures_close(reference, _figure(z * (1 + 1e-2)))
    assert not figures_close(reference, _figure(z[:4]))
    assert figures_close(reference, _figure(z.astype(np.float32)))  # another dtype, same values at 4 digits


def test_reconcile_makes_close_outputs_equal_and_leaves_real_changes():
    z = np.random.default_rng(1).normal(size=(3, 3))
    def output(z, text):
        return [{"output_type": "display_data", "metadata": {},
                 "data": {"application/vnd.plotly.v1+json": _figure(z), "text/html": f"<div id='{text}'>"}},
                {"output_type": "stream", "name": "stdout", "text": text}]
    test, ref = reconcile(output(z * (1 + 1e-7), "ce 0.0921"), output(z, "ce 0.0920"))
    assert test == ref
    test, ref = reconcile(output(z * 1.01, "ce 0.0921"), output(z, "ce 0.0990"))
    assert test != ref
    assert isinstance(ref[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["z"], list)  # readable diff
    assert test[1]["text"] != ref[1]["text"]


def test_reconcile_compares_attention_views_by_their_numbers(monkeypatch):
    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "never")
    view, pattern = _view()
    import circuitsvis as cv

    def output(p):
        html = show_attention(cv.attention.attention_heads(attention=p, tokens=[f"t{i}" for i in range(6)]))._repr_html_()
        return [{"output_type": "display_data", "metadata": {}, "data": {"text/html": html}}]

    import re

    def sanitize(text):  # as tests/nbval_sanitize.cfg does
        return re.sub(r"circuits-vis-[0-9a-f]{8}-[0-9a-f]{4}", "circuits-vis-ID", text)

    nudged = pattern.clone()
    nudged[0, 0, 0] += 0.00004  # may flip the 4th decimal, and a pixel of the picture: still the same view
    test, ref = reconcile(output(nudged), output(pattern), sanitize)
    assert test == ref
    test, ref = reconcile(output(pattern * 0.5), output(pattern), sanitize)
    assert test != ref


def _histogram_figure(values, lo=-10.0, hi=30.0, n_bins=80):
    """As lesson 04 draws its DLA histograms: np.histogram shares as go.Bar over the bin centres."""
    edges = np.linspace(lo, hi, n_bins + 1)
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
    centres = ((edges[1:] + edges[:-1]) / 2).round(2)
    return json.loads(go.Figure(go.Bar(x=centres, y=(counts / counts.sum()).round(4)), layout={"title": {"text": "t"}}).to_json())


def test_histograms_compared_by_moved_mass_not_bin_counts():
    values = np.random.default_rng(0).normal(5, 4, size=1000)
    reference = _histogram_figure(values)
    edge_flip = values.copy()
    edge_flip[:2] = [0.5 - 1e-9, 3.0 + 1e-9]  # two values just either side of a bin edge...
    flipped = edge_flip.copy()
    flipped[:2] = [0.5 + 1e-9, 3.0 - 1e-9]  # ...cross it: two bins change by 0.001 each, far beyond 1e-4 of the peak
    assert not arrays_close_bins(_histogram_figure(edge_flip), _histogram_figure(flipped))
    assert figures_close(_histogram_figure(edge_flip), _histogram_figure(flipped))
    assert figures_close(reference, _histogram_figure(values * (1 + 1e-7)))
    assert not figures_close(reference, _histogram_figure(values * 1.01))  # a 1% change of every value
    assert not figures_close(reference, _histogram_figure(values + 0.1))  # a shift by a fifth of a bin
    moved = values.copy()
    moved[:20] += 0.5  # 2% of the values one bin up: a real change of shape
    assert not figures_close(reference, _histogram_figure(moved))
    zeros = values.copy()
    zeros[:8] = 1e-9  # lesson 04: values at float-noise level around an edge at 0, which noise flips to -1e-9
    flipped_zeros = zeros.copy()
    flipped_zeros[:8] = -1e-9
    assert figures_close(_histogram_figure(zeros), _histogram_figure(flipped_zeros))
    three_edges = values.copy()
    three_edges[:3] = [0.5 - 1e-9, 3.0 - 1e-9, 5.5 - 1e-9]
    assert not figures_close(_histogram_figure(three_edges), _histogram_figure(three_edges + 2e-9))
    fewer = _histogram_figure(values[:900])
    assert not figures_close(reference, fewer)
    # a bar chart that is not a histogram (few or unevenly spaced categories) is still compared bar by bar
    bars = lambda y: json.loads(go.Figure(go.Bar(x=["a", "b", "c"], y=y)).to_json())  # noqa: E731
    assert not figures_close(bars([0.5, 0.3, 0.2]), bars([0.499, 0.301, 0.2]))


def arrays_close_bins(ref, test) -> bool:
    from utils.nbcompare import _as_array, arrays_close

    return arrays_close(_as_array(ref["data"][0]["y"]), _as_array(test["data"][0]["y"]))


def test_attention_views_compared_by_props_not_wording_or_picture(monkeypatch):
    """A re-run whose note or picture differs (another wording, a PNG instead of an SVG) but whose patterns agree
    compares equal; the note tells what to do in an untrusted notebook."""
    from utils.attention_view import NOTE

    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "never")
    view, pattern = _view()
    html = show_attention(view)._repr_html_()
    assert "trust this notebook" in NOTE and "re-run this cell" in NOTE and NOTE in html
    assert "needs JavaScript" not in html
    reworded = html.replace(NOTE, "Some older wording (the interactive view needs JavaScript).")
    repictured = re.sub(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,iVBORw0KGgo=", html)
    out = lambda h: [{"output_type": "display_data", "metadata": {}, "data": {"text/html": h}}]  # noqa: E731
    for other in (reworded, repictured):
        test, ref = reconcile(out(other), out(html))
        assert test == ref
    changed = show_attention(_view(seed=1)[0])._repr_html_()
    test, ref = reconcile(out(changed), out(html))
    assert test != ref


def test_renderer_stores_the_figure_json_only_and_no_cdn():
    import plotly.io as pio

    assert pio.renderers.default == "plotly_mimetype"
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(go.Figure(go.Bar(y=[1, 2])).to_dict())
    assert list(bundle) == ["application/vnd.plotly.v1+json"] and "cdn" not in json.dumps(bundle)


def test_figures_of_different_renderers_compare_through_their_json():
    """A stored output with plotly's old CDN-loading HTML copy and no PNG equals a re-run with a PNG and no HTML."""
    z = np.random.default_rng(2).normal(size=(3, 3))
    old = [{"output_type": "display_data", "metadata": {}, "data": {"application/vnd.plotly.v1+json": _figure(z),
                                                                    "text/html": "<div>cdn.plot.ly</div>"}}]
    new = [{"output_type": "display_data", "metadata": {}, "data": {"application/vnd.plotly.v1+json": _figure(z),
                                                                    "image/png": "iVBORw0KGgo="}}]
    test, ref = reconcile(new, old)
    assert test == ref
    test, ref = reconcile([{**new[0], "data": {**new[0]["data"], "application/vnd.plotly.v1+json": _figure(z * 2)}}], old)
    assert test != ref
