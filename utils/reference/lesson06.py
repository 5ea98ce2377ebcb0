"""Reference answers for notebook 06 (the medium and hard models)."""

from __future__ import annotations


import einops
import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor

from ..bayes import letter_frequency_logprobs as frequency_baseline_logprobs  # noqa: F401  (the library's)
from ..circuits import loss_by_letters_seen  # noqa: F401  (the library's versions)


def nonletter_attention_share(
    pattern: Float[Tensor, "batch head dest src"], toks: Int[Tensor, "batch seq"]
) -> Float[Tensor, "head"]:
    """Share of each head's attention that lands on non-letter source tokens (space, newline, punctuation: ids >= 26),
    averaged over the batch and over every destination position."""
    is_nonletter = (toks >= 26).to(pattern.dtype)
    on_nonletters = einops.einsum(pattern, is_nonletter, "batch head dest src, batch src -> batch head dest")
    return einops.reduce(on_nonletters, "batch head dest -> head", "mean")


# ---------------------------------------------------------------------------------------------------------
# Calibration of the hard model (issue 9, item 3)
# ---------------------------------------------------------------------------------------------------------


def reliability_bins(
    probs: Float[Tensor, "n 26"], targets: Int[Tensor, "n"], n_bins: int = 10
) -> Float[Tensor, "3 n_bins"]:
    """A reliability table: predictions binned by confidence (the probability of the predicted, i.e. top, shift)
    into n_bins equal-width bins of [0, 1], bin i holding i/n_bins <= confidence < (i+1)/n_bins (confidence 1
    goes in the last bin). Rows: mean confidence, accuracy (share whose top shift is the target), share of all
    predictions in the bin. An empty bin has NaN confidence and accuracy and share 0. float64."""
    confidence, predicted = probs.double().max(dim=-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=probs.device)
    count = zeros.index_add(0, index, torch.ones_like(confidence))
    mean_conf = zeros.index_add(0, index, confidence) / count  # 0 / 0 = NaN for empty bins
    accuracy = zeros.index_add(0, index, correct) / count
    return torch.stack([mean_conf, accuracy, count / len(confidence)])


def expected_calibration_error(table: Float[Tensor, "3 n_bins"]) -> float:
    """Share-weighted mean |accuracy - confidence| over the non-empty bins of a reliability table."""
    gap = (table[1] - table[0]).abs().nan_to_num(0.0)
    return (table[2] * gap).sum().item()
