"""Plausible wrong answers to the lesson-05 exercises, one function `<exercise>__<mistake>` per catalogued
`Mistake` (utils/checks/lesson05.py). The checks run them to name a learner's mistake; tests/ runs them to show
that each is rejected and named. Never shipped to a learner's sandbox."""

from __future__ import annotations

import einops
import torch

from ..circuits import kcomp_positional_output, ov_correct_logits, qk_pattern, qk_pattern_key_scale


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


# kcomp_positional_output(W_pos, scale0, W_OV0, pattern0)


def kcomp_positional_output__no_scale(W_pos, scale0, W_OV0, pattern0):
    return kcomp_positional_output(W_pos, torch.ones_like(scale0), W_OV0, pattern0)


def kcomp_positional_output__multiplies_by_scale(W_pos, scale0, W_OV0, pattern0):
    return kcomp_positional_output(W_pos, 1 / scale0, W_OV0, pattern0)


def kcomp_positional_output__transposed_pattern(W_pos, scale0, W_OV0, pattern0):
    return kcomp_positional_output(W_pos, scale0, W_OV0, pattern0.transpose(-1, -2))


def kcomp_positional_output__ignores_pattern(W_pos, scale0, W_OV0, pattern0):
    return kcomp_positional_output(W_pos, scale0, W_OV0, torch.eye(pattern0.shape[-1]).expand_as(pattern0))


def kcomp_positional_output__mean_over_heads(W_pos, scale0, W_OV0, pattern0):
    return kcomp_positional_output(W_pos, scale0, W_OV0, pattern0) / W_OV0.shape[0]


# qk_pattern_key_scale(resid, scale, key_scale, W_Q, b_Q, W_K, b_K)


def qk_pattern_key_scale__scales_queries_too(resid, scale, key_scale, *weights):
    return qk_pattern_key_scale(resid, key_scale, key_scale, *weights)


def qk_pattern_key_scale__ignores_key_scale(resid, scale, key_scale, *weights):
    return qk_pattern_key_scale(resid, scale, scale, *weights)


def qk_pattern_key_scale__swapped_scales(resid, scale, key_scale, *weights):
    return qk_pattern_key_scale(resid, key_scale, scale, *weights)


def qk_pattern_key_scale__no_mask(resid, scale, key_scale, W_Q, b_Q, W_K, b_K):
    q = einops.einsum(resid / scale, W_Q, "b s d, h d e -> b h s e") + b_Q[:, None]
    k = einops.einsum(resid / key_scale, W_K, "b s d, h d e -> b h s e") + b_K[:, None]
    return (einops.einsum(q, k, "b h q e, b h k e -> b h q k") / W_Q.shape[-1] ** 0.5).softmax(-1)


# words_shift_posterior(encoded_words, word_toks, word_probs)


def _word_likelihoods(encoded, word_toks, word_probs, sign=-1):
    """[shift n_words]: probability of each encoded word rotated by sign * shift."""
    plain = (encoded.unsqueeze(0) + sign * torch.arange(26).view(26, 1, 1)) % 26
    match = (plain.unsqueeze(2) == word_toks.view(1, 1, *word_toks.shape)).all(-1)
    return match.to(word_probs.dtype) @ word_probs


def _normalised(x):
    return x / x.sum()


def words_shift_posterior__sums_over_words(encoded_words, word_toks, word_probs):
    return _normalised(_word_likelihoods(encoded_words, word_toks, word_probs).sum(-1))


def words_shift_posterior__mean_over_words(encoded_words, word_toks, word_probs):
    return _word_likelihoods(encoded_words, word_toks, word_probs).log().mean(-1).softmax(-1)


def words_shift_posterior__rotates_forward(encoded_words, word_toks, word_probs):
    return _normalised(_word_likelihoods(encoded_words, word_toks, word_probs, sign=+1).prod(-1))


def words_shift_posterior__ignores_word_frequencies(encoded_words, word_toks, word_probs):
    return _normalised(_word_likelihoods(encoded_words, word_toks, torch.ones_like(word_probs)).prod(-1))


def words_shift_posterior__unnormalised(encoded_words, word_toks, word_probs):
    return _word_likelihoods(encoded_words, word_toks, word_probs).prod(-1)


def words_shift_posterior__float32(encoded_words, word_toks, word_probs):
    return _normalised(_word_likelihoods(encoded_words, word_toks, word_probs.float()).prod(-1))


import einops
import torch

# --- key_score_components ----------------------------------------------------------------------------------------


def _part_scores(q, parts, key_scale, W_K, divide=True, sqrt=True):
    keys = einops.einsum(parts / key_scale if divide else parts, W_K, "p b s d, h d e -> p b h s e")
    scores = einops.einsum(q, keys, "b h q e, p b h s e -> p b h q s")
    return scores / W_K.shape[-1] ** 0.5 if sqrt else scores


def key_score_components__no_key_scale(q, parts, key_scale, W_K):
    return _part_scores(q, parts, key_scale, W_K, divide=False)


def key_score_components__no_sqrt_d_head(q, parts, key_scale, W_K):
    return _part_scores(q, parts, key_scale, W_K, sqrt=False)


def key_score_components__dest_src_swapped(q, parts, key_scale, W_K):
    return _part_scores(q, parts, key_scale, W_K).transpose(-1, -2)


def key_score_components__causal_mask(q, parts, key_scale, W_K):
    scores = _part_scores(q, parts, key_scale, W_K)
    future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf"))


def key_score_components__summed_over_parts(q, parts, key_scale, W_K):
    return _part_scores(q, parts, key_scale, W_K).sum(0, keepdim=True).expand(parts.shape[0], -1, -1, -1, -1)


# --- head_output_parts -------------------------------------------------------------------------------------------


def _outputs(parts, ln_scale, pattern, W_OV, divide=True):
    moved = einops.einsum(parts / ln_scale if divide else parts, W_OV, "p b s i, h i o -> p b h s o")
    return einops.einsum(pattern, moved, "b h d s, p b h s o -> p b h d o")


def head_output_parts__no_ln_scale(parts, ln_scale, pattern, W_OV):
    return _outputs(parts, ln_scale, pattern, W_OV, divide=False)


def head_output_parts__pattern_transposed(parts, ln_scale, pattern, W_OV):
    return _outputs(parts, ln_scale, pattern.transpose(-1, -2), W_OV)


def head_output_parts__W_OV_transposed(parts, ln_scale, pattern, W_OV):
    return _outputs(parts, ln_scale, pattern, W_OV.transpose(-1, -2))


def head_output_parts__scale_at_destination(parts, ln_scale, pattern, W_OV):
    out = _outputs(parts, torch.ones_like(ln_scale), pattern, W_OV)  # [p b h d o]
    return out / ln_scale.view(1, ln_scale.shape[0], 1, ln_scale.shape[1], 1)


# --- catalogue grown from the classes of issue 19 ---
from . import lesson05 as ref  # noqa: E402


def ov_correct_logits__multiplies_final_scale(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return ref.ov_correct_logits(resid, ln_scale, W_OV, W_U, final_scale, labels) * final_scale ** 2


def words_shift_posterior__weakest_word(encoded_words, word_toks, word_probs):
    lik = _word_likelihoods(encoded_words, word_toks, word_probs).min(-1).values
    return lik / lik.sum()


def words_shift_posterior__last_word_only(encoded_words, word_toks, word_probs):
    return ref.words_shift_posterior(encoded_words[-1:], word_toks, word_probs)


def key_score_components__scaled_by_d_model(q, parts, key_scale, W_K):
    return ref.key_score_components(q, parts, key_scale, W_K) * (q.shape[-1] ** 0.5) / (W_K.shape[1] ** 0.5)
