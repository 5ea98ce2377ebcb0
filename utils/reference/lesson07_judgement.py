"""Reference answers to the judgement exercises of notebook 07 (graded by their consequences in
utils/checks/lesson07_judgement.py, not by matching these values)."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor


def falsify_monotone() -> tuple[int, int, int, int]:
    """A keep pattern that keeps at least as much of every word as (1, 1, 1, 1) in every slot, and more in one, yet
    recovers less: slot C keeps two letters while slot B keeps only the 1st, so they disagree whenever the 2nd letter
    was redrawn ((1, 1, 3, 1), the lesson's own example, is taken)."""
    return (1, 1, 2, 1)


def difference_is_real(loss_a: Float[Tensor, "batch seq"], loss_b: Float[Tensor, "batch seq"]) -> dict:
    """Mean loss of a minus b, its standard error over sequences (paired: the per-sequence difference), and whether
    it lies more than 2 standard errors from 0."""
    per_sequence = (loss_a - loss_b).double().mean(-1)  # one number per sequence: positions are not independent
    difference = float(per_sequence.mean())
    se = float(per_sequence.std() / math.sqrt(len(per_sequence)))
    return {"difference": difference, "se": se, "real": abs(difference) > 2 * se}
