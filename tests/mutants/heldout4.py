"""Held-out set 4 (TEST): plausible wrong answers to every graded exercise, written from the exercise notebooks only
(the text, signatures, hints and asserts a learner sees), not from the mistake catalogues or the checks; and correct
answers written differently. Not to be shown to whoever changes the checks.

Ideas were written in pairs of similar kind and difficulty and split between heldout3.py and this file by coin flip.

`WRONG`: (exercise, id, function, cause): `cause` is a plain-English description of the mistake the answer makes.
`RIGHT`: (exercise, id, function): must pass. `python -m tests.mutants.measure3 heldout4` prints the rates."""

from __future__ import annotations

import math
import string
import warnings

import einops
import torch
import torch.nn.functional as F
from eindex import eindex

from utils import analysis, attribution, calibration
from utils.data import LETTERS, VOCAB_EASY, VOCAB_HARD
from utils.model import weights_path
from utils.reference import lesson01 as r1, lesson02 as r2, lesson03 as r3, lesson04 as r4
from utils.stats import mean_se

from .collect import HeldOut

LOW, UP = string.ascii_lowercase, string.ascii_uppercase
_SET = HeldOut()
WRONG, RIGHT, wrong, right = _SET.WRONG, _SET.RIGHT, _SET.wrong, _SET.right


def _ids(word):
    return torch.tensor([LETTERS.index(c) for c in word])


def _bootstrap(stat, *xs, n_boot=600, seed=0):
    """Bootstrap replicates of stat over dim 0 (one draw of indices for every input)."""
    g = torch.Generator().manual_seed(seed)
    n = xs[0].shape[0]
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    return torch.tensor([float(stat(*(x[i] for x in xs))) for i in idx])


def _verdict(diff, se, rule=lambda d, s: abs(d) > 2 * s):
    return {"difference": float(diff), "se": float(se), "real": bool(rule(float(diff), float(se)))}


# --- 01 -----------------------------------------------------------------------------------------------------------


@wrong("rotate_text", "lower-cases the text first: capitals come back as lower-case letters")
def rt_lowercases(text, shift):
    return "".join(LOW[(LOW.index(c) + shift) % 26] if c in LOW else c for c in text.lower())


@wrong("rotate_text", "subtracts the shift (moves letters backward)")
def rt_subtract(text, shift):
    return r1.rotate_text(text, -shift)


@wrong("rotate_text", "tests letters with str.isalpha()/islower() and ord arithmetic: accented letters such as é are moved too")
def rt_isalpha(text, shift):
    out = []
    for c in text:
        if c.isalpha():
            base = ord("a") if c.islower() else ord("A")
            c = chr((ord(c) - base + shift) % 26 + base)
        out.append(c)
    return "".join(out)


@right("rotate_text")
def rt_maketrans(text, shift):
    s = shift % 26
    table = str.maketrans(LOW + UP, LOW[s:] + LOW[:s] + UP[s:] + UP[:s])
    return text.translate(table)


@wrong("tokenize", "drops the characters missing from the vocabulary before lower-casing: capitals are dropped")
def tok_filter_first(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c.lower()) for c in text if c in vocab], dtype=torch.int64)


@wrong("tokenize", "torch.tensor(list) without a dtype: an empty text gives a float32 tensor")
def tok_empty_float(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab])


@wrong("tokenize", "characters missing from the vocabulary become spaces instead of being dropped")
def tok_unknown_space(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) if c in vocab else vocab.index(" ") for c in text.lower()], dtype=torch.int64)


@right("tokenize")
def tok_loop(text, mode):
    vocab = {"hard": VOCAB_HARD}.get(mode, VOCAB_EASY)
    ids = []
    for ch in text:
        ch = ch.lower()
        if ch in vocab:
            ids.append(vocab.index(ch))
    return torch.as_tensor(ids, dtype=torch.int64)


@wrong("encode_tokens", "subtracts the row's shift instead of adding it")
def enc_subtract(plain_toks, shifts):
    return torch.where(plain_toks < 26, (plain_toks - shifts[:, None]) % 26, plain_toks)


@wrong("encode_tokens", "shifts every id modulo 26, punctuation and spaces included")
def enc_all_ids(plain_toks, shifts):
    return (plain_toks + shifts[:, None]) % 26


@wrong("encode_tokens", "writes the encoded letters into plain_toks in place and returns it")
def enc_inplace(plain_toks, shifts):
    letters = plain_toks < 26
    plain_toks[letters] = ((plain_toks + shifts[:, None]) % 26)[letters]
    return plain_toks


@right("encode_tokens")
def enc_einops(plain_toks, shifts):
    s = einops.repeat(shifts, "b -> b s", s=plain_toks.shape[1])
    return (plain_toks + s).remainder(26).where(plain_toks <= 25, plain_toks)


@wrong("word_probabilities", "ignores mode: always proportional to the counts")
def wp_ignore_mode(counts, mode):
    c = counts.double()
    return c / c.sum()


@wrong("word_probabilities", "medium mode uses torch.ones_like(counts) / len(counts) without float64 (int counts give float32)")
def wp_medium_float32(counts, mode):
    if mode == "easy":
        c = counts.double()
        return c / c.sum()
    return torch.ones_like(counts) / len(counts)


@wrong("word_probabilities", "modes swapped: uniform in easy mode, proportional to the counts in medium")
def wp_swapped(counts, mode):
    c = counts.double()
    w = torch.ones_like(c) if mode == "easy" else c
    return w / w.sum()


@right("word_probabilities")
def wp_div(counts, mode):
    if mode == "easy":
        return counts.double().div(counts.double().sum())
    return torch.full((len(counts),), 1 / len(counts), dtype=torch.float64)


@wrong("rotation_twins", "signature is each letter's offset from the first letter without modulo 26")
def tw_offset_nomod(words):
    groups = {}
    for w in words:
        key = tuple(LOW.index(c) - LOW.index(w[0]) for c in w)
        groups.setdefault(key, []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@wrong("rotation_twins", "signature uses only the step between the first two letters (ignores the rest and the length)")
def tw_first_step(words):
    groups = {}
    for w in words:
        key = (LOW.index(w[1]) - LOW.index(w[0])) % 26 if len(w) > 1 else None
        groups.setdefault(key, []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@wrong("rotation_twins", "the list of groups is sorted but the words inside each group are left in input order")
def tw_inner_unsorted(words):
    groups = {}
    for w in words:
        groups.setdefault(r1.rotate_text(w, -LOW.index(w[0])), []).append(w)
    return sorted(g for g in groups.values() if len(g) > 1)


@right("rotation_twins")
def tw_steps_mod(words):
    from collections import defaultdict

    groups = defaultdict(list)
    for w in words:
        groups[(len(w),) + tuple((ord(b) - ord(a)) % 26 for a, b in zip(w, w[1:]))].append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) >= 2)


# --- 02 -----------------------------------------------------------------------------------------------------------


def _config(mode, **changes):
    from transformer_lens import HookedTransformerConfig

    fields = dict(
        n_layers=2, n_heads=2, d_model=48, d_head=24, d_mlp=None, attn_only=True, act_fn=None,
        normalization_type="LN", positional_embedding_type="standard", attention_dir="causal", n_ctx=32,
        d_vocab=len(VOCAB_HARD if mode == "hard" else VOCAB_EASY), d_vocab_out=26, seed=42, device="cpu",
    )
    fields.update(changes)
    return HookedTransformerConfig(**fields)


@wrong("make_config", "d_vocab is 27 in every mode (the hard vocabulary has 36 tokens)")
def mc_vocab_27(mode):
    return _config(mode, d_vocab=27)


@wrong("make_config", "normalization_type='LNPre' instead of 'LN'")
def mc_lnpre(mode):
    return _config(mode, normalization_type="LNPre")


@wrong("make_config", "seed left out (None) instead of seed=42")
def mc_no_seed(mode):
    return _config(mode, seed=None)


def _load(mode, device="cpu", flags=None, eval_=True, process=True):
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(r2.make_config(mode))
    sd = torch.load(weights_path(mode), map_location="cpu", weights_only=True)
    if process:
        f = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
        f.update(flags or {})
        model.load_and_process_state_dict(sd, **f)
    else:
        model.load_state_dict(sd, strict=False)
    model = model.to(device, print_details=False)
    return model.eval() if eval_ else model.train()


@wrong("load_trained_model", "fold_value_biases=False (the other three processing steps on)")
def ltm_no_fold_vb(mode, device="cpu"):
    return _load(mode, device, flags=dict(fold_value_biases=False))


@wrong("load_trained_model", "never calls .eval(): the model is left in training mode")
def ltm_no_eval(mode, device="cpu"):
    return _load(mode, device, eval_=False)


@wrong("load_trained_model", "loads the weights with load_state_dict: no processing (LayerNorm not folded, nothing centred)")
def ltm_no_processing(mode, device="cpu"):
    return _load(mode, device, process=False)


@right("load_trained_model")
def ltm_device_first(mode, device="cpu"):
    from transformer_lens import HookedTransformer

    state = torch.load(weights_path(mode), map_location="cpu", weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(r2.make_config(mode))
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=True, center_unembed=True,
                                      fold_value_biases=True, refactor_factored_attn_matrices=False)
    model.eval()
    return model.to(device, print_details=False)


def _rb_O(state_dict, layer, centre=True, use_b_V=True, fixed_layer=None):
    p = f"blocks.{layer if fixed_layer is None else fixed_layer}"
    b_V = torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    if use_b_V:
        b_V = b_V + state_dict[f"{p}.attn.b_V"]
    b_O = state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean() if centre else b_O


@wrong("rebuild_b_O", "never centres b_O (centring the writing weights is left out)")
def rb_no_centre(state_dict, layer):
    return _rb_O(state_dict, layer, centre=False)


@wrong("rebuild_b_O", "forgets the trained b_V: only LayerNorm's bias is pushed through W_V and W_O")
def rb_no_b_V(state_dict, layer):
    return _rb_O(state_dict, layer, use_b_V=False)


@wrong("rebuild_b_O", "ignores layer: always reads blocks.0")
def rb_layer0(state_dict, layer):
    return _rb_O(state_dict, layer, fixed_layer=0)


@wrong("correct_logprobs", "indexes each position with labels[position] (pattern 'batch seq [seq]' thinking) instead of the sequence's label")
def cl_label_by_position(logprobs, labels):
    B, S = logprobs.shape[:2]
    lab = labels[torch.arange(S) % len(labels)]
    return logprobs[:, torch.arange(S), lab]


@wrong("correct_logprobs", "exponentiates: returns the probability of the label, not its log-prob")
def cl_exp(logprobs, labels):
    return eindex(logprobs, labels, "batch seq [batch]").exp()


@wrong("correct_logprobs", "negates the log-probs (returns the loss)")
def cl_negated(logprobs, labels):
    return -eindex(logprobs, labels, "batch seq [batch]")


@right("correct_logprobs")
def cl_advanced(logprobs, labels):
    B, S = logprobs.shape[:2]
    return logprobs[torch.arange(B)[:, None], torch.arange(S)[None, :], labels[:, None]]


@wrong("summary_stats", "min_p is the minimum log-prob, not the minimum probability")
def ss_min_log(lp):
    p = lp.exp()
    return {"ce": -lp.mean().item(), "mean_p": p.mean().item(), "median_p": p.median().item(), "min_p": lp.min().item()}


@wrong("summary_stats", "ce is minus the sum of the log-probs, not their mean")
def ss_ce_sum(lp):
    p = lp.exp()
    return {"ce": -lp.sum().item(), "mean_p": p.mean().item(), "median_p": p.median().item(), "min_p": p.min().item()}


@wrong("summary_stats", "median_p is the mean over positions of each position's median over the batch")
def ss_median_cols(lp):
    p = lp.exp()
    return {"ce": -lp.mean().item(), "mean_p": p.mean().item(), "median_p": p.median(0).values.mean().item(),
            "min_p": p.min().item()}


@right("summary_stats")
def ss_flat(lp):
    import numpy as np

    x = lp.detach().cpu().double().numpy().ravel()
    p = np.exp(x)
    return {"ce": float(-x.mean()), "mean_p": float(p.mean()), "median_p": float(np.quantile(p, 0.5, method="lower")),
            "min_p": float(p.min())}


def _fwp(toks, words_freq, sign=-1, weight=True, dim=-1):
    plain = (toks.cpu().unsqueeze(0) + sign * torch.arange(26).unsqueeze(1)) % 26
    lik = torch.zeros(3, 26, dtype=torch.float64)
    for word, freq in words_freq:
        lik += (freq if weight else 1.0) * torch.cumprod((plain == _ids(word)).long(), dim=1).T
    return (lik / lik.sum(dim, keepdim=True)).log()


@wrong("first_word_posterior", "decodes with toks + shift instead of toks - shift")
def fwp_plus(toks, words_freq):
    return _fwp(toks, words_freq, sign=1)


@wrong("first_word_posterior", "each matching word counts 1, not its frequency")
def fwp_count_words(toks, words_freq):
    return _fwp(toks, words_freq, weight=False)


@wrong("first_word_posterior", "normalises each shift's column over the three rows (dim 0) instead of each row over the shifts")
def fwp_norm_dim0(toks, words_freq):
    return _fwp(toks, words_freq, dim=0)


# --- 03 -----------------------------------------------------------------------------------------------------------


@wrong("first_char_probs", "log_softmax instead of softmax: log-probabilities, not probabilities")
@torch.inference_mode()
def fcp_log(model):
    return model(torch.arange(26, device=model.cfg.device)[:, None])[:, 0].log_softmax(-1).cpu()


@wrong("first_char_probs", "returns the table transposed: rows are shifts, columns first characters")
@torch.inference_mode()
def fcp_transposed(model):
    return model(torch.arange(26, device=model.cfg.device)[:, None])[:, 0].softmax(-1).T.cpu()


@wrong("first_char_probs", "token ids 1..26 (arange(1, 27)): off by one, the last row is the space/newline token")
@torch.inference_mode()
def fcp_ids_from_1(model):
    return model(torch.arange(1, 27, device=model.cfg.device)[:, None])[:, 0].softmax(-1).cpu()


def _lfp(words_freq, normalise=True, dim=1, transpose=False):
    t = torch.zeros(3, 26, dtype=torch.float64)
    for w, f in words_freq:
        for j in range(3):
            t[j, LETTERS.index(w[j])] += f
    if normalise:
        t = t / t.sum(dim, keepdim=True)
    return t.T if transpose else t


@wrong("letter_freqs_by_position", "not normalised: rows are the summed weights (they sum to 1 only if words_freq does)")
def lf_unnormalised(words_freq):
    return _lfp(words_freq, normalise=False)


@wrong("letter_freqs_by_position", "normalises each letter's column over the three positions instead of each row")
def lf_norm_columns(words_freq):
    return _lfp(words_freq, dim=0)


@wrong("letter_freqs_by_position", "returns the table transposed, [26, 3]")
def lf_transposed(words_freq):
    return _lfp(words_freq, transpose=True)


@right("letter_freqs_by_position")
def lf_bincount(words_freq):
    w = torch.tensor([f for _, f in words_freq], dtype=torch.float64)
    rows = []
    for j in range(3):
        letters = torch.tensor([LETTERS.index(word[j]) for word, _ in words_freq])
        rows.append(torch.bincount(letters, weights=w, minlength=26))
    t = torch.stack(rows)
    return t / t.sum(-1, keepdim=True)


@wrong("implied_first_letter_probs", "indexes probs[c, (L - c) % 26] (subtraction order reversed)")
def ifl_l_minus_c(probs):
    rows = torch.arange(26).unsqueeze(1)
    return probs[rows, (torch.arange(26) - rows) % 26].mean(0)


@wrong("implied_first_letter_probs", "sums over the 26 characters instead of averaging")
def ifl_sum(probs):
    rows = torch.arange(26).unsqueeze(1)
    return probs[rows, (rows - torch.arange(26)) % 26].sum(0)


@wrong("implied_first_letter_probs", "casts to float32 (.float()): the dtype of probs is not kept")
def ifl_float(probs):
    rows = torch.arange(26).unsqueeze(1)
    return probs.float()[rows, (rows - torch.arange(26)) % 26].mean(0)


@wrong("rotated_word_tokens", "rotation-major order: the first word of every rotation comes first ((rot word) grouping)")
def rwt_rot_major(word_list):
    toks = torch.stack([_ids(w) for w in word_list])
    rot = (toks.unsqueeze(1) + torch.arange(26).view(1, 26, 1)) % 26
    return einops.rearrange(rot, "w r l -> (r w) l"), torch.arange(26).repeat_interleave(len(word_list))


@wrong("rotated_word_tokens", "encodes by subtracting the shift")
def rwt_subtract(word_list):
    toks = torch.stack([_ids(w) for w in word_list])
    rot = (toks.unsqueeze(1) - torch.arange(26).view(1, 26, 1)) % 26
    return einops.rearrange(rot, "w r l -> (w r) l"), einops.repeat(torch.arange(26), "r -> (w r)", w=len(word_list))


@wrong("rotated_word_tokens", "returns int32 tensors instead of int64")
def rwt_int32(word_list):
    toks, shifts = r3.rotated_word_tokens(word_list)
    return toks.int(), shifts.int()


@wrong("rotation_averaged_probs", "averages the log-probabilities (log_softmax) instead of the probabilities")
@torch.inference_mode()
def rap_logprobs(model, toks, shifts):
    lp = model(toks.to(model.cfg.device)).log_softmax(-1).cpu()
    return einops.reduce(eindex(lp, shifts.cpu(), "r s [r]"), "(w r) s -> w s", "mean", r=26)


@wrong("rotation_averaged_probs", "averages whether the top shift is correct (accuracy) instead of the probability of the correct shift")
@torch.inference_mode()
def rap_accuracy(model, toks, shifts):
    top = model(toks.to(model.cfg.device)).argmax(-1).cpu()
    return einops.reduce((top == shifts[:, None]).float(), "(w r) s -> w s", "mean", r=26)


@wrong("rotation_averaged_probs", "geometric mean over the rotations (exp of the mean log-prob) instead of the arithmetic mean")
@torch.inference_mode()
def rap_geometric(model, toks, shifts):
    lp = model(toks.to(model.cfg.device)).log_softmax(-1).cpu()
    return einops.reduce(eindex(lp, shifts.cpu(), "r s [r]"), "(w r) s -> w s", "mean", r=26).exp()


@right("rotation_averaged_probs")
@torch.inference_mode()
def rap_per_word(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()
    picked = probs[torch.arange(len(toks)), :, shifts]  # [word_rot seq]
    return picked.view(-1, 26, picked.shape[-1]).mean(1)


def _iep(word_list, letter_freqs, logs=True, dtype=torch.float64):
    toks = torch.stack([_ids(w) for w in word_list])
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    f = letter_freqs.double()
    if logs:
        return f.log()[torch.arange(3).view(1, 3, 1), plain].cumsum(1).softmax(-1)[..., 0].to(dtype)
    ev = f[torch.arange(3).view(1, 3, 1), plain].cumsum(1)
    return (ev / ev.sum(-1, keepdim=True))[..., 0].to(dtype)


@wrong("independent_evidence_probs", "adds the letter frequencies themselves (not their logs) and normalises")
def iep_sum_probs(word_list, letter_freqs):
    return _iep(word_list, letter_freqs, logs=False)


@wrong("independent_evidence_probs", "reads the largest posterior over the shifts instead of the posterior of shift 0")
def iep_max_posterior(word_list, letter_freqs):
    toks = torch.stack([_ids(w) for w in word_list])
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    post = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), plain].cumsum(1).softmax(-1)
    return post.max(-1).values


@wrong("independent_evidence_probs", "returns float32 instead of float64")
def iep_float32(word_list, letter_freqs):
    return _iep(word_list, letter_freqs, dtype=torch.float32)


def _gap(candidates, words_freq, col=1):
    indep = analysis.independent_evidence_probs(candidates, analysis.letter_freqs_by_position(words_freq))[:, col]
    bayes = analysis.bayes_word_probs(candidates, words_freq)[:, col]
    return (bayes - indep).abs()


@wrong("discriminating_openings", "sorts by the size of the disagreement ascending: returns the words where the observers agree most")
def do_ascending(candidates, words_freq, k):
    return [candidates[i] for i in _gap(candidates, words_freq).argsort()[:k].tolist()]


@wrong("discriminating_openings", "picks the k most frequent candidate words")
def do_most_frequent(candidates, words_freq, k):
    freq = dict(words_freq)
    return sorted(candidates, key=lambda w: -freq.get(w, 0))[:k]


@wrong("discriminating_openings", "ranks by the disagreement after three letters (column 2) instead of position 1")
def do_position2(candidates, words_freq, k):
    return [candidates[i] for i in _gap(candidates, words_freq, col=2).argsort(descending=True)[:k].tolist()]


@wrong("below_bayes_verdict", "se is the standard deviation of the differences, not divided by sqrt(n)")
def bb_std(model_p, bayes_p):
    d = (model_p - bayes_p).double()
    return _verdict(d.mean(), d.std())


@wrong("below_bayes_verdict", "real only when the difference is above +2 SE (a significantly negative difference is called not real)")
def bb_signed(model_p, bayes_p):
    d = (model_p - bayes_p).double()
    return _verdict(d.mean(), d.std() / math.sqrt(len(d)), rule=lambda m, s: m > 2 * s)


@wrong("below_bayes_verdict", "calls the difference real beyond one standard error instead of two")
def bb_one_se(model_p, bayes_p):
    d = (model_p - bayes_p).double()
    return _verdict(d.mean(), d.std() / math.sqrt(len(d)), rule=lambda m, s: abs(m) > s)


@right("below_bayes_verdict")
def bb_mean_se(model_p, bayes_p):
    est = mean_se(model_p.double() - bayes_p.double())
    return {"difference": est.value, "se": est.se, "real": abs(est.value) > 2 * est.se}


# --- 04 -----------------------------------------------------------------------------------------------------------


@wrong("dla_correct", "no mean subtraction: the raw components are projected")
def dla_no_centre(components, scale, W_U, labels):
    return einops.einsum(components / scale, W_U[:, labels], "c b s d, d b -> c b s")


@wrong("dla_correct", "subtracts the mean over the components (dim 0) instead of over the batch")
def dla_centre_components(components, scale, W_U, labels):
    c = components - components.mean(0, keepdim=True)
    return einops.einsum(c / scale, W_U[:, labels], "c b s d, d b -> c b s")


@wrong("dla_correct", "projects first, then subtracts the batch mean of the projected values (each on its own label)")
def dla_centre_after_projection(components, scale, W_U, labels):
    x = einops.einsum(components / scale, W_U[:, labels], "c b s d, d b -> c b s")
    return x - x.mean(1, keepdim=True)


@right("dla_correct")
def dla_mean_projected(components, scale, W_U, labels):
    dirs = W_U[:, labels].T  # [batch d_model]
    own = (components / scale * dirs[None, :, None, :]).sum(-1)
    mean_part = ((components.mean(1, keepdim=True) / scale) * dirs[None, :, None, :]).sum(-1)
    return own - mean_part


def _slots(seq, device=None):
    return F.one_hot(torch.arange(seq) % 4, 4).float()


@wrong("attention_slot_shares", "sums over the batch instead of averaging (divides by destinations per slot only)")
def ass_sum_batch(pattern):
    oh = _slots(pattern.shape[-1])
    summed = einops.einsum(pattern.float().cpu(), oh, oh, "b h d s, s k, d j -> h j k")
    return summed / oh.sum(0).view(1, 4, 1)


@wrong("attention_slot_shares", "slot taken as position // 4 instead of position % 4")
def ass_div4(pattern):
    seq = pattern.shape[-1]
    oh = F.one_hot((torch.arange(seq) // 4).clamp(max=3), 4).float()
    summed = einops.einsum(pattern.float().cpu(), oh, oh, "b h d s, s k, d j -> h j k")
    return summed / (oh.sum(0) * pattern.shape[0]).clamp(min=1).view(1, 4, 1)


@wrong("attention_slot_shares", "leaves out each destination's attention to itself (the diagonal)")
def ass_no_diagonal(pattern):
    seq = pattern.shape[-1]
    p = pattern.float().cpu() * (1 - torch.eye(seq))
    oh = _slots(seq)
    summed = einops.einsum(p, oh, oh, "b h d s, s k, d j -> h j k")
    return summed / (oh.sum(0) * pattern.shape[0]).view(1, 4, 1)


@right("attention_slot_shares")
def ass_row_normalised(pattern):
    """Each destination's row sums to 1, so a slot's total equals its number of destinations times the batch."""
    oh = _slots(pattern.shape[-1])
    summed = einops.einsum(pattern.double().cpu(), oh.double(), oh.double(), "b h d s, s k, d j -> h j k")
    return (summed / summed.sum(-1, keepdim=True)).float()


@wrong("loss_per_position", "softmax instead of log_softmax: minus the probability, not minus the log-prob")
def lpp_softmax(logits, labels):
    return -eindex(logits.softmax(-1), labels, "batch seq [batch]").mean(0)


@wrong("loss_per_position", "no minus sign: returns the mean log-prob")
def lpp_no_minus(logits, labels):
    return eindex(logits.log_softmax(-1), labels, "batch seq [batch]").mean(0)


@wrong("loss_per_position", "F.cross_entropy with its default mean reduction: one number, not one per position")
def lpp_scalar(logits, labels):
    B, S, V = logits.shape
    return F.cross_entropy(logits.reshape(B * S, V), labels.repeat_interleave(S))


@right("loss_per_position")
def lpp_gather(logits, labels):
    lp = logits.double().log_softmax(-1)
    picked = lp.gather(-1, labels.view(-1, 1, 1).expand(-1, lp.shape[1], 1)).squeeze(-1)
    return (-picked.mean(0)).to(logits.dtype)


def _abl(model, toks, layer, head, method, hook_name="hook_z", mean_dims=(0,), all_heads=False):
    def hook(act, hook):
        act = act.clone()
        idx = (slice(None), slice(None), slice(None) if all_heads else head)
        act[idx] = 0.0 if method == "zero" else act.mean(mean_dims, keepdim=True).expand_as(act)[idx]
        return act
    with torch.inference_mode():
        return model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=[(f"blocks.{layer}.attn.{hook_name}", hook)])


@wrong("ablated_logits", "ablates every head of the layer (z[:, :, :]) instead of head `head` only")
def al_all_heads(model, toks, layer, head, method="mean"):
    return _abl(model, toks, layer, head, method, all_heads=True)


@wrong("ablated_logits", "mean ablation averages over the batch and the positions (dims 0 and 1)")
def al_mean_batch_pos(model, toks, layer, head, method="mean"):
    return _abl(model, toks, layer, head, method, mean_dims=(0, 1))


@wrong("ablated_logits", "hooks blocks.{layer}.attn.hook_v (the values) instead of hook_z")
def al_hook_v(model, toks, layer, head, method="mean"):
    return _abl(model, toks, layer, head, method, hook_name="hook_v")


def _alc(model, toks, labels, method, combine=lambda a, c: a - c, swap=False):
    clean = r4.loss_per_position(model(toks.to(model.cfg.device)).cpu(), labels.cpu())
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, toks.shape[1])
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            abl = r4.loss_per_position(r4.ablated_logits(model, toks, l, h, method).cpu(), labels.cpu())
            out[(h, l) if swap else (l, h)] = combine(abl, clean)
    return out


@wrong("ablation_loss_change", "returns the ablated loss itself, without subtracting the clean loss")
@torch.inference_mode()
def alc_no_subtract(model, toks, labels, method="mean"):
    return _alc(model, toks, labels, method, combine=lambda a, c: a)


@wrong("ablation_loss_change", "relative change: ablated loss divided by the clean loss, minus 1")
@torch.inference_mode()
def alc_ratio(model, toks, labels, method="mean"):
    return _alc(model, toks, labels, method, combine=lambda a, c: a / c - 1)


@wrong("ablation_loss_change", "fills out[head, layer] instead of out[layer, head] (heads 0.1 and 1.0 swapped)")
@torch.inference_mode()
def alc_index_swap(model, toks, labels, method="mean"):
    return _alc(model, toks, labels, method, swap=True)


@right("ablation_loss_change")
@torch.inference_mode()
def alc_cross_entropy(model, toks, labels, method="mean"):
    def loss(logits):
        B, S, V = logits.shape
        return F.cross_entropy(logits.cpu().reshape(B * S, V), labels.cpu().repeat_interleave(S),
                               reduction="none").view(B, S).mean(0)
    clean = loss(model(toks.to(model.cfg.device)))
    return torch.stack([torch.stack([loss(r4.ablated_logits(model, toks, l, h, method)) - clean
                                     for h in range(model.cfg.n_heads)]) for l in range(model.cfg.n_layers)])


@wrong("discriminating_ablation", "total (mean) ablation of heads 0.0 and 0.1: both accounts need layer 0 to feed layer 1, so both predict a drop")
def da_total_layer0():
    return {"components": ["0.0", "0.1"], "path": "total", "verdict": "filter"}


@wrong("discriminating_ablation", "the discriminating intervention, but the verdict 'alone' although top-1 falls")
def da_verdict_alone():
    return {"components": ["embed", "0.0", "0.1"], "path": "direct", "verdict": "alone"}


@right("discriminating_ablation")
def da_layer0_direct():
    return {"components": ["0.0", "0.1"], "path": "direct", "verdict": "filter"}


def _share_diff(dla, a, b):
    return attribution.group_share(dla, a) - attribution.group_share(dla, b)


@wrong("shares_differ", "standard errors of the two shares bootstrapped separately and combined in quadrature (pairing ignored)")
def sd_quadrature(dla, group_a, group_b):
    se_a = _bootstrap(lambda x: attribution.group_share(x.T, group_a), dla.T, seed=0).std()
    se_b = _bootstrap(lambda x: attribution.group_share(x.T, group_b), dla.T, seed=1).std()
    return _verdict(_share_diff(dla, group_a, group_b), math.sqrt(se_a**2 + se_b**2))


@wrong("shares_differ", "real only when share a exceeds share b by 2 SE (a clearly negative difference is called not real)")
def sd_signed(dla, group_a, group_b):
    se = _bootstrap(lambda x: _share_diff(x.T, group_a, group_b), dla.T).std()
    return _verdict(_share_diff(dla, group_a, group_b), se, rule=lambda d, s: d > 2 * s)


@wrong("shares_differ", "shares taken relative to the two groups only (a / (a + b)), not to all five components")
def sd_two_group_share(dla, group_a, group_b):
    def diff(x):
        m = x.mean(1)
        a, b = m[group_a].sum(), m[group_b].sum()
        return (a - b) / (a + b)
    se = _bootstrap(lambda x: diff(x.T), dla.T).std()
    return _verdict(diff(dla), se)


@right("shares_differ")
def sd_vectorised(dla, group_a, group_b):
    n = dla.shape[1]
    g = torch.Generator().manual_seed(7)
    pick = torch.randint(0, n, (500, n), generator=g)
    means = dla.double()[:, pick].mean(-1)  # [component n_resamples]
    shares = means / means.sum(0, keepdim=True)
    boot = shares[group_a].sum(0) - shares[group_b].sum(0)
    return _verdict(_share_diff(dla.double(), group_a, group_b), boot.std())


# --- 05 -----------------------------------------------------------------------------------------------------------


def _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, ln=True, fin=True, log=False):
    x = resid / ln_scale if ln else resid
    out = einops.einsum(x, W_OV, "b s i, h i o -> h b s o")
    if fin:
        out = out / final_scale
    logits = out @ W_U
    if log:
        logits = logits.log_softmax(-1)
    return eindex(logits, labels, "h b s [b]")


@wrong("ov_correct_logits", "leaves out the division by the layer's LayerNorm scale")
def ov_no_ln(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, ln=False)


@wrong("ov_correct_logits", "leaves out the division by the final LayerNorm scale")
def ov_no_final(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, fin=False)


@wrong("ov_correct_logits", "log_softmax over the 26 logits before reading the label (a log-prob, not a logit)")
def ov_log_softmax(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, log=True)


@right("ov_correct_logits")
def ov_heads_loop(resid, ln_scale, W_OV, W_U, final_scale, labels):
    x = resid / ln_scale
    out = []
    for h in range(W_OV.shape[0]):
        logits = (x @ W_OV[h]) @ W_U / final_scale  # [b s 26]
        out.append(logits.gather(-1, labels.view(-1, 1, 1).expand(-1, x.shape[1], 1)).squeeze(-1))
    return torch.stack(out)


def _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, scale=True, dim=-1, use_bq=True, diag=True):
    q = einops.einsum(q_resid, W_Q, "d m, h m k -> h d k") + (b_Q[:, None] if use_bq else 0)
    k = einops.einsum(k_resid, W_K, "s m, h m k -> h s k") + b_K[:, None]
    scores = einops.einsum(q, k, "h d k, h s k -> h d s")
    if scale:
        scores = scores / math.sqrt(W_Q.shape[-1])
    D, S = scores.shape[-2:]
    keep = torch.ones(D, S, dtype=torch.bool).tril(0 if diag else -1)
    return scores.masked_fill(~keep, float("-inf")).softmax(dim)


@wrong("qk_pattern", "no 1/sqrt(d_head) scaling of the scores")
def qk_no_scale(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, scale=False)


@wrong("qk_pattern", "softmax over the destinations (dim -2) instead of the sources")
def qk_softmax_dest(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, dim=-2)


@wrong("qk_pattern", "leaves out the query bias b_Q")
def qk_no_bq(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, use_bq=False)


@wrong("qk_pattern", "masks the diagonal too (tril(-1)): a destination cannot attend to itself, the first row is NaN")
def qk_mask_diagonal(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, diag=False)


@right("qk_pattern")
def qk_per_head(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    pats = []
    D, S = q_resid.shape[0], k_resid.shape[0]
    later = torch.arange(S)[None, :] > torch.arange(D)[:, None]
    for h in range(W_Q.shape[0]):
        a = q_resid @ W_Q[h] + b_Q[h]
        b = k_resid @ W_K[h] + b_K[h]
        s = (a @ b.T) / W_Q.shape[-1] ** 0.5
        s = torch.where(later, torch.tensor(float("-inf"), dtype=s.dtype), s)
        pats.append(F.softmax(s, dim=1))
    return torch.stack(pats)


@wrong("key_input_control", "multiplies 0A's stream by 3: the same blow-up in size, a key input no real position has")
def kic_scale(resid):
    out = resid.clone()
    out[:, 0] = 3 * resid[:, 0]
    return out


@wrong("key_input_control", "replaces 0A by its mean over the batch: a small change (less than a third of the blow-up's), and a mean no real position has")
def kic_batch_mean(resid):
    out = resid.clone()
    out[:, 0] = resid[:, 0].mean(0, keepdim=True)
    return out


@wrong("key_input_control", "swaps the streams at 0A and 0C: changes 0C as well as 0A")
def kic_swap(resid):
    out = resid.clone()
    out[:, 0], out[:, 2] = resid[:, 2], resid[:, 0]
    return out


@right("key_input_control")
def kic_from_1C(resid):
    out = resid.clone()
    out[:, 0] = resid[:, 6]
    return out


@wrong("discriminating_swap", "moves the whole stream: both hypotheses predict a fall, so it cannot tell them apart")
def dsw_whole_stream():
    return {"part": "whole stream", "donor": "2nd letter", "verdict": "position"}


@wrong("discriminating_swap", "swaps layer 0's part from the 2nd letter and calls it for 'layer 0', although the share does not fall")
def dsw_layer0_verdict_layer0():
    return {"part": "layer 0", "donor": "2nd letter", "verdict": "layer 0"}


@right("discriminating_swap")
def dsw_space_donor():
    return {"part": "position", "donor": "space", "verdict": "position"}


# --- 06 -----------------------------------------------------------------------------------------------------------


def _fb(toks, letter_freqs, sign=-1, dim=1, normalise=True):
    logf = letter_freqs.double().log()
    plain = (toks.unsqueeze(-1) + sign * torch.arange(26)) % 26
    ev = torch.where((toks < 26).unsqueeze(-1), logf[plain], torch.zeros((), dtype=torch.float64)).cumsum(dim)
    return ev.log_softmax(-1) if normalise else ev


@wrong("frequency_baseline_logprobs", "decodes with token + shift instead of token - shift")
def fb_plus(toks, letter_freqs):
    return _fb(toks, letter_freqs, sign=1)


@wrong("frequency_baseline_logprobs", "running sum over the batch (dim 0) instead of along the sequence")
def fb_cumsum_batch(toks, letter_freqs):
    return _fb(toks, letter_freqs, dim=0)


@wrong("frequency_baseline_logprobs", "not normalised over the shifts: returns the summed log-likelihoods")
def fb_unnormalised(toks, letter_freqs):
    return _fb(toks, letter_freqs, normalise=False)


@right("frequency_baseline_logprobs")
def fb_loop_positions(toks, letter_freqs):
    logf = letter_freqs.double().log()
    B, S = toks.shape
    out = torch.zeros(B, S, 26, dtype=torch.float64)
    run = torch.zeros(B, 26, dtype=torch.float64)
    for t in range(S):
        tok = toks[:, t]
        ev = logf[(tok[:, None] - torch.arange(26)) % 26]
        run = run + ev * (tok < 26).double()[:, None]
        out[:, t] = F.log_softmax(run, dim=-1)
    return out


def _lbl(logprobs_correct, toks, max_letters=26, positions=False, drop_above=False, dtype=torch.float64):
    n = torch.arange(1, toks.shape[1] + 1).expand_as(toks) if positions else (toks < 26).long().cumsum(1)
    n, loss = n.flatten(), -logprobs_correct.flatten().double()
    if drop_above:
        keep = n <= max_letters
        n, loss = n[keep], loss[keep]
    else:
        n = n.clamp(max=max_letters)
    total = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n, loss)
    count = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n, torch.ones_like(loss))
    return (total / count).to(dtype)


@wrong("loss_by_letters_seen", "buckets by the number of tokens seen (position + 1), not the number of letters")
def lbl_positions(logprobs_correct, toks, max_letters=26):
    return _lbl(logprobs_correct, toks, max_letters, positions=True)


@wrong("loss_by_letters_seen", "pairs with more than max_letters letters are left out instead of going into the last bucket")
def lbl_drop_above(logprobs_correct, toks, max_letters=26):
    return _lbl(logprobs_correct, toks, max_letters, drop_above=True)


@wrong("loss_by_letters_seen", "returns float32 instead of float64")
def lbl_float32(logprobs_correct, toks, max_letters=26):
    return _lbl(logprobs_correct, toks, max_letters, dtype=torch.float32)


@wrong("nonletter_attention_share", "averages the attention over the non-letter sources instead of summing it")
def nas_mean_marked(pattern, toks):
    is_non = (toks >= 26).to(pattern.dtype)
    on = einops.einsum(pattern, is_non, "b h d s, b s -> b h d") / is_non.sum(-1).clamp(min=1)[:, None, None]
    return on.mean((0, 2))


@wrong("nonletter_attention_share", "marks the letters (ids < 26) instead of the non-letters")
def nas_letters(pattern, toks):
    is_letter = (toks < 26).to(pattern.dtype)
    return einops.einsum(pattern, is_letter, "b h d s, b s -> b h d").mean((0, 2))


@wrong("nonletter_attention_share", "averages only over the destinations that hold letters, not every destination")
def nas_letter_dests(pattern, toks):
    is_non = (toks >= 26).to(pattern.dtype)
    on = einops.einsum(pattern, is_non, "b h d s, b s -> b h d")
    w = (toks < 26).to(pattern.dtype)[:, None, :]
    return (on * w).sum((0, 2)) / w.sum((0, 2))


@right("nonletter_attention_share")
def nas_matmul(pattern, toks):
    on = pattern @ (toks >= 26).to(pattern.dtype)[:, None, :, None]  # [b h d 1]
    return on.squeeze(-1).mean(-1).mean(0)


def _rel(probs, targets, n_bins=10, conf="top", edge="floor", empty_nan=True, drop_one=False):
    p = probs.double()
    top, pred = p.max(-1)
    c = top if conf == "top" else p.gather(1, targets.view(-1, 1)).squeeze(1)
    correct = (pred == targets).double()
    idx = (c * n_bins).floor().long() if edge == "floor" else (c * n_bins).round().long()
    n = len(c)
    if drop_one:
        keep = idx < n_bins
        idx, c, correct = idx[keep], c[keep], correct[keep]
    idx = idx.clamp(0, n_bins - 1)
    z = torch.zeros(n_bins, dtype=torch.float64)
    count = z.index_add(0, idx, torch.ones_like(c))
    mc, acc = z.index_add(0, idx, c) / count, z.index_add(0, idx, correct) / count
    if not empty_nan:
        mc, acc = mc.nan_to_num(0.0), acc.nan_to_num(0.0)
    return torch.stack([mc, acc, count / n])


@wrong("reliability_bins", "confidence is the probability given to the target, not to the top shift")
def rel_target_prob(probs, targets, n_bins=10):
    return _rel(probs, targets, n_bins, conf="target")


@wrong("reliability_bins", "a confidence of exactly 1 gets bin index n_bins and is dropped instead of going into the last bin")
def rel_drop_one(probs, targets, n_bins=10):
    return _rel(probs, targets, n_bins, drop_one=True)


@wrong("reliability_bins", "empty bins get 0 instead of NaN in rows 0 and 1")
def rel_empty_zero(probs, targets, n_bins=10):
    return _rel(probs, targets, n_bins, empty_nan=False)


@wrong("reliability_bins", "bin index by rounding c * n_bins instead of flooring it")
def rel_round(probs, targets, n_bins=10):
    return _rel(probs, targets, n_bins, edge="round")


@right("reliability_bins")
def rel_bucketize(probs, targets, n_bins=10):
    conf, pred = probs.double().max(1)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    idx = torch.bucketize(conf, edges, right=True)
    count = torch.bincount(idx, minlength=n_bins).double()
    s_conf = torch.bincount(idx, weights=conf, minlength=n_bins)
    s_ok = torch.bincount(idx, weights=(pred == targets).double(), minlength=n_bins)
    return torch.stack([s_conf / count, s_ok / count, count / conf.numel()])


def _ece_diff(a_bins, b_bins):
    return calibration.ece_of_sums(a_bins.sum(0)) - calibration.ece_of_sums(b_bins.sum(0))


@wrong("ece_difference_verdict", "bootstraps each ECE on its own windows and adds the two errors in quadrature (pairing thrown away)")
def ece_quadrature(model_probs, baseline_probs, labels):
    a = calibration.per_sequence_bins(model_probs, labels)
    b = calibration.per_sequence_bins(baseline_probs, labels)
    se_a = _bootstrap(lambda x: calibration.ece_of_sums(x.sum(0)), a, n_boot=300, seed=0).std()
    se_b = _bootstrap(lambda x: calibration.ece_of_sums(x.sum(0)), b, n_boot=300, seed=1).std()
    return _verdict(_ece_diff(a, b), math.sqrt(se_a**2 + se_b**2))


@wrong("ece_difference_verdict", "calls the difference real only if the model's ECE is above the baseline's by 2 SE (one-sided)")
def ece_signed(model_probs, baseline_probs, labels):
    a = calibration.per_sequence_bins(model_probs, labels)
    b = calibration.per_sequence_bins(baseline_probs, labels)
    se = _bootstrap(_ece_diff, a, b, n_boot=300).std()
    return _verdict(_ece_diff(a, b), se, rule=lambda d, s: d > 2 * s)


@right("ece_difference_verdict")
def ece_paired_windows(model_probs, baseline_probs, labels):
    a = calibration.per_sequence_bins(model_probs, labels)
    b = calibration.per_sequence_bins(baseline_probs, labels)
    g = torch.Generator().manual_seed(5)
    idx = torch.randint(0, len(a), (500, len(a)), generator=g)
    boot = calibration.ece_of_sums(a[idx].sum(1)) - calibration.ece_of_sums(b[idx].sum(1))  # [500]
    return _verdict(_ece_diff(a, b), boot.std())


@wrong("choose_control", "control is the same head at the next position: changes where as well as what, and cannot show the rival matters")
def cc_same_head_next_position(head, rival, position):
    return {"component": head, "position": position + 1, "method": "resample"}


@wrong("choose_control", "the control is the claimed intervention itself (the same head): it cannot come out the other way")
def cc_head_itself(head, rival, position):
    return {"component": head, "position": position, "method": "resample"}


@wrong("choose_control", "resamples the rival at position 0 instead of the claim's position")
def cc_rival_position0(head, rival, position):
    return {"component": rival, "position": 0, "method": "resample"}


# --- 07 -----------------------------------------------------------------------------------------------------------


def _pmw(word_toks, word_probs, n_keep, how="prefix", dim=-1, dtype=None):
    if how == "prefix":
        same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
    elif how == "suffix":
        a = word_toks[:, 3 - n_keep:]
        same = (a[:, None, :] == a[None, :, :]).all(-1)
    else:  # any
        same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).any(-1)
    w = same.to(word_probs.dtype) * word_probs[None, :]
    w = w / w.sum(dim, keepdim=True)
    return w if dtype is None else w.to(dtype)


@wrong("prefix_match_weights", "compares the last n_keep letters of the words instead of the first")
def pmw_suffix(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, how="suffix")


@wrong("prefix_match_weights", "reduces the letter comparison with any() instead of all(): one shared kept letter is enough (n_keep=0 gives NaN rows)")
def pmw_any(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, how="any")


@wrong("prefix_match_weights", "normalises each column (dim 0) instead of each row")
def pmw_columns(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, dim=0)


@wrong("prefix_match_weights", "returns float32 instead of float64")
def pmw_float32(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, dtype=torch.float32)


@right("prefix_match_weights")
def pmw_keys(word_toks, word_probs, n_keep):
    keys = [tuple(r) for r in word_toks[:, :n_keep].tolist()]
    total = {}
    for k, p in zip(keys, word_probs.tolist()):
        total[k] = total.get(k, 0.0) + p
    same = torch.tensor([[ki == kj for kj in keys] for ki in keys])
    denom = torch.tensor([total[k] for k in keys], dtype=torch.float64)
    return same.double() * word_probs.double()[None, :] / denom[:, None]


def _kv(model, toks, new_k, new_v, mask, use_mask=True, swap=False, only_k=False, leave_hooks=False):
    keep = torch.ones(toks.shape[1], dtype=torch.bool) if (mask is None or not use_mask) else mask.bool()
    keep = keep.to(new_k.device).view(1, -1, 1, 1)

    def patch(new):
        return lambda act, hook: torch.where(keep, new, act)

    k, v = (new_v, new_k) if swap else (new_k, new_v)
    hooks = [("blocks.1.attn.hook_k", patch(k))] + ([] if only_k else [("blocks.1.attn.hook_v", patch(v))])
    if leave_hooks:
        for name, fn in hooks:
            model.add_hook(name, fn)
        with torch.inference_mode():
            return model(toks)
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=hooks)


@wrong("run_with_patched_kv", "ignores mask: patches every position")
def kv_ignore_mask(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, use_mask=False)


@wrong("run_with_patched_kv", "keys and values swapped: new_v goes into hook_k and new_k into hook_v")
def kv_swapped(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, swap=True)


@wrong("run_with_patched_kv", "patches only the keys; the values are left clean")
def kv_only_keys(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, only_k=True)


@wrong("run_with_patched_kv", "adds the hooks with model.add_hook and never removes them (hooks left on the model)")
def kv_hooks_left(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, leave_hooks=True)


@right("run_with_patched_kv")
def kv_hooks_context(model, toks, new_k, new_v, mask=None):
    m = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask.to(torch.bool)
    m = m.to(new_k.device)[None, :, None, None]

    def k_hook(act, hook):
        return new_k * m + act * ~m

    def v_hook(act, hook):
        return new_v * m + act * ~m

    with torch.inference_mode(), model.hooks(fwd_hooks=[("blocks.1.attn.hook_k", k_hook), ("blocks.1.attn.hook_v", v_hook)]):
        return model(toks)


def _wrp(model, word_toks, reduce_pos=False, sign=1, order="w s"):
    shifts = torch.arange(26)
    rot = (word_toks[:, None, :] + sign * shifts[None, :, None]) % 26
    logits = model(einops.rearrange(rot, f"w s c -> ({order}) c").to(model.cfg.device))
    p = logits.softmax(-1).cpu()
    p = p.mean(1) if reduce_pos else p[:, 2]
    p = einops.rearrange(p, f"({order}) v -> w s v", s=26)
    return eindex(p, shifts, "w s [s]")


@wrong("word_rotation_probs", "averages p(correct) over the three positions instead of reading it after the 3rd letter")
@torch.inference_mode()
def wrp_mean_positions(model, word_toks):
    return _wrp(model, word_toks, reduce_pos=True)


@wrong("word_rotation_probs", "encodes each word by subtracting the shift, then reads p(s)")
@torch.inference_mode()
def wrp_subtract(model, word_toks):
    return _wrp(model, word_toks, sign=-1)


@wrong("word_rotation_probs", "flattens the encodings shift-major ((s w)) but unflattens word-major")
@torch.inference_mode()
def wrp_order_mismatch(model, word_toks):
    shifts = torch.arange(26)
    rot = (word_toks[:, None, :] + shifts[None, :, None]) % 26
    logits = model(einops.rearrange(rot, "w s c -> (s w) c").to(model.cfg.device))[:, 2]
    p = einops.rearrange(logits.softmax(-1).cpu(), "(w s) v -> w s v", s=26)
    return eindex(p, shifts, "w s [s]")


@right("word_rotation_probs")
@torch.inference_mode()
def wrp_gather(model, word_toks):
    n = word_toks.shape[0]
    shifts = torch.arange(26).repeat(n)  # word-major: (w s)
    toks = (word_toks.repeat_interleave(26, dim=0) + shifts[:, None]) % 26
    probs = model(toks.to(model.cfg.device))[:, -1].softmax(-1).cpu()
    return probs[torch.arange(len(toks)), shifts].view(n, 26)


@wrong("falsify_monotone", "returns (1, 1, 1, 1) itself: keeps no more in any slot")
def fm_same():
    return (1, 1, 1, 1)


@wrong("falsify_monotone", "keeps more in slot B, (1, 3, 1, 1): B ahead of C, the relation that did not hurt")
def fm_b_ahead():
    return (1, 3, 1, 1)


@wrong("falsify_monotone", "(0, 1, 3, 1): keeps less than (1, 1, 1, 1) in slot A")
def fm_less_in_a():
    return (0, 1, 3, 1)


@right("falsify_monotone")
def fm_a_and_c():
    return (2, 1, 3, 1)


@wrong("difference_is_real", "unpaired: the per-sequence means of a and b get separate errors, combined in quadrature")
def dr_unpaired(loss_a, loss_b):
    a, b = loss_a.double().mean(1), loss_b.double().mean(1)
    se = math.sqrt(float(a.var() / len(a) + b.var() / len(b)))
    return _verdict(a.mean() - b.mean(), se)


@wrong("difference_is_real", "real only when a is above b by 2 SE (one-sided)")
def dr_signed(loss_a, loss_b):
    d = (loss_a - loss_b).double().mean(1)
    return _verdict(d.mean(), d.std() / math.sqrt(len(d)), rule=lambda m, s: m > 2 * s)


@wrong("difference_is_real", "difference taken as mean of b minus mean of a")
def dr_b_minus_a(loss_a, loss_b):
    d = (loss_b - loss_a).double().mean(1)
    return _verdict(d.mean(), d.std() / math.sqrt(len(d)))


@right("difference_is_real")
def dr_mean_se(loss_a, loss_b):
    est = mean_se(loss_a.double() - loss_b.double())
    return {"difference": est.value, "se": est.se, "real": abs(est.value) > 2 * est.se}
