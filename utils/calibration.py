"""Calibration with honest errors (lesson 06): expected calibration error (ECE), its cluster-bootstrap standard
error (clusters = sequences: the 32 predictions of a window share its shift and its text, so they are not
independent), and the *floor*: the ECE a perfectly calibrated model would show on the same predictions from
sampling noise alone.

    tables = per_sequence_bins(probs, labels)          # [batch bin 3]: count, sum of confidence, sum of correct
    print(ece_estimate(tables))                        # "0.006 ± 0.002" (bootstrap over sequences)
    floor = ece_floor(probs)                           # mean and sd of the ECE of labels drawn from probs itself
"""

from __future__ import annotations

import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .stats import N_BOOT, Estimate, from_values


def per_sequence_bins(probs: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"], n_bins: int = 10
                      ) -> Float[Tensor, "batch bin 3"]:
    """For every sequence and confidence bin (equal width, the top bin holds 1.0): the number of its predictions in
    the bin, the sum of their confidence, the number whose top shift is the label (float64). Summing over sequences
    gives the reliability table; resampling sequences gives its cluster bootstrap."""
    confidence, top = probs.double().max(-1)  # [batch seq]
    correct = (top == labels.to(top.device).unsqueeze(1)).double()
    return _bin_sums(confidence, correct, n_bins)


def _bin_sums(confidence: Float[Tensor, "batch seq"], correct: Float[Tensor, "batch seq"], n_bins: int
              ) -> Float[Tensor, "batch bin 3"]:
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    one_hot = torch.nn.functional.one_hot(index, n_bins).double()  # [batch seq bin]
    return torch.stack([
        one_hot.sum(1),
        einops.einsum(one_hot, confidence, "batch seq bin, batch seq -> batch bin"),
        einops.einsum(one_hot, correct, "batch seq bin, batch seq -> batch bin"),
    ], dim=-1)


def ece_of_sums(sums: Float[Tensor, "... bin 3"]) -> Float[Tensor, "..."]:
    """ECE from summed bins: sum over bins of |sum correct - sum confidence| / total count (empty bins add 0)."""
    return (sums[..., 2] - sums[..., 1]).abs().sum(-1) / sums[..., 0].sum(-1)


def reliability_of_sums(sums: Float[Tensor, "bin 3"]) -> Float[Tensor, "3 bin"]:
    """[mean confidence, accuracy, share] per bin (NaN where empty), the layout of lesson 06's reliability table."""
    count = sums[:, 0]
    return torch.stack([sums[:, 1] / count, sums[:, 2] / count, count / count.sum()])


def cluster_bootstrap(per_seq: Float[Tensor, "batch bin 3"], n_boot: int = N_BOOT, seed: int = 0
                      ) -> Float[Tensor, "boot bin 3"]:
    """Summed bins of `n_boot` resamples of whole sequences (with replacement): one matrix product."""
    n = per_seq.shape[0]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    weights = torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(n_boot, n, dtype=torch.float64))
    return einops.einsum(weights, per_seq, "boot batch, batch bin k -> boot bin k")


def ece_estimate(per_seq: Float[Tensor, "batch bin 3"], n_boot: int = N_BOOT, seed: int = 0) -> Estimate:
    """ECE of all predictions, with its standard error from resampling whole sequences."""
    value = ece_of_sums(per_seq.sum(0)).item()
    boots = ece_of_sums(cluster_bootstrap(per_seq, n_boot, seed))
    return Estimate(value, boots.std().item(), "bootstrap over sequences", per_seq.shape[0])


def ece_difference(a: Float[Tensor, "batch bin 3"], b: Float[Tensor, "batch bin 3"], n_boot: int = N_BOOT,
                   seed: int = 0) -> Estimate:
    """ECE(a) - ECE(b) for two predictors on the same sequences, paired: one resample of sequences for both."""
    value = (ece_of_sums(a.sum(0)) - ece_of_sums(b.sum(0))).item()
    boots = ece_of_sums(cluster_bootstrap(a, n_boot, seed)) - ece_of_sums(cluster_bootstrap(b, n_boot, seed))
    return Estimate(value, boots.std().item(), "paired bootstrap over sequences", a.shape[0])


def bin_gap_estimates(per_seq: Float[Tensor, "batch bin 3"], n_boot: int = N_BOOT, seed: int = 0
                      ) -> list[Estimate | None]:
    """accuracy - confidence in each bin, with its cluster-bootstrap SE (None for an empty bin)."""
    def gap(s: Tensor) -> Tensor:
        return (s[..., 2] - s[..., 1]) / s[..., 0]

    value, boots = gap(per_seq.sum(0)), gap(cluster_bootstrap(per_seq, n_boot, seed))
    return [None if per_seq[:, i, 0].sum() == 0 else
            Estimate(value[i].item(), boots[:, i].nan_to_num(0.0).std().item(), "bootstrap over sequences", len(per_seq))
            for i in range(per_seq.shape[1])]


def ece_floor(probs: Float[Tensor, "batch seq 26"], n_draws: int = 200, n_bins: int = 10, seed: int = 0,
              shared_within_sequence: bool = False) -> Estimate:
    """The ECE of a perfectly calibrated model with these confidences: each prediction's top shift is declared
    correct with probability equal to its confidence (labels drawn from the model's own belief), so any ECE left
    is sampling noise. Returns mean ± sd over `n_draws` draws (kind: 'spread over draws'; the sd, not an SE, is the
    width of the noise). `shared_within_sequence`: one uniform draw per sequence for all its predictions (correct
    where u < confidence), the most correlated calibrated model, which mimics a window's shared shift."""
    confidence = probs.double().max(-1).values  # [batch seq]
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_draws):
        shape = (confidence.shape[0], 1) if shared_within_sequence else confidence.shape
        u = torch.rand(shape, generator=g, dtype=torch.float64)
        sums = _bin_sums(confidence, (u < confidence).double(), n_bins).sum(0)
        values.append(ece_of_sums(sums).item())
    v = torch.tensor(values)
    return Estimate(v.mean().item(), v.std().item(), "spread over draws", n_draws)


def se_if_independent(per_seq: Float[Tensor, "batch bin 3"]) -> float:
    """What the standard error of the ECE would be if the predictions were independent (binomial accuracy per bin):
    the naive error, for comparison with the cluster bootstrap."""
    sums = per_seq.sum(0)
    n, acc = sums[:, 0], sums[:, 2] / sums[:, 0].clamp(min=1)
    share = n / n.sum()
    var = (share**2 * acc * (1 - acc) / n.clamp(min=1)).sum().item()
    return math.sqrt(var)


__all__ = ["per_sequence_bins", "ece_of_sums", "reliability_of_sums", "cluster_bootstrap", "ece_estimate",
           "ece_difference", "bin_gap_estimates", "ece_floor", "se_if_independent", "from_values"]
