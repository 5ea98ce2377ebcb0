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
