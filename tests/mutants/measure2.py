"""The second held-out batch (tests/mutants/heldout2.py): `python -m tests.mutants.measure2`."""

import warnings

from . import heldout, measure
from .heldout2 import WRONG

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    heldout.WRONG[:], heldout.RIGHT[:] = WRONG, []
    measure.WRONG[:], measure.RIGHT[:] = WRONG, []
    measure.measure()
