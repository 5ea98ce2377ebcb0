"""Plausible wrong answers to the exercises of notebook 03, one function per catalogued mistake
(`<exercise>__<mistake>`, see `utils.checks.core.Mistake`). The checks' diagnosis and `tests/` use the same ones."""

from __future__ import annotations

import einops
import torch
from eindex import eindex

from ..analysis import word_tokens
from . import lesson03 as ref


# first_char_probs -------------------------------------------------------------------------------------------------
@torch.inference_mode()
def first_char_probs__logits(model):
    return model(torch.arange(26, device=model.cfg.device)[:, None])[:, 0].cpu()


@torch.inference_mode()
def first_char_probs__log_probs(model):
    return model(torch.arange(26, device=model.cfg.device)[:, None])[:, 0].log_softmax(-1).cpu()


@torch.inference_mode()
def first_char_probs__softmax_over_characters(model):
    return model(torch.arange(26, device=model.cfg.device)[:, None])[:, 0].softmax(0).cpu()


@torch.inference_mode()
def first_char_probs__transposed(model):
    return ref.first_char_probs(model).T.contiguous()


@torch.inference_mode()
def first_char_probs__one_sequence(model):  # the 26 letters read as one sequence: position j sees letters 0..j
    return model(torch.arange(26, device=model.cfg.device)[None, :])[0].softmax(-1).cpu()


# letter_freqs_by_position -----------------------------------------------------------------------------------------
def letter_freqs_by_position__counts_words(words_freq):
    return ref.letter_freqs_by_position([(w, 1.0) for w, _ in words_freq])


def letter_freqs_by_position__unnormalised(words_freq):
    freqs = torch.zeros(3, 26, dtype=torch.float64)
    for word, f in words_freq:
        for j, c in enumerate(word):
            freqs[j, ord(c) - 97] += f
    return freqs


def letter_freqs_by_position__float32(words_freq):
    return ref.letter_freqs_by_position(words_freq).float()


def letter_freqs_by_position__transposed(words_freq):
    return ref.letter_freqs_by_position(words_freq).T.contiguous()


# implied_first_letter_probs ---------------------------------------------------------------------------------------
def implied_first_letter_probs__wrong_sign(probs):
    c = torch.arange(26)[:, None]
    return probs[c, (torch.arange(26) - c) % 26].mean(0)


def implied_first_letter_probs__no_realignment(probs):
    return probs.mean(0)


def implied_first_letter_probs__sum_not_mean(probs):
    return ref.implied_first_letter_probs(probs) * 26


def implied_first_letter_probs__float32_always(probs):
    return ref.implied_first_letter_probs(probs).float()


def implied_first_letter_probs__in_place(probs):  # right values, but the learner's table is overwritten
    c = torch.arange(26)[:, None]
    probs.copy_(probs[c, (c - torch.arange(26)) % 26])
    return probs.mean(0)


# rotated_word_tokens ----------------------------------------------------------------------------------------------
def rotated_word_tokens__shift_major(word_list):
    toks, shifts = ref.rotated_word_tokens(word_list)
    n = len(word_list)
    order = torch.arange(n * 26).view(n, 26).T.reshape(-1)
    return toks[order], shifts[order]


def rotated_word_tokens__shifts_in_word_order(word_list):
    toks, _ = ref.rotated_word_tokens(word_list)
    return toks, torch.arange(26).repeat_interleave(len(word_list))


def rotated_word_tokens__backwards(word_list):
    toks = word_tokens(list(word_list))
    rotated = (toks[:, None, :] - torch.arange(26)[None, :, None]) % 26
    return einops.rearrange(rotated, "w r l -> (w r) l"), einops.repeat(torch.arange(26), "r -> (w r)", w=len(word_list))


def rotated_word_tokens__int32(word_list):
    toks, shifts = ref.rotated_word_tokens(word_list)
    return toks.int(), shifts.int()


# rotation_averaged_probs ------------------------------------------------------------------------------------------
@torch.inference_mode()
def rotation_averaged_probs__log_probs(model, toks, shifts):
    lp = model(toks.to(model.cfg.device)).log_softmax(-1).cpu()
    return einops.reduce(eindex(lp, shifts.cpu(), "n seq [n]"), "(word rot) seq -> word seq", "mean", rot=26)


@torch.inference_mode()
def rotation_averaged_probs__rot_word_grouping(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()
    return einops.reduce(eindex(probs, shifts.cpu(), "n seq [n]"), "(rot word) seq -> word seq", "mean", rot=26)


@torch.inference_mode()
def rotation_averaged_probs__top_prob(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()
    return einops.reduce(probs.max(-1).values, "(word rot) seq -> word seq", "mean", rot=26)


@torch.inference_mode()
def rotation_averaged_probs__shift_zero(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()
    return einops.reduce(probs[..., 0], "(word rot) seq -> word seq", "mean", rot=26)


# independent_evidence_probs ---------------------------------------------------------------------------------------
def _decoded(word_list, sign=-1):
    toks = word_tokens(list(word_list))
    return (toks[:, :, None] + sign * torch.arange(26)) % 26  # [word pos shift]


def independent_evidence_probs__no_cumsum(word_list, letter_freqs):
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), _decoded(word_list)]
    return ev.softmax(-1)[..., 0]


def independent_evidence_probs__first_letter_freqs(word_list, letter_freqs):
    ev = letter_freqs.double().log()[0][_decoded(word_list)]
    return ev.cumsum(1).softmax(-1)[..., 0]


def independent_evidence_probs__sum_of_freqs(word_list, letter_freqs):
    ev = letter_freqs.double()[torch.arange(3).view(1, 3, 1), _decoded(word_list)].cumsum(1)
    return (ev / ev.sum(-1, keepdim=True))[..., 0]


def rotated_word_tokens__shifts_negated(words):
    toks, shifts = ref.rotated_word_tokens(words)
    return toks, (-shifts) % 26


# more plausible mistakes of implied_first_letter_probs and independent_evidence_probs ------------------------------
def implied_first_letter_probs__c_plus_L(probs):  # column c + L: the shift that encodes c as L, not L as c
    c = torch.arange(26)[:, None]
    return probs[c, (c + torch.arange(26)) % 26].mean(0)


def implied_first_letter_probs__mean_over_letters(probs):  # each re-indexed row averaged, not the 26 rows
    c = torch.arange(26)[:, None]
    return probs[c, (c - torch.arange(26)) % 26].mean(1)


def independent_evidence_probs__mean_of_evidence(word_list, letter_freqs):  # the log-likelihoods averaged
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), _decoded(word_list)]
    return (ev.cumsum(1) / torch.arange(1, 4, dtype=torch.float64).view(1, 3, 1)).softmax(-1)[..., 0]


def independent_evidence_probs__unnormalised(word_list, letter_freqs):  # the likelihood of shift 0 alone
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), _decoded(word_list)]
    return ev.cumsum(1)[..., 0].exp()


@torch.inference_mode()
def rotation_averaged_probs__softmax_over_positions(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(1).cpu()
    return einops.reduce(eindex(probs, shifts.cpu(), "n seq [n]"), "(word rot) seq -> word seq", "mean", rot=26)


def independent_evidence_probs__softmax_over_positions(word_list, letter_freqs):
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), _decoded(word_list)]
    return ev.cumsum(1).softmax(1)[..., 0]


def rotated_word_tokens__no_modulo(words):  # the shift added without wrapping: ids above 25
    toks = word_tokens(list(words))
    rot = toks[:, None, :] + torch.arange(26)[None, :, None]
    return einops.rearrange(rot, "w r l -> (w r) l"), einops.repeat(torch.arange(26), "r -> (w r)", w=len(words))


def rotated_word_tokens__shifts_from_1(words):  # shifts 1..26 instead of 0..25
    toks = word_tokens(list(words))
    s = torch.arange(1, 27)
    rot = (toks[:, None, :] + s[None, :, None]) % 26
    return einops.rearrange(rot, "w r l -> (w r) l"), einops.repeat(s, "r -> (w r)", w=len(words))


# below_bayes_verdict (a judgement: named where the check's own comparison cannot tell the answer from these) ---------
def below_bayes_verdict__unpaired(model_p, bayes_p):  # the two means' errors combined as if independent
    m, b = model_p.double(), bayes_p.double()
    diff, se = float(m.mean() - b.mean()), float((m.var() / len(m) + b.var() / len(b)).sqrt())
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}


def below_bayes_verdict__sign_reversed(model_p, bayes_p):  # Bayes minus model
    d = (bayes_p - model_p).double()
    diff, se = float(d.mean()), float(d.std() / len(d) ** 0.5)
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}
