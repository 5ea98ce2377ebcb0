"""Static pictures of a notebook's figures, for viewers that run no JavaScript (nbconvert HTML, GitHub's preview).

An authoring-time step (`python -m utils.notebooks execute` runs it; `python -m utils.notebooks images` runs it on
stored outputs): every plotly figure output gets an `image/png` copy beside its JSON, and the figure's HTML copy
(which loads plotly.js from a CDN) is dropped, so a static viewer shows the PNG while Jupyter draws the interactive
figure from the JSON (its plotly renderer ranks above the image). An attention view's static picture
(utils/attention_view.py: an SVG data URI, what a kernel makes without any extra machinery) becomes a PNG.

The pictures are drawn by the same headless Chromium the read-only pages are checked with (Debian package
`chromium`), with plotly.js from the installed `plotly` package: nothing is downloaded and nothing new is installed.
Learners' kernels never run this: their figures are interactive, and a notebook they save keeps working without
pictures. nbval ignores the pictures (they are drawn from the JSON and props it compares: utils/nbcompare.py).
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

PLOTLY = "application/vnd.plotly.v1+json"
PNG = "image/png"
DEFAULT_SIZE = (800, 450)  # a figure without a width or height of its own is drawn at this size
SVG_PICTURE = re.compile(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')

_SVG_TO_PNG = """(async () => {
  const image = new Image();
  image.src = "data:image/svg+xml;base64," + %s;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.fillStyle = "white"; context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(image, 0, 0);
  return canvas.toDataURL("image/png");
})()"""


@dataclass
class Added:
    """What `add_static_images` did to one notebook (bytes: the base64 text added, as stored)."""

    figures: int = 0
    figure_bytes: int = 0
    html_dropped_bytes: int = 0
    views: int = 0
    view_bytes_change: int = 0

    def summary(self) -> str:
        return (f"{self.figures} figure PNGs (+{self.figure_bytes / 1e3:.0f} kB, their CDN-loading HTML copies "
                f"-{self.html_dropped_bytes / 1e3:.0f} kB), {self.views} attention pictures as PNG "
                f"({self.view_bytes_change / 1e3:+.0f} kB)")


class Renderer:
    """A headless Chromium page holding the installed plotly.js, that draws figures and SVGs as PNG."""

    def __init__(self):
        import plotly

        from .pages.browser import Chromium

        self.browser = Chromium()
        self.folder = Path(tempfile.mkdtemp(prefix="cbt-static-"))
        plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        page = self.folder / "render.html"
        page.write_text(f'<!DOCTYPE html><html><head><script src="{plotly_js.as_uri()}"></script></head><body></body></html>')
        self.browser.send("Page.navigate", url=page.as_uri())
        for _ in range(200):
            if self.browser.evaluate("typeof Plotly !== 'undefined' && document.readyState === 'complete'"):
                break
            import time

            time.sleep(0.1)
        else:
            raise RuntimeError("plotly.js did not load in headless Chromium")

    def _png(self, expression: str) -> str:
        url = self.browser.evaluate(expression)
        if not isinstance(url, str) or not url.startswith("data:image/png;base64,"):
            raise RuntimeError(f"Chromium drew no PNG ({str(url)[:200]}); JavaScript errors: {self.browser.errors()[-3:]}")
        return url.split(",", 1)[1]

    def figure(self, figure: dict) -> str:
        """A plotly figure (its JSON) as a base64 PNG at the figure's own size."""
        layout = figure.get("layout", {})
        width, height = layout.get("width") or DEFAULT_SIZE[0], layout.get("height") or DEFAULT_SIZE[1]
        payload = json.dumps({"data": figure.get("data", []), "layout": layout})
        return self._png(f"Plotly.toImage({payload}, {{format: 'png', width: {int(width)}, height: {int(height)}}})")

    def svg(self, svg_base64: str) -> str:
        """An SVG (base64) as a base64 PNG of the same size."""
        return self._png(_SVG_TO_PNG % json.dumps(svg_base64))

    def close(self) -> None:
        self.browser.close()
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def available() -> bool:
    from .pages.browser import find_chromium

    try:
        import websocket  # noqa: F401  (the DevTools connection)
    except ImportError:
        return False
    return find_chromium() is not None


def add_static_images(nb: nbformat.NotebookNode, renderer: Renderer | None = None) -> Added:
    """Give every figure output of `nb` a PNG copy (and drop its CDN-loading HTML copy) and turn every attention
    view's SVG picture into a PNG, in place."""
    own = renderer is None
    renderer = renderer or Renderer()
    added = Added()
    try:
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if PLOTLY in data:
                    html = data.pop("text/html", None)
                    added.html_dropped_bytes += len(html or "")
                    data[PNG] = renderer.figure(data[PLOTLY])
                    added.figures += 1
                    added.figure_bytes += len(data[PNG])
                elif "cbt-attention" in str(data.get("text/html", "")):
                    before = data["text/html"]
                    data["text/html"] = SVG_PICTURE.sub(
                        lambda m: f'src="data:image/png;base64,{renderer.svg(m.group(1))}"', before)
                    added.views += len(SVG_PICTURE.findall(before))
                    added.view_bytes_change += len(data["text/html"]) - len(before)
    finally:
        if own:
            renderer.close()
    return added
