"""Root conftest: nbval compares numbers and plotly figures at a stated precision (utils/nbcompare.py)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYTHONHASHSEED", "0")

from utils.nbcompare import reconcile  # noqa: E402

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval not installed: nothing to hook
    IPyNbCell = None

# CBT_NBVAL_EXACT=1 turns the tolerance off (nbval's own bit-exact comparison), e.g. to measure what it buys
EXACT = os.environ.get("CBT_NBVAL_EXACT") == "1"
if IPyNbCell is not None and not EXACT and not getattr(IPyNbCell, "tolerant_compare", False):
    _nbval_compare_outputs = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        test, ref = reconcile(test, ref, self.sanitize)
        return _nbval_compare_outputs(self, test, ref, skip_compare)

    IPyNbCell.compare_outputs = compare_outputs
    IPyNbCell.tolerant_compare = True


# Figures are compared only in the pinned environment that stored them (requirements.txt's plotly and torch):
# elsewhere, as in CI's Colab-like environment (plotly 5, torch 2.11), a figure's serialization differs. The
# cells still run, so every claim's assert still holds, and every other output is still compared.

import importlib.metadata  # noqa: E402

PINS = dict(line.split("==") for line in (Path(__file__).resolve().parent / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#"))


def _is_figure(output) -> bool:
    data = output.get("data", {})
    html = str(data.get("text/html", ""))
    return "application/vnd.plotly.v1+json" in data or "window.PlotlyConfig" in html or "circuits-vis-" in html


def _differs(name: str) -> bool:
    try:
        installed = importlib.metadata.version(name).split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return False
    return installed != PINS.get(name, installed)


def pytest_configure(config):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    moved = [f"{n} {importlib.metadata.version(n)}" for n in ("plotly", "torch") if _differs(n)]
    if not moved or getattr(IPyNbCell, "_figures_skipped", False):
        return
    compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return compare(self, [o for o in test if not _is_figure(o)], [o for o in ref if not _is_figure(o)], skip_compare)

    IPyNbCell.compare_outputs = compare_outputs
    IPyNbCell._figures_skipped = True
    config.figures_note = f"nbval: {', '.join(moved)} differ from requirements.txt: figure outputs not compared"


def pytest_report_header(config):
    return getattr(config, "figures_note", None)
