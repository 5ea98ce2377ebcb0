"""A second held-out batch, written after the catalogues were grown from heldout.py and never used to grow them:
the honest estimate of how many plausible wrong answers are named (`python -m tests.mutants.measure2`)."""

from __future__ import annotations

import string

import einops
import torch
from eindex import eindex

from utils.reference import lesson01 as r1, lesson02 as r2, lesson04 as r4, lesson05 as r5, lesson06 as r6, lesson07 as r7

from .heldout import wrong as _wrong

LOW = string.ascii_lowercase
WRONG: list = []


def wrong(exercise, causes=()):
    def add(fn):
        WRONG.append((exercise, fn.__name__, fn, tuple(causes)))
        return fn
    return add


@wrong("rotate_text")
def rot_upper_wraps_into_lower(text, shift):  # one alphabet for both cases: capitals come back lower-case
    return "".join(LOW[(LOW.index(c.lower()) + shift) % 26] if c.lower() in LOW and c.isascii() else c for c in text)


@wrong("rotate_text")
def rot_only_lower(text, shift):
    return "".join(LOW[(LOW.index(c) + shift) % 26] if c in LOW else c for c in text)


@wrong("tokenize")
def tok_strip(text, mode):
    return r1.tokenize(text.strip(), mode)


@wrong("tokenize")
def tok_int32_empty(text, mode):
    return r1.tokenize(text, mode).to(torch.int32)


@wrong("encode_tokens")
def enc_minus(plain_toks, shifts):
    return torch.where(plain_toks < 26, (plain_toks - shifts[:, None]) % 26, plain_toks)


@wrong("word_probabilities")
def wp_no_double(counts, mode):
    w = counts if mode == "easy" else torch.ones_like(counts)
    return w / w.sum()


@wrong("rotation_twins")
def twins_unsorted_inside(words):
    groups = {}
    for w in words:
        groups.setdefault(tuple((LOW.index(c) - LOW.index(w[0])) % 26 for c in w), []).append(w)
    return sorted(g for g in groups.values() if len(g) > 1)


@wrong("correct_logprobs")
def clp_transposed(logprobs, labels):
    return eindex(logprobs, labels, "batch seq [batch]").T


@wrong("summary_stats")
def ss_max(lp):
    return {**r2.summary_stats(lp), "min_p": lp.exp().max().item()}


@wrong("summary_stats")
def ss_ce_positive_mean(lp):
    return {**r2.summary_stats(lp), "ce": lp.mean().item()}


@wrong("first_word_posterior")
def fwp_unnorm(toks, words_freq):
    lp = r2.first_word_posterior(toks, words_freq)
    return lp + 1.0


@wrong("loss_per_position")
def lpp_sum_batch(logits, labels):
    return -eindex(logits.log_softmax(-1), labels, "b s [b]").sum(0)


@wrong("dla_correct")
def dla_no_scale(components, scale, W_U, labels):
    c = components - components.mean(1, keepdim=True)
    return eindex(c @ W_U, labels, "c b s [b]")


@wrong("dla_margin")
def dlam_flip(components, scale, W_U, logits, labels):
    return -r4.dla_margin(components, scale, W_U, logits, labels)


@wrong("ov_correct_logits")
def ov_max(resid, ln_scale, W_OV, W_U, final_scale, labels):
    out = einops.einsum(resid / ln_scale, W_OV, "b s d, h d e -> h b s e") / final_scale @ W_U
    return out.max(-1).values


@wrong("qk_pattern")
def qk_no_bias(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return r5.qk_pattern(q_resid, k_resid, W_Q, torch.zeros_like(b_Q), W_K, torch.zeros_like(b_K))


@wrong("words_shift_posterior")
def wsp_forward(encoded_words, word_toks, word_probs):
    return r5.words_shift_posterior(encoded_words, word_toks, word_probs).roll(0).flip(0).roll(1)


@wrong("words_shift_posterior")
def wsp_sum(encoded_words, word_toks, word_probs):
    shifts = torch.arange(26).view(26, 1, 1)
    match = (((encoded_words.unsqueeze(0) - shifts) % 26)[:, :, None] == word_toks[None, None]).all(-1)
    lik = (match.to(word_probs.dtype) @ word_probs).sum(-1)
    return lik / lik.sum()


@wrong("shift_entropy")
def ent_log10(logprobs):
    p = logprobs.exp()
    return -(p * logprobs / torch.log(torch.tensor(10.0, dtype=logprobs.dtype))).nan_to_num(0.0).sum(-1)


@wrong("baseline_loss_gap")
def gap_sum(model_logprobs, baseline_logprobs, labels):
    return r6.baseline_loss_gap(model_logprobs, baseline_logprobs, labels) * model_logprobs.shape[0]


@wrong("nonletter_attention_share")
def nls_letters(pattern, toks):
    letters = (toks < 26).to(pattern.dtype)
    return einops.einsum(pattern, letters, "b h d s, b s -> b h d").mean((0, 2))


@wrong("prefix_match_weights")
def pmw_no_norm(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
    return same.to(word_probs.dtype) * word_probs[None]


@wrong("scrub_loss_recovered")
def slr_inverse(logits_clean, logits_scrub, logits_control, labels):
    return 1 / r7.scrub_loss_recovered(logits_clean, logits_scrub, logits_control, labels)


@wrong("run_with_patched_kv")
def kv_all(model, toks, new_k, new_v, mask=None):
    return r7.run_with_patched_kv(model, toks, new_k, new_v, None)


@wrong("word_rotation_probs")
def wrp_first(model, word_toks):
    shifts = torch.arange(26)
    toks = (word_toks[:, None] + shifts[None, :, None]) % 26
    with torch.inference_mode():
        probs = model(einops.rearrange(toks, "w s l -> (w s) l")).softmax(-1)[:, 0]
    return eindex(einops.rearrange(probs, "(w s) k -> w s k", s=26), einops.repeat(shifts, "s -> w s", w=len(word_toks)), "w s [w s]")
