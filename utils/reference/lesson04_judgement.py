"""Reference answers to lesson 04's judgement exercises (the decisions, and the computation behind the second)."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from ..attribution import share_difference


def discriminating_ablation() -> dict:
    """The direct paths of the embeddings and layer 0, at position 1: the filter account says they choose among the
    consistent shifts (top-1 falls without them); "head 1.1 alone" says they write nothing the logits need (no
    change). Both accounts predict a large drop when head 1.1's direct path goes, or under any total ablation."""
    return {"components": ["embed", "0.0", "0.1"], "path": "direct", "verdict": "filter"}


def shares_differ(dla: Float[Tensor, "component batch"], group_a: list[int], group_b: list[int]) -> dict:
    """Share of group_a minus share of group_b in the mean margin attribution, its paired bootstrap standard error
    over sequences, and whether it is real (more than 2 standard errors from zero)."""
    est = share_difference(dla, group_a, group_b)
    return {"difference": est.value, "se": est.se, "real": abs(est.value) > 2 * est.se}
