"""Plausible wrong answers to lesson 05's exercises, one function `<exercise>__<mistake>` per `Mistake` registered in
utils/checks/lesson05.py. Tests import them to show that each check rejects each one."""

from __future__ import annotations

import einops
import torch

# --- key_score_components ----------------------------------------------------------------------------------------


def _scores(q, parts, key_scale, W_K, divide=True, sqrt=True):
    keys = einops.einsum(parts / key_scale if divide else parts, W_K, "p b s d, h d e -> p b h s e")
    scores = einops.einsum(q, keys, "b h q e, p b h s e -> p b h q s")
    return scores / W_K.shape[-1] ** 0.5 if sqrt else scores


def key_score_components__no_key_scale(q, parts, key_scale, W_K):
    return _scores(q, parts, key_scale, W_K, divide=False)


def key_score_components__no_sqrt_d_head(q, parts, key_scale, W_K):
    return _scores(q, parts, key_scale, W_K, sqrt=False)


def key_score_components__dest_src_swapped(q, parts, key_scale, W_K):
    return _scores(q, parts, key_scale, W_K).transpose(-1, -2)


def key_score_components__causal_mask(q, parts, key_scale, W_K):
    scores = _scores(q, parts, key_scale, W_K)
    future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf"))


def key_score_components__summed_over_parts(q, parts, key_scale, W_K):
    return _scores(q, parts, key_scale, W_K).sum(0, keepdim=True).expand(parts.shape[0], -1, -1, -1, -1)


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
