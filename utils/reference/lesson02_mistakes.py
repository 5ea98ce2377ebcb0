"""Plausible wrong answers to the exercises of notebook 02, one function per catalogued mistake
(`<exercise>__<mistake>`, see `utils.checks.core.Mistake`). The checks' diagnosis and `tests/` use the same ones."""

from __future__ import annotations

import dataclasses
import warnings

import torch
from transformer_lens import HookedTransformer

from ..model import weights_path
from . import lesson02 as ref


def _cfg(mode, **changes):
    cfg = ref.make_config(mode)
    return dataclasses.replace(cfg, **changes) if changes else cfg


# make_config ------------------------------------------------------------------------------------------------------
def make_config__hard_vocab_always(mode):
    return _cfg("hard")


def make_config__output_is_input_vocab(mode):
    cfg = ref.make_config(mode)
    return _cfg(mode, d_vocab_out=cfg.d_vocab)


def make_config__d_head_is_d_model(mode):
    return _cfg(mode, d_head=48)


def make_config__bidirectional(mode):
    return _cfg(mode, attention_dir="bidirectional")


def make_config__no_seed(mode):
    return _cfg(mode, seed=None)


# load_trained_model -----------------------------------------------------------------------------------------------
def _load(mode, device="cpu", eval_mode=True, **flags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(ref.make_config(mode))
    state_dict = torch.load(weights_path(mode), map_location="cpu", weights_only=True)
    steps = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
    model.load_and_process_state_dict(state_dict, **{**steps, **flags})
    model = model.to(device, print_details=False)
    return model.eval() if eval_mode else model


def load_trained_model__no_center_unembed(mode, device="cpu"):
    return _load(mode, device, center_unembed=False)


def load_trained_model__no_fold_ln(mode, device="cpu"):
    return _load(mode, device, fold_ln=False)


def load_trained_model__no_fold_value_biases(mode, device="cpu"):
    return _load(mode, device, fold_value_biases=False)


def load_trained_model__unprocessed(mode, device="cpu"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(ref.make_config(mode))
    model.load_state_dict(torch.load(weights_path(mode), map_location="cpu", weights_only=True), strict=False)
    return model.to(device, print_details=False).eval()


def load_trained_model__no_eval(mode, device="cpu"):
    return _load(mode, device, eval_mode=False).train()


def load_trained_model__ignores_device(mode, device="cpu"):
    return _load(mode, "cpu")


def load_trained_model__easy_weights_always(mode, device="cpu"):
    return _load("easy" if mode != "hard" else "hard", device)


# rebuild_b_O ------------------------------------------------------------------------------------------------------
def rebuild_b_O__no_ln_bias(state_dict, layer):
    p = f"blocks.{layer}"
    b_O = state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", state_dict[f"{p}.attn.b_V"], state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()


def rebuild_b_O__not_centred(state_dict, layer):
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    return state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])


def rebuild_b_O__without_trained_b_O(state_dict, layer):
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    b_O = torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()


def rebuild_b_O__ln_weight_not_bias(state_dict, layer):
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.w"], state_dict[f"{p}.attn.W_V"])
    b_O = state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()


def rebuild_b_O__in_place(state_dict, layer):  # right values, but the trained b_O in the state dict is overwritten
    out = ref.rebuild_b_O(state_dict, layer)
    state_dict[f"blocks.{layer}.attn.b_O"].copy_(out)
    return state_dict[f"blocks.{layer}.attn.b_O"]


# correct_logprobs -------------------------------------------------------------------------------------------------
def correct_logprobs__probabilities(logprobs, labels):
    return ref.correct_logprobs(logprobs, labels).exp()


def correct_logprobs__whole_label_table(logprobs, labels):
    return logprobs[:, :, labels]


def correct_logprobs__loss(logprobs, labels):
    return -ref.correct_logprobs(logprobs, labels)


def correct_logprobs__to_float64(logprobs, labels):
    return ref.correct_logprobs(logprobs, labels).double()


# summary_stats ----------------------------------------------------------------------------------------------------
def summary_stats__tensors(logprobs_correct):
    probs = logprobs_correct.exp()
    return {"ce": -logprobs_correct.mean(), "mean_p": probs.mean(), "median_p": probs.median(), "min_p": probs.min()}


def summary_stats__ce_sign(logprobs_correct):
    return {**ref.summary_stats(logprobs_correct), "ce": logprobs_correct.mean().item()}


def summary_stats__mean_p_from_ce(logprobs_correct):
    out = ref.summary_stats(logprobs_correct)
    return {**out, "mean_p": torch.tensor(-out["ce"]).exp().item()}


def summary_stats__max_not_min(logprobs_correct):
    return {**ref.summary_stats(logprobs_correct), "min_p": logprobs_correct.exp().max().item()}


# first_word_posterior ---------------------------------------------------------------------------------------------
def first_word_posterior__independent_letters(toks, words_freq):
    freqs = torch.zeros(3, 26, dtype=torch.float64)
    for word, f in words_freq:
        for j, c in enumerate(word):
            freqs[j, ord(c) - 97] += f
    plain = (toks.cpu()[None, :] - torch.arange(26)[:, None]) % 26  # [shift 3]
    evidence = freqs.log()[torch.arange(3), plain].cumsum(-1)  # [shift 3]
    return evidence.T.log_softmax(-1)


def first_word_posterior__probabilities(toks, words_freq):
    return ref.first_word_posterior(toks, words_freq).exp()


def first_word_posterior__float32(toks, words_freq):
    return ref.first_word_posterior(toks, words_freq).float()


def first_word_posterior__unnormalised(toks, words_freq):
    post = ref.first_word_posterior(toks, words_freq).exp()
    plain = (toks.cpu()[None, :] - torch.arange(26)[:, None]) % 26
    likelihood = torch.zeros(3, 26, dtype=torch.float64)
    for word, f in words_freq:
        w = torch.tensor([ord(c) - 97 for c in word])
        likelihood += f * torch.cumprod((plain == w).long(), dim=1).T
    return likelihood.log() + 0 * post


def first_word_posterior__last_letter_only(toks, words_freq):
    plain = (toks.cpu()[None, :] - torch.arange(26)[:, None]) % 26
    likelihood = torch.zeros(3, 26, dtype=torch.float64)
    for word, f in words_freq:
        w = torch.tensor([ord(c) - 97 for c in word])
        likelihood += f * (plain == w).long().T
    return (likelihood / likelihood.sum(-1, keepdim=True)).log()


def make_config__other_normalization(mode):
    return _cfg(mode, normalization_type='RMS')


def correct_logprobs__first_label_for_all(logprobs, labels):
    return logprobs[:, :, labels[0]]


def summary_stats__ce_from_mean_p(lp):
    import math
    out = ref.summary_stats(lp)
    return {**out, 'ce': -math.log(out['mean_p'])}


def summary_stats__min_of_logprobs(lp):
    out = ref.summary_stats(lp)
    return {**out, 'min_p': lp.min().item()}


def first_word_posterior__ignores_frequencies(toks, words_freq):
    return ref.first_word_posterior(toks, [(w, 1.0) for w, _ in words_freq])


def correct_logprobs__transposed(logprobs, labels):
    return ref.correct_logprobs(logprobs, labels).T


def summary_stats__mean_p_of_logprobs(logprobs_correct):  # the mean taken before exponentiating, and no exp at all
    return {**ref.summary_stats(logprobs_correct), "mean_p": logprobs_correct.mean().item()}


def summary_stats__ce_in_bits(logprobs_correct):
    return {**ref.summary_stats(logprobs_correct), "ce": -(logprobs_correct / torch.log(torch.tensor(2.0))).mean().item()}


def first_word_posterior__decoded_forwards(toks, words_freq):  # plaintext read as (letter + X), not (letter - X)
    return ref.first_word_posterior(toks, words_freq)[:, (-torch.arange(26)) % 26]


def first_word_posterior__prefix_off_by_one(toks, words_freq):  # row j matched the first j letters, not j + 1
    right = ref.first_word_posterior(toks, words_freq)
    no_letters = torch.full((1, 26), -torch.log(torch.tensor(26.0, dtype=torch.float64)).item(), dtype=torch.float64)
    return torch.cat([no_letters, right[:2]])


def summary_stats__median_is_mean(logprobs_correct):
    return {**ref.summary_stats(logprobs_correct), "median_p": logprobs_correct.exp().mean().item()}


def make_config__rotary(mode):
    return _cfg(mode, positional_embedding_type="rotary", rotary_dim=ref.make_config(mode).d_head)


def load_trained_model__only_fold_ln(mode, device="cpu"):
    return _load(mode, device, center_writing_weights=False, center_unembed=False, fold_value_biases=False)


def rebuild_b_O__centred_before_adding(state_dict, layer):  # the trained b_O centred, the folded bias added after
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    b_O = state_dict[f"{p}.attn.b_O"]
    return b_O - b_O.mean() + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])


def correct_logprobs__max_logprob(logprobs, labels):  # the model's favourite shift, not the label's
    return logprobs.max(-1).values
