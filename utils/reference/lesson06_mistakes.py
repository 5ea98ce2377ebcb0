"""Plausible wrong implementations of lesson 06's exercises, as `<exercise>__<mistake>` (see utils.checks.core.Mistake).

Tests import them to show that each check rejects them; they are never shipped to a learner's sandbox."""

from __future__ import annotations

import torch


# ---------------------------------------------------------------------------------------------------------
# reliability_bins
# ---------------------------------------------------------------------------------------------------------


def _bins(confidence, correct, index, n_bins, keep=None):
    keep = torch.ones_like(confidence, dtype=torch.bool) if keep is None else keep
    zeros = torch.zeros(n_bins, dtype=torch.float64)
    count = zeros.index_add(0, index[keep], torch.ones_like(confidence[keep]))
    return torch.stack([
        zeros.index_add(0, index[keep], confidence[keep]) / count,
        zeros.index_add(0, index[keep], correct[keep]) / count,
        count / len(confidence),
    ])


def reliability_bins__confidence_of_the_target(probs, targets, n_bins=10):
    """Bins by p(correct shift) instead of the probability of the model's own top choice."""
    probs = probs.double()
    confidence = probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    correct = (probs.argmax(-1) == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    return _bins(confidence, correct, index, n_bins)


def reliability_bins__upper_edge_dropped(probs, targets, n_bins=10):
    """Confidence exactly 1 falls outside the bins (index n_bins) and is dropped."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long()
    keep = index < n_bins
    return _bins(confidence, correct, index.clamp(max=n_bins - 1), n_bins, keep)


def reliability_bins__edges_to_lower_bin(probs, targets, n_bins=10):
    """Bins closed on the right: a confidence on an edge (0.5) goes into the bin below."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = ((confidence * n_bins).ceil().long() - 1).clamp(0, n_bins - 1)
    return _bins(confidence, correct, index, n_bins)


def reliability_bins__counts_not_shares(probs, targets, n_bins=10):
    """Third row: the number of predictions per bin instead of the share."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    table = _bins(confidence, correct, index, n_bins)
    table[2] = table[2] * len(confidence)
    return table


def reliability_bins__empty_bins_zero(probs, targets, n_bins=10):
    """Empty bins report confidence and accuracy 0 instead of NaN."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    return _bins(confidence, correct, index, n_bins).nan_to_num(0.0)


def reliability_bins__accuracy_of_all_predictions(probs, targets, n_bins=10):
    """Row 1 is the overall accuracy in every bin, not the accuracy of that bin's predictions."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    table = _bins(confidence, correct, index, n_bins)
    table[1] = torch.where(table[2] > 0, correct.mean(), torch.nan)
    return table
