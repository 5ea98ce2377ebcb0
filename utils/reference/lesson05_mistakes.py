"""Plausible wrong answers to the lesson-05 exercises, one function `<exercise>__<mistake>` per catalogued
`Mistake` (utils/checks/lesson05.py). The checks run them to name a learner's mistake; tests/ runs them to show
that each is rejected and named. Never shipped to a learner's sandbox."""

from __future__ import annotations

import einops
import torch

from ..circuits import ov_correct_logits, qk_pattern


# ov_correct_logits(resid, ln_scale, W_OV, W_U, final_scale, labels)


def ov_correct_logits__no_ln_scale(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ov_correct_logits(resid, torch.ones_like(ln_scale), W_OV, W_U, final_scale, labels)


def ov_correct_logits__no_final_scale(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ov_correct_logits(resid, ln_scale, W_OV, W_U, 1.0, labels)


def ov_correct_logits__transposed_W_OV(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ov_correct_logits(resid, ln_scale, W_OV.transpose(-1, -2), W_U, final_scale, labels)


def ov_correct_logits__max_logit(resid, ln_scale, W_OV, W_U, final_scale, labels):
    out = einops.einsum(resid / ln_scale, W_OV, "b p d, h d e -> h b p e") / final_scale @ W_U
    return out.max(-1).values


# qk_pattern(q_resid, k_resid, W_Q, b_Q, W_K, b_K)


def _scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    q = einops.einsum(q_resid, W_Q, "q d, h d e -> h q e") + b_Q[:, None]
    k = einops.einsum(k_resid, W_K, "k d, h d e -> h k e") + b_K[:, None]
    return einops.einsum(q, k, "h q e, h k e -> h q k")


def _mask(scores):
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf"))


def qk_pattern__no_mask(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return (_scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K) / W_Q.shape[-1] ** 0.5).softmax(-1)


def qk_pattern__no_scaling(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _mask(_scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K)).softmax(-1)


def qk_pattern__divides_by_d_head(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _mask(_scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K) / W_Q.shape[-1]).softmax(-1)


def qk_pattern__no_biases(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return qk_pattern(q_resid, k_resid, W_Q, 0 * b_Q, W_K, 0 * b_K)


def qk_pattern__softmax_over_destinations(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    scores = _mask(_scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K) / W_Q.shape[-1] ** 0.5)
    return scores.softmax(-2).nan_to_num()
