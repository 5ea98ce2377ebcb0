"""Repository-wide pytest hooks (tests/conftest.py holds the tests' own).

Plotly figures in stored outputs are compared only where the installed plotly has the major version that stored
them (requirements.txt's pin): plotly 5 and 7 serialize one figure differently (lists vs. base64 arrays, their
own plotly.js), so CI's Colab-like environment, which keeps Colab's plotly 5, would fail on every figure. Its
cells still run (so the asserts of every claim still hold) and every other output is still compared."""

import importlib.metadata
from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _stored_plotly_major() -> str:
    for line in (Path(__file__).resolve().parent / "requirements.txt").read_text().splitlines():
        if line.startswith("plotly=="):
            return line.split("==")[1].split(".")[0]
    return ""


def _is_plotly(output) -> bool:
    data = output.get("data", {})
    return PLOTLY_MIME in data or "window.PlotlyConfig" in str(data.get("text/html", ""))


def pytest_configure(config):
    try:
        from nbval.plugin import IPyNbCell
        installed = importlib.metadata.version("plotly").split(".")[0]
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return
    if installed == _stored_plotly_major() or getattr(IPyNbCell, "_plotly_skipped", False):
        return
    compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return compare(self, [o for o in test if not _is_plotly(o)], [o for o in ref if not _is_plotly(o)], skip_compare)

    IPyNbCell.compare_outputs = compare_outputs
    IPyNbCell._plotly_skipped = True
    config.stash_plotly_note = f"nbval: plotly {installed}.x here, outputs stored with {_stored_plotly_major()}.x: figures not compared"


def pytest_report_header(config):
    return getattr(config, "stash_plotly_note", None)
