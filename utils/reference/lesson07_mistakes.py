"""Plausible wrong answers to the exercises of notebook 07, one per catalogued `Mistake` (`<exercise>__<mistake>`).

tests/test_checks_lesson07.py shows that each check rejects each of them."""

from __future__ import annotations

import einops
import torch
from eindex import eindex

from ..causal import KV_HOOKS, SPACE
from . import lesson07 as ref
from . import lesson07_judgement as judged


# prefix_match_weights ----------------------------------------------------------------------------------------


def prefix_match_weights__not_normalised(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
    return same.to(word_probs.dtype) * word_probs[None, :]


def prefix_match_weights__ignores_word_probs(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1).to(word_probs.dtype)
    return same / same.sum(-1, keepdim=True)


def prefix_match_weights__normalised_over_wrong_axis(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
    weights = same.to(word_probs.dtype) * word_probs[None, :]
    return weights / weights.sum(0, keepdim=True)


def prefix_match_weights__matches_last_letters(word_toks, word_probs, n_keep):
    tail = word_toks[:, 3 - n_keep:]
    same = (tail[:, None] == tail[None, :]).all(-1).to(word_probs.dtype) * word_probs[None, :]
    return same / same.sum(-1, keepdim=True)


# source_tokens -----------------------------------------------------------------------------------------------


def _plain(words, word_toks, seq_len):
    letters = word_toks[words]
    space = torch.full((*words.shape, 1), SPACE, dtype=letters.dtype)
    return einops.rearrange(torch.cat([letters, space], -1), "b w c -> b (w c)")[:, :seq_len]


# run_with_patched_kv -----------------------------------------------------------------------------------------


def _where_hook(new, mask):
    keep = mask.bool().view(1, -1, 1, 1)
    return lambda act, hook: torch.where(keep, new, act)


def run_with_patched_kv__keys_only(model, toks, new_k, new_v, mask=None):
    mask = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(KV_HOOKS[0], _where_hook(new_k, mask))])


def run_with_patched_kv__layer_0(model, toks, new_k, new_v, mask=None):
    mask = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask
    hooks = [("blocks.0.attn.hook_k", _where_hook(new_k, mask)), ("blocks.0.attn.hook_v", _where_hook(new_v, mask))]
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=hooks)


def run_with_patched_kv__ignores_mask(model, toks, new_k, new_v, mask=None):
    return ref.run_with_patched_kv(model, toks, new_k, new_v, None)


def run_with_patched_kv__no_mask_patches_nothing(model, toks, new_k, new_v, mask=None):
    mask = torch.zeros(toks.shape[1], dtype=torch.bool) if mask is None else mask
    return ref.run_with_patched_kv(model, toks, new_k, new_v, mask)


def run_with_patched_kv__leaves_hooks(model, toks, new_k, new_v, mask=None):
    mask = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask
    model.add_hook(KV_HOOKS[0], _where_hook(new_k, mask))
    model.add_hook(KV_HOOKS[1], _where_hook(new_v, mask))
    with torch.inference_mode():
        return model(toks)


# scrub_loss_recovered ----------------------------------------------------------------------------------------


def _ce(logits, labels):
    return float(-eindex(logits.log_softmax(-1), labels, "batch seq [batch]").mean())


# ablated_query_logits ----------------------------------------------------------------------------------------


# word_rotation_probs -----------------------------------------------------------------------------------------


def _rotated_probs(model, word_toks, sign):
    shifts = torch.arange(26)
    rotated = (word_toks[:, None, :] + sign * shifts[None, :, None]) % 26
    with torch.inference_mode():
        logits = model(einops.rearrange(rotated, "w s c -> (w s) c"))
    return einops.rearrange(logits.softmax(-1), "(w s) p shift -> w s p shift", s=26), shifts


def word_rotation_probs__first_letter(model, word_toks):
    probs, shifts = _rotated_probs(model, word_toks, 1)
    return eindex(probs[:, :, 0], shifts, "w s [s]")


def word_rotation_probs__rotated_backwards(model, word_toks):
    probs, shifts = _rotated_probs(model, word_toks, -1)
    return eindex(probs[:, :, 2], shifts, "w s [s]")


def word_rotation_probs__logits_not_probs(model, word_toks):
    probs, shifts = _rotated_probs(model, word_toks, 1)
    return eindex(probs[:, :, 2].log(), shifts, "w s [s]")


def run_with_patched_kv__values_only(model, toks, new_k, new_v, mask=None):
    mask = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(KV_HOOKS[1], _where_hook(new_v, mask))])


def prefix_match_weights__excludes_itself(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1) & ~torch.eye(len(word_toks), dtype=torch.bool)
    w = same.to(word_probs.dtype) * word_probs[None]
    return (w / w.sum(-1, keepdim=True)).nan_to_num(0.0)




# difference_is_real(loss_a, loss_b) (a judgement exercise: the verdict and the error behind it) -----------------


def _verdict(difference: float, se: float, z: float = 2.0, signed: bool = False) -> dict:
    real = (difference if signed else abs(difference)) > z * se
    return {"difference": float(difference), "se": float(se), "real": bool(real)}


def _per_sequence(loss):
    return loss.double().mean(-1)


def difference_is_real__tokens_as_independent(loss_a, loss_b):
    per_token = (loss_a - loss_b).double().flatten()
    return _verdict(per_token.mean(), per_token.std() / per_token.numel() ** 0.5)


def difference_is_real__unpaired(loss_a, loss_b):
    a, b = _per_sequence(loss_a), _per_sequence(loss_b)
    n = len(a)
    return _verdict(a.mean() - b.mean(), (a.var() / n + b.var() / n) ** 0.5)


def difference_is_real__b_minus_a(loss_a, loss_b):
    return judged.difference_is_real(loss_b, loss_a)


def difference_is_real__signed_verdict(loss_a, loss_b):
    out = judged.difference_is_real(loss_a, loss_b)
    return _verdict(out["difference"], out["se"], signed=True)


def difference_is_real__one_se(loss_a, loss_b):
    out = judged.difference_is_real(loss_a, loss_b)
    return _verdict(out["difference"], out["se"], z=1.0)


def difference_is_real__sd_not_se(loss_a, loss_b):
    per_sequence = (_per_sequence(loss_a) - _per_sequence(loss_b))
    return _verdict(per_sequence.mean(), per_sequence.std())


# word_rotation_probs: more classes from the exercise text (issue 19)


def word_rotation_probs__second_letter(model, word_toks):
    probs, shifts = _rotated_probs(model, word_toks, 1)
    return eindex(probs[:, :, 1], shifts, "w s [s]")


def word_rotation_probs__raw_logits(model, word_toks):
    shifts = torch.arange(26)
    rotated = (word_toks[:, None, :] + shifts[None, :, None]) % 26
    with torch.inference_mode():
        logits = model(einops.rearrange(rotated, "w s c -> (w s) c"))
    logits = einops.rearrange(logits, "(w s) p shift -> w s p shift", s=26)
    return eindex(logits[:, :, 2], shifts, "w s [s]")


def word_rotation_probs__top_shift_prob(model, word_toks):
    probs, _ = _rotated_probs(model, word_toks, 1)
    return probs[:, :, 2].max(-1).values


def word_rotation_probs__float64(model, word_toks):
    return ref.word_rotation_probs(model, word_toks).double()


# prefix_match_weights, run_with_patched_kv: more classes from the exercise text (issue 19)


def _prefix_rows(same, word_probs):
    weights = same.to(word_probs.dtype) * word_probs[None, :]
    return weights / weights.sum(-1, keepdim=True)


def prefix_match_weights__one_letter_too_many(word_toks, word_probs, n_keep):
    k = n_keep + 1
    return _prefix_rows((word_toks[:, None, :k] == word_toks[None, :, :k]).all(-1), word_probs)


def prefix_match_weights__any_letter_matches(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).any(-1) | (n_keep == 0)
    return _prefix_rows(same, word_probs)


def prefix_match_weights__float32(word_toks, word_probs, n_keep):
    return ref.prefix_match_weights(word_toks, word_probs, n_keep).float()


def run_with_patched_kv__mask_inverted(model, toks, new_k, new_v, mask=None):
    mask = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask
    return ref.run_with_patched_kv(model, toks, new_k, new_v, ~mask.bool())


def run_with_patched_kv__keys_and_values_swapped(model, toks, new_k, new_v, mask=None):
    return ref.run_with_patched_kv(model, toks, new_v, new_k, mask)


def run_with_patched_kv__queries_patched(model, toks, new_k, new_v, mask=None):
    from ..causal import Q_HOOK

    mask = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask
    hooks = [(Q_HOOK, _where_hook(new_k, mask)), (KV_HOOKS[1], _where_hook(new_v, mask))]
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=hooks)


def prefix_match_weights__excludes_itself_nan(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1) & ~torch.eye(len(word_toks), dtype=torch.bool)
    return _prefix_rows(same, word_probs)


def prefix_match_weights__only_last_kept_letter(word_toks, word_probs, n_keep):
    if n_keep == 0:
        return ref.prefix_match_weights(word_toks, word_probs, n_keep)
    return _prefix_rows(word_toks[:, None, n_keep - 1] == word_toks[None, :, n_keep - 1], word_probs)


def word_rotation_probs__reads_shift_0(model, word_toks):
    probs, _ = _rotated_probs(model, word_toks, 1)
    return probs[:, :, 2, 0].contiguous()


def difference_is_real__positions_as_units(loss_a, loss_b):
    per_position = (loss_a - loss_b).double().mean(0)
    return _verdict(per_position.mean(), per_position.std() / len(per_position) ** 0.5)
