"""Attention views that render everywhere: online, offline, in Colab, in stored notebooks and on the pages.

`show_attention(view)` takes a circuitsvis view (e.g. `cv.attention.attention_heads(...)`) and returns what a cell
displays: a static picture of the patterns, so that a viewer that runs no JavaScript (GitHub's notebook preview,
nbconvert HTML, an untrusted notebook) still shows the figure, and the interactive circuitsvis view, drawn by
JavaScript that takes circuitsvis from, in order: the page (`window.CircuitsVis`), a gzip-compressed copy of
circuitsvis's bundle embedded once per kernel session (the first view a notebook shows, about 480 kB), or
circuitsvis's CDN. Until the interactive view is drawn, a note under the picture says how to get it (trust the
notebook or re-run the cell; offline, re-run the first view's cell).

The picture a kernel makes is an SVG with the heatmaps as inline PNGs (no imaging library or browser needed in a
learner's kernel); when the solution notebooks are executed for storage (`python -m utils.notebooks execute`),
utils/static_images.py redraws it as a single PNG, which every static viewer shows.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import os
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

CDN_URL = "https://unpkg.com/circuitsvis@{version}/dist/cdn/esm.js"
_RENDER_CALL = re.compile(r'render\(\s*"(circuits-vis-[^"]+)",\s*(?:CircuitsVis\.)?(\w+),\s*(\{.*\})\s*\)\s*</script>', re.S)
_state = {"bundle_sent": False}
# Shown under the static picture until the interactive view replaces it. In Jupyter the picture stays when the
# notebook is not trusted (its scripts do not run): trusting it, or re-running the cell, draws the view.
NOTE = ("Static picture of the attention patterns. For the interactive view, trust this notebook (Jupyter's "
        "\u201cTrust Notebook\u201d command) or re-run this cell.")


def circuitsvis_bundle_path() -> Path:
    import circuitsvis

    return Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"


@functools.lru_cache(maxsize=1)
def circuitsvis_bundle() -> str:
    """circuitsvis's browser bundle (defines the global `CircuitsVis`), without its source-map comment."""
    text = circuitsvis_bundle_path().read_text(encoding="utf-8")
    return re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", text)


@functools.lru_cache(maxsize=1)
def packed_bundle() -> str:
    """The bundle gzip-compressed (deterministically: mtime 0) and base64-encoded."""
    return base64.b64encode(gzip.compress(circuitsvis_bundle().encode(), compresslevel=9, mtime=0)).decode()


def parse_view(view: Any) -> tuple[str, str, dict]:
    """(element id, React element name, props) of a circuitsvis view or of its HTML (CDN or inline version)."""
    source = getattr(view, "cdn_src", None) or str(view)
    match = _RENDER_CALL.search(source)
    if match is None:
        raise ValueError(
            "show_attention expects a circuitsvis view such as cv.attention.attention_heads(attention=..., "
            f"tokens=...); got {type(view).__name__} whose HTML has no circuitsvis render(...) call"
        )
    return match.group(1), match.group(2), json.loads(match.group(3))


def _round_floats(value: Any, decimals: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, list):
        return [_round_floats(v, decimals) for v in value]
    if isinstance(value, dict):
        return {k: _round_floats(v, decimals) for k, v in value.items()}
    return value


def _png(rgb: np.ndarray) -> bytes:
    """A minimal PNG encoder for an [h w 3] uint8 image (no imaging library needed)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _heatmap_png(pattern: np.ndarray) -> str:
    """Attention weights in [0, 1] as a white-to-blue PNG, one pixel per (destination, source), base64."""
    weight = np.clip(np.nan_to_num(pattern), 0.0, 1.0)[..., None]
    blue = np.array([31, 78, 156], dtype=float)
    rgb = np.round(255.0 - weight * (255.0 - blue)).astype(np.uint8)
    return base64.b64encode(_png(rgb)).decode()


def static_svg(props: dict) -> str:
    """An SVG picture of the patterns in `props` (AttentionHeads / AttentionPattern props): one heatmap per head,
    destination tokens down the side, source tokens along the bottom."""
    attention = np.asarray(props["attention"], dtype=float)
    if attention.ndim == 2:
        attention = attention[None]
    tokens = [str(t) for t in props.get("tokens", [])] or [str(i) for i in range(attention.shape[-1])]
    names = props.get("attentionHeadNames") or [f"head {i}" for i in range(len(attention))]
    n = attention.shape[-1]
    cell = max(6, min(14, 360 // max(n, 1)))
    font = min(10, cell)
    label = int(max(len(t) for t in tokens) * font * 0.62) + 6
    panel_w, panel_h = label + n * cell + 12, 18 + n * cell + label
    columns = min(2, len(attention))
    rows = -(-len(attention) // columns)
    y_labels = "".join(
        f'<text x="-3" y="{i * cell + cell * 0.8:.1f}" font-size="{font}" text-anchor="end">{html.escape(t)}</text>'
        for i, t in enumerate(tokens)
    )
    x_labels = "".join(
        f'<text transform="translate({i * cell + cell * 0.8:.1f},3) rotate(-90)" font-size="{font}" '
        f'text-anchor="end">{html.escape(t)}</text>'
        for i, t in enumerate(tokens)
    )
    parts = [f'<defs><g id="ylab">{y_labels}</g><g id="xlab">{x_labels}</g></defs>']
    for h, pattern in enumerate(attention):
        ox, oy = (h % columns) * panel_w, (h // columns) * panel_h
        gx, gy = ox + label, oy + 18
        parts.append(f'<text x="{gx}" y="{oy + 13}" font-size="12" font-weight="bold">{html.escape(str(names[h]))}</text>')
        parts.append(
            f'<image x="{gx}" y="{gy}" width="{n * cell}" height="{n * cell}" preserveAspectRatio="none" '
            f'style="image-rendering:pixelated" href="data:image/png;base64,{_heatmap_png(pattern)}"/>'
        )
        parts.append(f'<use href="#ylab" x="{gx}" y="{gy}"/><use href="#xlab" x="{gx}" y="{gy + n * cell}"/>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{columns * panel_w}" height="{rows * panel_h}" '
        f'font-family="monospace">{"".join(parts)}</svg>'
    )


_LOADER_JS = """
(async () => {
  const target = document.getElementById(%(id)s);
  if (!target) return;
  const box = target.closest(".cbt-attention"), note = box.querySelector(".cbt-attention-note");
  async function circuitsVis() {
    if (window.CircuitsVis) return window.CircuitsVis;
    const packed = box.querySelector("script.cbt-circuitsvis-bundle") || document.querySelector("script.cbt-circuitsvis-bundle");
    if (packed && packed.textContent.trim() && "DecompressionStream" in window) {
      window.cbtCircuitsVisLoading = window.cbtCircuitsVisLoading || (async () => {
        const bytes = Uint8Array.from(atob(packed.textContent.trim()), (c) => c.charCodeAt(0));
        const code = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
        (0, eval)(code + "\\nwindow.CircuitsVis = CircuitsVis;");
        return window.CircuitsVis;
      })();
      return await window.cbtCircuitsVisLoading;
    }
    try { return await import(%(cdn)s); } catch (error) { return null; }
  }
  const CV = await circuitsVis();
  if (!CV) {
    note.textContent = "Static picture: the interactive view needs circuitsvis's JavaScript, which this page neither " +
      "holds nor can download (offline). Re-run the notebook's first attention-view cell (it embeds it), then this one.";
    return;
  }
  CV.render(%(id)s, CV[%(element)s], %(props)s);
  box.querySelector(".cbt-attention-static").style.display = "none";
  note.textContent = "";
})();
"""


def attention_html(element_id: str, element: str, props: dict, embed_bundle: bool) -> str:
    """The HTML of one attention view: static picture, live view, and (if embed_bundle) the packed bundle."""
    import circuitsvis

    props = _round_floats(props)
    svg = base64.b64encode(static_svg(props).encode()).decode() if "attention" in props else ""
    picture = f'<img alt="attention patterns (static picture)" src="data:image/svg+xml;base64,{svg}"/>' if svg else ""
    bundle = f'<script type="text/plain" class="cbt-circuitsvis-bundle">{packed_bundle()}</script>' if embed_bundle else ""
    js = _LOADER_JS % {
        "id": json.dumps(element_id),
        "element": json.dumps(element),
        "cdn": json.dumps(CDN_URL.format(version=circuitsvis.__version__)),
        "props": json.dumps(props, separators=(",", ":")).replace("</", "<\\/"),
    }
    return (
        f'<div class="cbt-attention" style="margin: 15px 0;">{bundle}'
        f'<div id="{element_id}" class="cbt-attention-live"></div>'
        f'<div class="cbt-attention-static">{picture}</div>'
        f'<div class="cbt-attention-note" style="font-size: 12px; color: #555;">{NOTE}</div>'
        f'<script type="module">{js}</script></div>'
    )


def _bundle_policy() -> str:
    """'once' (default: the first view of a kernel session carries the bundle), 'always', or 'never' (CDN only;
    the default in Colab, which is always online and shows each output in its own frame)."""
    policy = os.environ.get("CBT_ATTENTION_BUNDLE", "never" if "google.colab" in sys.modules else "once")
    if policy not in ("once", "always", "never"):
        raise ValueError(f"CBT_ATTENTION_BUNDLE must be once, always or never, not {policy!r}")
    return policy


class AttentionView:
    """What `show_attention` returns: Jupyter displays it (as the last expression of a cell, or with display())."""

    def __init__(self, view: Any):
        self.element_id, self.element, self.props = parse_view(view)

    def __repr__(self) -> str:
        shape = np.shape(self.props.get("attention", []))
        return f"<circuitsvis {self.element}: attention of shape {list(shape)}>"

    def _repr_html_(self) -> str:
        policy = _bundle_policy()
        embed = policy == "always" or (policy == "once" and not _state["bundle_sent"])
        _state["bundle_sent"] = _state["bundle_sent"] or embed
        return attention_html(self.element_id, self.element, self.props, embed)


def show_attention(view: Any) -> AttentionView:
    """Display a circuitsvis view (e.g. `cv.attention.attention_heads(...)`): the one call lessons use, so that
    how attention views render (online, offline, in Colab, in stored notebooks) is decided in one place.
    Use it as a cell's last expression, or `display(show_attention(view))` in a loop."""
    return AttentionView(view)
