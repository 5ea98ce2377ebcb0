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


# words_shift_posterior(encoded_words, word_toks, word_probs)


def _word_likelihoods(encoded, word_toks, word_probs, sign=-1):
    """[shift n_words]: probability of each encoded word rotated by sign * shift."""
    plain = (encoded.unsqueeze(0) + sign * torch.arange(26).view(26, 1, 1)) % 26
    match = (plain.unsqueeze(2) == word_toks.view(1, 1, *word_toks.shape)).all(-1)
    return match.to(word_probs.dtype) @ word_probs


def _normalised(x):
    return x / x.sum()


def _part_scores(q, parts, key_scale, W_K, divide=True, sqrt=True):
    keys = einops.einsum(parts / key_scale if divide else parts, W_K, "p b s d, h d e -> p b h s e")
    scores = einops.einsum(q, keys, "b h q e, p b h s e -> p b h q s")
    return scores / W_K.shape[-1] ** 0.5 if sqrt else scores


# --- head_output_parts -------------------------------------------------------------------------------------------


def _outputs(parts, ln_scale, pattern, W_OV, divide=True):
    moved = einops.einsum(parts / ln_scale if divide else parts, W_OV, "p b s i, h i o -> p b h s o")
    return einops.einsum(pattern, moved, "b h d s, p b h s o -> p b h d o")


# --- catalogue grown from the classes of issue 19 ---
from . import lesson05 as ref  # noqa: E402


def ov_correct_logits__multiplies_final_scale(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ref.ov_correct_logits(resid, ln_scale, W_OV, W_U, final_scale, labels) * final_scale ** 2


# --- issue 19 (lessons 04-07): more classes from the exercise text ---


def ov_correct_logits__multiplies_ln_scale(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ref.ov_correct_logits(resid, 1 / ln_scale, W_OV, W_U, final_scale, labels)


def _scaled(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K) / W_Q.shape[-1] ** 0.5


def qk_pattern__diagonal_masked(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    scores = _scaled(q_resid, k_resid, W_Q, b_Q, W_K, b_K)
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril(-1)
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def qk_pattern__masked_after_softmax(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    pattern = _scaled(q_resid, k_resid, W_Q, b_Q, W_K, b_K).softmax(-1)
    return pattern * torch.ones(pattern.shape[-2:]).tril()


def qk_pattern__masked_with_zero(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    scores = _scaled(q_resid, k_resid, W_Q, b_Q, W_K, b_K)
    return scores.masked_fill(~torch.ones(scores.shape[-2:], dtype=torch.bool).tril(), 0.0).softmax(-1)


def ov_correct_logits__no_scales(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ref.ov_correct_logits(resid, torch.ones_like(ln_scale), W_OV, W_U, 1.0, labels)


def qk_pattern__scores_transposed(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    scores = _scaled(q_resid, k_resid, W_Q, b_Q, W_K, b_K).transpose(-1, -2)
    return _mask(scores).softmax(-1)


def qk_pattern__mask_transposed(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    scores = _scaled(q_resid, k_resid, W_Q, b_Q, W_K, b_K)
    return scores.masked_fill(~torch.ones(scores.shape[-2:], dtype=torch.bool).triu(), float("-inf")).softmax(-1)


def qk_pattern__divides_by_sqrt_d_model(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    scores = _scores(q_resid, k_resid, W_Q, b_Q, W_K, b_K) / W_Q.shape[1] ** 0.5
    return _mask(scores).softmax(-1)
