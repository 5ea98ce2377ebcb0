"""Render solution notebooks to static HTML pages with an index, for GitHub Pages or a local folder.

Each page carries its figures as plotly JSON drawn by a local copy of plotly.js, and its attention views drawn by a
local copy of circuitsvis's bundle (static pictures stay beside them for readers without JavaScript); a page loads
each script only if it has a figure or view that needs it (the index loads none). Formulae are converted from TeX to
MathML when the pages are built (`latex2mathml`), which browsers draw themselves: no script, nothing downloaded.
Nothing is loaded from the internet.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import nbformat
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from ..attention_view import attention_html, circuitsvis_bundle, parse_view

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "site"
PLOTLY = "application/vnd.plotly.v1+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BUNDLE = re.compile(r'<script type="text/plain" class="cbt-circuitsvis-bundle">[^<]*</script>')

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; font-size: 13px; }
pre.output { background: #fff; border-left: 3px solid #ddd; }
pre.stderr { background: #fff8f0; }
.cell { margin: 1em 0; } .figure { margin: 1em 0; } table { border-collapse: collapse; }
td, th { border: 1px solid #ddd; padding: 2px 8px; } nav { margin-bottom: 2em; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="assets/style.css">
{scripts}</head><body>
<nav><a href="index.html">All lessons</a></nav>
{body}
{figure_script}
</body></html>
"""
PLOTLY_SCRIPT = '<script src="assets/plotly.min.js"></script>\n'
CIRCUITSVIS_SCRIPT = '<script src="assets/circuitsvis.js"></script>\n'
FIGURE_SCRIPT = """<script>
(async () => {
  for (const data of document.querySelectorAll("script.cbt-plotly-json")) {
    const figure = JSON.parse(data.textContent);
    await Plotly.newPlot(data.dataset.target, figure.data, figure.layout, {displaylogo: false, responsive: true});
  }
  window.cbtPageDone = true;
})();
</script>"""
DONE_SCRIPT = "<script>window.cbtPageDone = true;</script>"
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?![\w$])", re.S)
_CODE = re.compile(r"(<code[^>]*>.*?</code>|<pre[^>]*>.*?</pre>)", re.S)


def page(title: str, body: str) -> str:
    """A whole page: the scripts its figures and attention views need, and no others."""
    scripts = (PLOTLY_SCRIPT if "cbt-plotly" in body else "") + (CIRCUITSVIS_SCRIPT if "cbt-attention" in body else "")
    return PAGE.format(title=title, body=body, scripts=scripts,
                       figure_script=FIGURE_SCRIPT if "cbt-plotly" in body else DONE_SCRIPT)


def _mathml(match: re.Match) -> str:
    from latex2mathml.converter import convert

    display, tex = ("block", match.group(1)) if match.group(1) is not None else ("inline", match.group(2))
    try:
        return convert(html.unescape(tex).strip(), display=display)
    except Exception:  # noqa: BLE001  (TeX the converter does not know stays as TeX)
        return match.group(0)


def render_math(text: str) -> str:
    """Markdown's HTML with every $...$ and $$...$$ outside code converted to MathML."""
    parts = _CODE.split(text)
    return "".join(part if i % 2 else _MATH.sub(_mathml, part) for i, part in enumerate(parts))


def _text_output(text: str, css: str = "output") -> str:
    text = _ANSI.sub("", text)
    text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))  # progress bars: the last state
    return f'<pre class="{css}">{html.escape(text)}</pre>'


def _figure(figure: dict, number: int) -> str:
    target = f"figure-{number}"
    payload = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {})}).replace("</", "<\\/")
    return (
        f'<div class="figure cbt-plotly" id="{target}"></div>'
        f'<script type="application/json" class="cbt-plotly-json" data-target="{target}">{payload}</script>'
    )


def _html_output(source: str) -> str | None:
    """HTML as a page shows it: attention views without their embedded bundle (the page loads one copy), old
    CDN-only circuitsvis views re-rendered locally, plotly's loader scripts dropped (the page has plotly.js)."""
    if "cbt-attention" in source:
        return _BUNDLE.sub("", source)
    if "circuits-vis-" in source and "render(" in source:
        return attention_html(*parse_view(source), embed_bundle=False)
    if "window.PlotlyConfig" in source and "newPlot" not in source:
        return None
    return source


def _output(output: dict, counter: list[int]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return _text_output(output.get("text", ""), "output stderr" if output.get("name") == "stderr" else "output")
    if kind == "error":
        return _text_output("\n".join(output.get("traceback", [])) or output.get("evalue", ""), "output stderr")
    data = output.get("data", {})
    if PLOTLY in data:
        counter[0] += 1
        return _figure(data[PLOTLY], counter[0])
    if "text/html" in data:
        rendered = _html_output(data["text/html"])
        return "" if rendered is None else f'<div class="output-html">{rendered}</div>'
    if "image/svg+xml" in data:
        return f'<div class="figure">{data["image/svg+xml"]}</div>'
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img class="figure" alt="figure" src="data:{mime};base64,{data[mime].strip()}"/>'
    if "text/markdown" in data:
        return markdown2html_mistune(data["text/markdown"])
    if "text/plain" in data:
        return _text_output(data["text/plain"])
    return ""


def render_notebook(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """(title, HTML body) of a notebook: markdown, highlighted code (the setup cell left out), outputs."""
    formatter = HtmlFormatter(cssclass="code")
    title, parts, counter = "", [], [0]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if not title:
                found = re.search(r"^#\s+(.+)$", cell.source, re.M)
                title = found.group(1).strip() if found else ""
            parts.append(f'<div class="cell markdown">{render_math(markdown2html_mistune(cell.source))}</div>')
        elif cell.cell_type == "code" and "setup" not in cell.get("metadata", {}).get("tags", []):
            outputs = "".join(_output(output, counter) for output in cell.get("outputs", []))
            parts.append(f'<div class="cell code">{highlight(cell.source, PythonLexer(), formatter)}{outputs}</div>')
    return title, "\n".join(parts)


def _assets(out: Path) -> None:
    import plotly

    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    (assets / "circuitsvis.js").write_text(circuitsvis_bundle(), encoding="utf-8")
    (assets / "style.css").write_text(STYLE + HtmlFormatter(cssclass="code").get_style_defs(".code"), encoding="utf-8")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve assets/ as they are


def build(out: Path = DEFAULT_OUT, notebooks: list[Path] | None = None) -> list[Path]:
    """Write one page per solution notebook, the index and the assets into `out`; returns the pages."""
    notebooks = sorted(notebooks or (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no solution notebooks to render (looked in {ROOT / 'solutions'})")
    out = Path(out)
    _assets(out)
    pages, entries = [], []
    for path in notebooks:
        title, body = render_notebook(nbformat.read(path, as_version=4))
        target = out / f"{path.stem}.html"
        target.write_text(page(html.escape(title or path.stem), body), encoding="utf-8")
        pages.append(target)
        entries.append(f'<li><a href="{target.name}">{html.escape(title or path.stem)}</a></li>')
    index = (
        "<h1>Code-breaking transformer: the lessons, solved</h1>"
        "<p>Read-only pages of the solution notebooks, with their outputs. To run the exercises, open the notebooks "
        "(see the repository's README).</p><ul>" + "".join(entries) + "</ul>"
    )
    (out / "index.html").write_text(
        page("Code-breaking transformer", index).replace('<nav><a href="index.html">All lessons</a></nav>', ""),
        encoding="utf-8",
    )
    return pages
