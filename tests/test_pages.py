"""The read-only pages in a real browser: every page opens in headless Chromium with every figure and attention view
drawn and no JavaScript error; one screenshot per lesson goes to test-artifacts/pages/screenshots/.

Needs Chromium (Debian package `chromium`; `.ci/run` installs it): without it these tests skip and say so.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from utils.pages import build
from helpers import headless_chromium
from utils.pages.browser import check_page

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "pages"
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    chromium = headless_chromium()
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def site():
    out = ARTIFACTS / "site"
    build(out)
    return out


def test_index_links_every_lesson(site):
    index = (site / "index.html").read_text()
    for notebook in SOLUTIONS:
        assert f'href="{notebook.stem}.html"' in index and (site / f"{notebook.stem}.html").exists()
    assert "https://" not in (site / SOLUTIONS[0].with_suffix(".html").name).read_text().split("<body>")[0]


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=[n.stem for n in SOLUTIONS])
def test_page_renders_every_figure_and_view(browser, site, notebook):
    report = check_page(browser, site / f"{notebook.stem}.html", ARTIFACTS / "screenshots")
    assert report.figures > 0, f"{report.page}: no figures on the page"
    assert report.ok, report.summary()
    assert Path(report.screenshot).stat().st_size > 10_000


def test_check_fails_on_a_blank_figure_a_blank_view_and_a_script_error(browser, site):
    from utils.pages.build import _figure, page

    body = (
        _figure({"data": [], "layout": {"title": {"text": "empty"}}}, 1)
        + '<div class="cbt-attention"><div id="circuits-vis-x" class="cbt-attention-live"></div></div>'
        + "<script>notDefinedAnywhere();</script>"
    )
    broken = site / "broken-for-test.html"
    broken.write_text(page("broken", body))
    try:
        report = check_page(browser, broken, timeout=10)
    finally:
        broken.unlink()
    assert report.blank_figures == ["figure-1"] and report.blank_views == ["circuits-vis-x"]
    assert any("notDefinedAnywhere" in e for e in report.errors) and not report.ok


def test_index_loads_no_script_and_pages_only_the_scripts_they_need(site):
    index = (site / "index.html").read_text()
    assert "<script src=" not in index and len(index) < 20_000
    for notebook in SOLUTIONS:
        text = (site / f"{notebook.stem}.html").read_text()
        assert ("assets/circuitsvis.js" in text) == ("cbt-attention" in text), notebook.stem
        assert ("assets/plotly.min.js" in text) == ("cbt-plotly" in text), notebook.stem


def test_formulae_are_drawn_as_mathml_without_any_script(browser, site):
    from utils.pages.build import render_math

    assert render_math("<p>$a &lt; b$ and <code>$HOME</code></p>").count("<math") == 1
    assert "<code>$HOME</code>" in render_math("<p>$a$ and <code>$HOME</code></p>")
    assert 'display="block"' in render_math("<p>$$x^2$$</p>")
    page_path = site / f"{SOLUTIONS[1].stem}.html"
    text = page_path.read_text()
    assert text.count("<math") >= 10 and "\\frac" not in text.split("<body>")[1].split("<pre")[0]
    browser.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        browser.send("Page.navigate", url=page_path.resolve().as_uri())
        time.sleep(2)
        sizes = browser.evaluate("[...document.querySelectorAll('math')].map(m => m.getBoundingClientRect().height)")
    finally:
        browser.send("Emulation.setScriptExecutionDisabled", value=False)
    assert len(sizes) >= 10 and all(h > 5 for h in sizes), sizes


def test_static_pictures_show_without_javascript(browser, site):
    """What GitHub's preview or an untrusted notebook shows: the static picture of each attention view."""
    pages = [p for p in sorted(site.glob("[0-9]*.html")) if "cbt-attention" in p.read_text()]
    if not pages:
        pytest.skip("no page has an attention view")
    browser.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        browser.send("Page.navigate", url=pages[0].resolve().as_uri())
        time.sleep(3)
        browser.send("Emulation.setScriptExecutionDisabled", value=False)
        widths = browser.evaluate(
            "[...document.querySelectorAll('.cbt-attention-static img')].map(i => i.complete ? i.naturalWidth : 0)"
        )
    finally:
        browser.send("Emulation.setScriptExecutionDisabled", value=False)
    assert widths and all(w > 100 for w in widths), widths


def test_notebook_output_renders_offline_from_its_embedded_bundle(browser, tmp_path, monkeypatch):
    """Jupyter offline: the first view of a session carries circuitsvis's bundle, the next ones reuse it."""
    import circuitsvis as cv
    import torch

    from utils.attention_view import _state, show_attention

    monkeypatch.setenv("CBT_ATTENTION_BUNDLE", "once")
    monkeypatch.setitem(_state, "bundle_sent", False)
    pattern = torch.softmax(torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(0)), -1)
    views = [cv.attention.attention_heads(attention=pattern, tokens=list("abcde")) for _ in range(2)]
    outputs = [show_attention(v)._repr_html_() for v in views]
    page = tmp_path / "outputs.html"
    page.write_text("<!DOCTYPE html><html><body>" + "".join(f"<div>{o}</div>" for o in outputs) + "</body></html>")
    browser.events.clear()
    browser.send("Page.navigate", url=page.as_uri())
    deadline, heights = time.time() + 60, []
    while time.time() < deadline:
        heights = browser.evaluate("[...document.querySelectorAll('.cbt-attention-live')].map(e => e.offsetHeight)")
        if heights and all(h > 50 for h in heights):
            break
        time.sleep(0.5)
    assert len(heights) == 2 and all(h > 50 for h in heights), heights
    hidden = browser.evaluate("[...document.querySelectorAll('.cbt-attention-static')].map(e => e.style.display)")
    assert hidden == ["none", "none"]
    assert not browser.errors(), browser.errors()  # and no attempt at the CDN (it would fail offline)
