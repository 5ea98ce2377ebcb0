"""Scoring a model (or any predictor) on a dataset: cross-entropy and p(correct), overall and per position."""

from __future__ import annotations

import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .data import CodeBreakingDataset


@torch.inference_mode()
def model_logprobs(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"], batch_size: int = 2000
) -> Float[Tensor, "batch seq 26"]:
    """Log-probs over the 26 shifts at every position, computed in chunks to bound memory."""
    device = model.cfg.device
    chunks = [model(toks[i : i + batch_size].to(device)).log_softmax(-1).cpu() for i in range(0, len(toks), batch_size)]
    return torch.cat(chunks)


def correct_logprobs(
    logprobs: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]
) -> Float[Tensor, "batch seq"]:
    """logprobs[b, s, labels[b]] for every sequence b and position s."""
    return eindex(logprobs, labels.to(logprobs.device), "batch seq [batch]")


def summarize(logprobs_correct: Float[Tensor, "batch seq"]) -> dict[str, float | list[float]]:
    """CE, mean/median/min p(correct), and CE and mean p(correct) by position."""
    lp = logprobs_correct.double()
    p = lp.exp()
    return {
        "ce": -lp.mean().item(),
        "mean_p": p.mean().item(),
        "median_p": p.median().item(),
        "min_p": p.min().item(),
        "ce_by_pos": (-lp.mean(0)).tolist(),
        "mean_p_by_pos": p.mean(0).tolist(),
    }


def evaluate(model: HookedTransformer, dataset: CodeBreakingDataset) -> dict[str, float | list[float]]:
    """Summary figures of `model` on `dataset` (see `summarize`)."""
    return summarize(correct_logprobs(model_logprobs(model, dataset.toks), dataset.labels.cpu()))
