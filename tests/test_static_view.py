"""What a viewer that runs no JavaScript shows (nbconvert HTML, GitHub's preview, an untrusted notebook): every figure
of every solution notebook, as the static PNG that `python -m utils.notebooks execute` stores (utils/static_images.py).

Each solution notebook goes through nbconvert's HTML exporter and is opened in headless Chromium with JavaScript
off; every plotly figure and every attention view must show as a loaded picture. Needs Chromium (Debian package
`chromium`, which `.ci/run` installs): without it these tests skip and say so.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import nbformat
import pytest

from utils.nbcompare import PLOTLY
from helpers import headless_chromium
from utils.pages.browser import Chromium

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.slow

# In the page: the pictures in output areas that loaded and have a size, and plotly's empty boxes
PICTURES_JS = """(() => {
  const images = [...document.querySelectorAll(".jp-OutputArea-output img, .output_area img")];
  return {
    shown: images.filter((i) => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100).length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).length,
    plotlyBoxes: document.querySelectorAll(".plotly-graph-div").length,
  };
})()"""


@pytest.fixture(scope="module")
def browser():
    chromium = headless_chromium()
    chromium.send("Emulation.setScriptExecutionDisabled", value=True)
    yield chromium
    chromium.close()


def figures_in(nb: nbformat.NotebookNode) -> int:
    """Plotly figures and attention views among the notebook's outputs."""
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            count += PLOTLY in data or "cbt-attention" in str(data.get("text/html", ""))
    return count


def static_view(browser: Chromium, nb: nbformat.NotebookNode, folder: Path) -> dict:
    """Open the notebook's nbconvert HTML with JavaScript off; what the page shows (PICTURES_JS)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    page = folder / "static.html"
    page.write_text(body, encoding="utf-8")
    browser.send("Page.navigate", url=page.as_uri())
    deadline, state = time.time() + 30, {}
    while time.time() < deadline:
        if browser.evaluate("document.readyState") == "complete" and browser.evaluate("location.href") == page.as_uri():
            state = browser.evaluate(PICTURES_JS)
            break
        time.sleep(0.2)
    return state


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_static_html_of_each_solution_shows_every_figure(browser, tmp_path, path):
    nb = nbformat.read(path, as_version=4)
    expected = figures_in(nb)
    state = static_view(browser, nb, tmp_path)
    assert state, "the page did not load"
    assert state["broken"] == 0, f"{path.name}: {state['broken']} pictures do not load"
    assert state["shown"] >= expected, (
        f"{path.name}: {expected} figures, {state['shown']} shown without JavaScript ({state['plotlyBoxes']} empty plotly "
        f"boxes): run `python -m utils.notebooks execute solutions/{path.name}` (with Chromium) to store their pictures")


def test_static_images_are_added_and_the_check_fails_without_them(browser, tmp_path, monkeypatch):
    """The machinery on a small notebook: a figure gets its PNG (and loses its CDN-loading HTML copy), an attention
    view's SVG picture becomes a PNG; the same notebook without the pictures fails the check above."""
    import circuitsvis as cv
    import plotly.io as pio
    import torch

    from utils import plotting
    from utils.attention_view import show_attention
    from utils.static_images import add_static_images

    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "never")
    figure = plotting.imshow(torch.eye(3), labels={"x": "a", "y": "b"}, title="eye", show=False)
    # as the old renderer stored it: the JSON and an HTML copy that loads plotly.js from its CDN
    bundle = {**pio.renderers["plotly_mimetype"].to_mimebundle(figure.to_dict()),
              **pio.renderers["notebook_connected"].to_mimebundle(figure.to_dict())}
    view = show_attention(cv.attention.attention_heads(attention=torch.eye(12)[None].softmax(-1), tokens=list("abcdefghijkl")))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fig", execution_count=1, outputs=[
        nbformat.v4.new_output("display_data", data=bundle),
        nbformat.v4.new_output("display_data", data={"text/html": view._repr_html_(), "text/plain": repr(view)}),
    ])]
    assert "text/html" in bundle and "cdn.plot.ly" in bundle["text/html"]
    assert static_view(browser, nb, tmp_path)["shown"] == 1  # the figure is blank (the view's SVG picture shows here)
    added = add_static_images(nb)
    assert (added.figures, added.views) == (1, 1)
    figure_data, view_data = (o["data"] for o in nb.cells[0].outputs)
    assert sorted(figure_data) == [PLOTLY, "image/png"]
    assert base64.b64decode(figure_data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in view_data["text/html"] and "image/svg+xml" not in view_data["text/html"]
    assert static_view(browser, nb, tmp_path)["shown"] == 2
