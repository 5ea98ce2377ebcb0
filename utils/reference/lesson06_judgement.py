"""Reference answers to lesson 06's judgement exercises (decisions, checked by their consequences)."""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor

from ..calibration import ece_of_sums, per_sequence_bins
from ..stats import Z, bootstrap


def ece_difference_verdict(
    model_probs: Float[Tensor, "batch seq 26"], baseline_probs: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]
) -> dict:
    """ECE(model) - ECE(baseline), its standard error from resampling whole windows (both predictors together, on the
    same resampled windows), and whether the difference is real (beyond two standard errors)."""
    a, b = per_sequence_bins(model_probs, labels), per_sequence_bins(baseline_probs, labels)
    est = bootstrap(lambda x, y: ece_of_sums(x.sum(0)) - ece_of_sums(y.sum(0)), a, b)
    return {"difference": est.value, "se": est.se, "real": abs(est.value) > Z * est.se}


def choose_control(head: str, rival: str, position: int) -> dict:
    """The control for the claim 'at `position`, the prediction rests on `head`, not on `rival`': the same
    in-distribution intervention (resample) on the rival head at the same position."""
    return {"component": rival, "position": position, "method": "resample"}
