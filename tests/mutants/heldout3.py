"""Held-out set 3 (DEV): plausible wrong answers to every graded exercise, written from the exercise notebooks only
(the text, signatures, hints and asserts a learner sees), not from the mistake catalogues or the checks; and correct
answers written differently.

Ideas were written in pairs of similar kind and difficulty and split between this file and heldout4.py by coin flip.

`WRONG`: (exercise, id, function, cause): `cause` is a plain-English description of the mistake the answer makes.
`RIGHT`: (exercise, id, function): must pass. `python -m tests.mutants.measure3 heldout3` prints the rates."""

from __future__ import annotations

import math
import string

import einops
import torch
import torch.nn.functional as F
from eindex import eindex

from utils import analysis, attribution, calibration
from utils.data import LETTERS, VOCAB_EASY, VOCAB_HARD
from utils.model import weights_path
from utils.reference import lesson01 as r1, lesson02 as r2, lesson03 as r3, lesson04 as r4

from .collect import HeldOut

LOW, UP = string.ascii_lowercase, string.ascii_uppercase
_SET = HeldOut()
WRONG, RIGHT, wrong, right = _SET.WRONG, _SET.RIGHT, _SET.wrong, _SET.right


def _ids(word):
    return torch.tensor([LETTERS.index(c) for c in word])


def _bootstrap_se(stat, *xs, n_boot=600, seed=0):
    """Plain bootstrap over dim 0 (paired: one draw of indices for every input)."""
    g = torch.Generator().manual_seed(seed)
    n = xs[0].shape[0]
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    return float(torch.tensor([float(stat(*(x[i] for x in xs))) for i in idx]).std())


# --- 01 -----------------------------------------------------------------------------------------------------------


@wrong("rotate_text", "only lower-case letters are rotated; capitals are left unchanged")
def rt_lower_only(text, shift):
    return "".join(LOW[(LOW.index(c) + shift) % 26] if c in LOW else c for c in text)


@wrong("rotate_text", "one 52-letter alphabet (ascii_letters) modulo 52: z+1 becomes A, case is not kept")
def rt_ascii_letters(text, shift):
    abc = string.ascii_letters
    return "".join(abc[(abc.index(c) + shift) % 52] if c in abc else c for c in text)


@wrong("rotate_text", "capitals are shifted with chr(ord(c) + shift) without wrapping modulo 26")
def rt_upper_nowrap(text, shift):
    out = []
    for c in text:
        if c in LOW:
            out.append(LOW[(LOW.index(c) + shift) % 26])
        elif c in UP:
            out.append(chr(ord(c) + shift))
        else:
            out.append(c)
    return "".join(out)


@right("rotate_text")
def rt_ord_arith(text, shift):
    out = []
    for c in text:
        if "a" <= c <= "z":
            c = chr((ord(c) - ord("a") + shift) % 26 + ord("a"))
        elif "A" <= c <= "Z":
            c = chr((ord(c) - ord("A") + shift) % 26 + ord("A"))
        out.append(c)
    return "".join(out)


@wrong("tokenize", "the vocabulary is chosen with mode == 'easy' (else hard): medium mode gets the hard vocabulary")
def tok_medium_hard(text, mode):
    vocab = VOCAB_EASY if mode == "easy" else VOCAB_HARD
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab], dtype=torch.int64)


@wrong("tokenize", "returns int32 token ids instead of int64")
def tok_int32(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab], dtype=torch.int32)


@wrong("tokenize", "strips leading and trailing whitespace from the text before tokenizing (drops edge spaces/newlines)")
def tok_strip(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.strip().lower() if c in vocab], dtype=torch.int64)


@right("tokenize")
def tok_dict(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    ids = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([ids[c] for c in text.lower() if c in ids], dtype=torch.long)


@wrong("encode_tokens", "adds shifts of shape [batch] without a seq axis: broadcasts along the sequence, not the rows")
def enc_no_unsqueeze(plain_toks, shifts):
    return torch.where(plain_toks < 26, (plain_toks + shifts) % 26, plain_toks)


@wrong("encode_tokens", "letter mask is ids <= 26: the space id 26 is encoded too")
def enc_mask_le26(plain_toks, shifts):
    return torch.where(plain_toks <= 26, (plain_toks + shifts[:, None]) % 26, plain_toks)


@wrong("encode_tokens", "reduces the shift modulo 26 but not the sum: letter ids go above 25 instead of wrapping")
def enc_no_final_mod(plain_toks, shifts):
    return torch.where(plain_toks < 26, plain_toks + shifts[:, None] % 26, plain_toks)


@right("encode_tokens")
def enc_clone_assign(plain_toks, shifts):
    out = plain_toks.clone()
    full = shifts.view(-1, 1).expand_as(plain_toks)
    letters = plain_toks < 26
    out[letters] = (plain_toks[letters] + full[letters]) % 26
    return out


@wrong("word_probabilities", "normalises with softmax over the counts instead of dividing by their sum")
def wp_softmax(counts, mode):
    c = counts.double()
    return (c if mode == "easy" else torch.ones_like(c)).softmax(0)


@wrong("word_probabilities", "easy mode divides the counts without converting to float64 (float32 result)")
def wp_easy_float32(counts, mode):
    if mode == "easy":
        return counts / counts.sum()
    return torch.ones_like(counts, dtype=torch.float64) / len(counts)


@wrong("word_probabilities", "integer (floor) division of integer counts by their total, converted to float64 after")
def wp_floor_div(counts, mode):
    weights = counts if mode == "easy" else torch.ones_like(counts)
    return (weights // weights.sum()).double() if not weights.is_floating_point() else (weights / weights.sum()).double()


@right("word_probabilities")
def wp_to_dtype(counts, mode):
    w = counts.to(torch.float64)
    if mode != "easy":
        w = torch.full_like(w, 1.0)
    return w / w.sum()


@wrong("rotation_twins", "signature is the differences between consecutive letters without modulo 26 (wraps past z split groups)")
def tw_consecutive_nomod(words):
    groups = {}
    for w in words:
        key = tuple(LOW.index(b) - LOW.index(a) for a, b in zip(w, w[1:])) + (len(w),)
        groups.setdefault(key, []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@wrong("rotation_twins", "keeps groups of a single word (words with no twin appear as groups of one)")
def tw_singletons(words):
    groups = {}
    for w in words:
        groups.setdefault(r1.rotate_text(w, -LOW.index(w[0])), []).append(w)
    return sorted(sorted(g) for g in groups.values())


@wrong("rotation_twins", "each group is sorted but the list of groups is left in order of first appearance")
def tw_groups_unsorted(words):
    groups = {}
    for w in words:
        groups.setdefault(r1.rotate_text(w, -LOW.index(w[0])), []).append(w)
    return [sorted(g) for g in groups.values() if len(g) > 1]


@right("rotation_twins")
def tw_rotate_sig(words):
    groups = {}
    for w in words:
        sig = "".join(LOW[(LOW.index(c) - LOW.index(w[0])) % 26] for c in w)
        groups[sig] = groups.get(sig, []) + [w]
    return sorted([sorted(g) for g in groups.values() if len(g) >= 2])


# --- 02 -----------------------------------------------------------------------------------------------------------


def _cfg(mode, **changes):
    from transformer_lens import HookedTransformerConfig

    fields = dict(
        n_layers=2, n_heads=2, d_model=48, d_head=24, d_mlp=None, attn_only=True, act_fn=None,
        normalization_type="LN", positional_embedding_type="standard", attention_dir="causal", n_ctx=32,
        d_vocab=len(VOCAB_HARD if mode == "hard" else VOCAB_EASY), d_vocab_out=26, seed=42, device="cpu",
    )
    fields.update(changes)
    return HookedTransformerConfig(**fields)


@wrong("make_config", "d_vocab_out set to d_vocab (27 or 36 outputs) instead of 26 shifts")
def mc_vocab_out(mode):
    n = len(VOCAB_HARD if mode == "hard" else VOCAB_EASY)
    return _cfg(mode, d_vocab_out=n)


@wrong("make_config", "attention_dir='bidirectional' instead of causal")
def mc_bidirectional(mode):
    return _cfg(mode, attention_dir="bidirectional")


@wrong("make_config", "positional_embedding_type='rotary' instead of learned ('standard') positions")
def mc_rotary(mode):
    return _cfg(mode, positional_embedding_type="rotary", rotary_dim=24)


@right("make_config")
def mc_spelled(mode):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        d_model=48, d_head=24, n_heads=2, n_layers=2, n_ctx=32, attn_only=True, d_mlp=None, act_fn=None,
        normalization_type="LN", positional_embedding_type="standard", attention_dir="causal",
        d_vocab=36 if mode == "hard" else 27, d_vocab_out=26, seed=42, device="cpu",
    )


def _load(mode, device="cpu", weights_mode=None, flags=None, move=True):
    import warnings

    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(r2.make_config(mode))
    sd = torch.load(weights_path(weights_mode or mode), map_location="cpu", weights_only=True)
    f = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
    f.update(flags or {})
    model.load_and_process_state_dict(sd, **f)
    if move:
        model = model.to(device, print_details=False)
    return model.eval()


@wrong("load_trained_model", "only fold_ln=True; centring of writing weights/unembedding and value-bias folding switched off")
def ltm_fold_ln_only(mode, device="cpu"):
    return _load(mode, device, flags=dict(center_writing_weights=False, center_unembed=False, fold_value_biases=False))


@wrong("load_trained_model", "ignores the device argument: the model stays on the CPU")
def ltm_no_move(mode, device="cpu"):
    return _load(mode, device, move=False)


@wrong("load_trained_model", "always loads the easy model's weights file (weights_path('easy')) whatever the mode")
def ltm_easy_weights(mode, device="cpu"):
    if mode == "hard":
        return _load(mode, device)  # the easy weights do not fit the hard vocabulary: the learner noticed only there
    return _load(mode, device, weights_mode="easy")


@wrong("rebuild_b_O", "centres the trained b_O first and adds the folded value bias afterwards (the sum is not centred)")
def rb_centre_before(state_dict, layer):
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    b_O = state_dict[f"{p}.attn.b_O"]
    return b_O - b_O.mean() + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])


@wrong("rebuild_b_O", "forgets LayerNorm's bias: only b_V is pushed through W_O")
def rb_no_ln_bias(state_dict, layer):
    p = f"blocks.{layer}"
    b_O = state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", state_dict[f"{p}.attn.b_V"], state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()


@wrong("rebuild_b_O", "adds into state_dict's b_O in place (b_O += ...), modifying the state dict")
def rb_inplace(state_dict, layer):
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    b_O = state_dict[f"{p}.attn.b_O"]
    b_O += torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()


@right("rebuild_b_O")
def rb_einops(state_dict, layer):
    p = f"blocks.{layer}"
    ln_b, W_V, W_O = state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"], state_dict[f"{p}.attn.W_O"]
    value_bias = state_dict[f"{p}.attn.b_V"] + einops.einsum(ln_b, W_V, "d, h d k -> h k")
    out = state_dict[f"{p}.attn.b_O"] + einops.einsum(value_bias, W_O, "h k, h k d -> d")
    return out - out.mean(-1, keepdim=True)


@wrong("correct_logprobs", "indexes logprobs[:, :, labels]: every sequence gets every sequence's label (shape [batch seq batch])")
def cl_all_labels(logprobs, labels):
    return logprobs[:, :, labels]


@wrong("correct_logprobs", "casts the result to float32 whatever the dtype of logprobs")
def cl_float32(logprobs, labels):
    return eindex(logprobs, labels, "batch seq [batch]").float()


@wrong("correct_logprobs", "returns the largest log-prob at each position (the predicted shift), not the label's")
def cl_max(logprobs, labels):
    return logprobs.max(-1).values


@right("correct_logprobs")
def cl_gather(logprobs, labels):
    idx = labels.view(-1, 1, 1).expand(-1, logprobs.shape[1], 1)
    return logprobs.gather(2, idx).squeeze(2)


@wrong("summary_stats", "mean_p is exp of the mean log-prob (geometric mean), not the mean probability")
def ss_exp_mean(lp):
    p = lp.exp()
    return {"ce": -lp.mean().item(), "mean_p": lp.mean().exp().item(), "median_p": p.median().item(), "min_p": p.min().item()}


@wrong("summary_stats", "ce is the mean log-prob without the minus sign")
def ss_ce_sign(lp):
    p = lp.exp()
    return {"ce": lp.mean().item(), "mean_p": p.mean().item(), "median_p": p.median().item(), "min_p": p.min().item()}


@wrong("summary_stats", "values left as 0-d tensors instead of Python floats")
def ss_tensors(lp):
    p = lp.exp()
    return {"ce": -lp.mean(), "mean_p": p.mean(), "median_p": p.median(), "min_p": p.min()}


@right("summary_stats")
def ss_sorted(lp):
    p = lp.flatten().double().exp().sort().values
    return {"ce": float(-lp.double().sum() / lp.numel()), "mean_p": float(p.sum() / p.numel()),
            "median_p": float(p[(p.numel() - 1) // 2]), "min_p": float(p[0])}


def _fwp(toks, words_freq, cumulative=True, log=True, dtype=torch.float64):
    shifts = torch.arange(26)
    plain = (toks.cpu().unsqueeze(0) - shifts.unsqueeze(1)) % 26
    lik = torch.zeros(3, 26, dtype=torch.float64)
    for word, freq in words_freq:
        m = (plain == _ids(word)).long()
        if cumulative:
            m = torch.cumprod(m, dim=1)
        lik += freq * m.T
    p = lik / lik.sum(-1, keepdim=True)
    return (p.log() if log else p).to(dtype)


@wrong("first_word_posterior", "returns probabilities, not log-probabilities")
def fwp_probs(toks, words_freq):
    return _fwp(toks, words_freq, log=False)


@wrong("first_word_posterior", "row j counts words whose letter j matches, not all of letters 0..j (no cumprod)")
def fwp_no_cumprod(toks, words_freq):
    return _fwp(toks, words_freq, cumulative=False)


@wrong("first_word_posterior", "returns float32 instead of float64")
def fwp_float32(toks, words_freq):
    return _fwp(toks, words_freq, dtype=torch.float32)


@right("first_word_posterior")
def fwp_loop(toks, words_freq):
    out = torch.zeros(3, 26, dtype=torch.float64)
    t = toks.tolist()
    for s in range(26):
        plain = "".join(LETTERS[(x - s) % 26] for x in t)
        for word, freq in words_freq:
            for j in range(3):
                if word[: j + 1] == plain[: j + 1]:
                    out[j, s] += freq
    return (out / out.sum(1, keepdim=True)).log()


# --- 03 -----------------------------------------------------------------------------------------------------------


@wrong("first_char_probs", "runs one sequence of 26 letters (shape [1, 26]) so position j sees letters 0..j")
@torch.inference_mode()
def fcp_one_sequence(model):
    toks = torch.arange(26, device=model.cfg.device).unsqueeze(0)
    return model(toks)[0].softmax(-1).cpu()


@wrong("first_char_probs", "softmax over the first characters (dim 0) instead of over the shifts")
@torch.inference_mode()
def fcp_softmax_dim0(model):
    toks = torch.arange(26, device=model.cfg.device).unsqueeze(1)
    return model(toks)[:, 0].softmax(0).cpu()


@wrong("first_char_probs", "returns float64 instead of float32")
@torch.inference_mode()
def fcp_float64(model):
    toks = torch.arange(26, device=model.cfg.device).unsqueeze(1)
    return model(toks)[:, 0].double().softmax(-1).cpu()


@right("first_char_probs")
@torch.inference_mode()
def fcp_loop(model):
    rows = [model(torch.tensor([[c]], device=model.cfg.device))[0, 0].softmax(-1) for c in range(26)]
    return torch.stack(rows).cpu()


def _lfp(words_freq, equal=False, normalise="total", dtype=torch.float64):
    t = torch.zeros(3, 26, dtype=torch.float64)
    for w, f in words_freq:
        for j in range(3):
            t[j, LETTERS.index(w[j])] += 1.0 if equal else f
    t = t / t.sum(1, keepdim=True) if normalise == "total" else t / len(words_freq)
    return t.to(dtype)


@wrong("letter_freqs_by_position", "every word counted once, ignoring its frequency")
def lf_equal(words_freq):
    return _lfp(words_freq, equal=True)


@wrong("letter_freqs_by_position", "returns float32 instead of float64")
def lf_float32(words_freq):
    return _lfp(words_freq, dtype=torch.float32)


@wrong("letter_freqs_by_position", "divides the weighted counts by the number of words, not by the total weight")
def lf_by_nwords(words_freq):
    return _lfp(words_freq, normalise="n_words")


@wrong("implied_first_letter_probs", "indexes probs[c, (c + L) % 26] (adds the letter instead of subtracting it)")
def ifl_plus(probs):
    rows = torch.arange(26).unsqueeze(1)
    return probs[rows, (rows + torch.arange(26)) % 26].mean(0)


@wrong("implied_first_letter_probs", "averages the re-indexed table over dim 1 (the plaintext letters) instead of dim 0")
def ifl_mean_dim1(probs):
    rows = torch.arange(26).unsqueeze(1)
    return probs[rows, (rows - torch.arange(26)) % 26].mean(1)


@wrong("implied_first_letter_probs", "re-indexes the rows of probs in place (rolls each row of the input), modifying probs")
def ifl_inplace(probs):
    for c in range(26):
        probs[c] = probs[c, (c - torch.arange(26)) % 26]
    return probs.mean(0)


@right("implied_first_letter_probs")
def ifl_loop(probs):
    out = torch.zeros(26, dtype=probs.dtype)
    for L in range(26):
        out[L] = sum(probs[c, (c - L) % 26] for c in range(26)) / 26
    return out


@wrong("rotated_word_tokens", "toks word-major but shifts repeat_interleave'd (shift-major): 0,0,...,1,1,...")
def rwt_shift_mismatch(word_list):
    toks, _ = r3.rotated_word_tokens(word_list)
    return toks, torch.arange(26).repeat_interleave(len(word_list))


@wrong("rotated_word_tokens", "adds the shift without modulo 26: ids above 25")
def rwt_no_mod(word_list):
    toks = torch.stack([_ids(w) for w in word_list])
    rot = toks.unsqueeze(1) + torch.arange(26).view(1, 26, 1)
    return einops.rearrange(rot, "w r l -> (w r) l"), einops.repeat(torch.arange(26), "r -> (w r)", w=len(word_list))


@wrong("rotated_word_tokens", "shifts run 1..26 (arange(1, 27)) instead of 0..25")
def rwt_shift_from_1(word_list):
    toks = torch.stack([_ids(w) for w in word_list])
    s = torch.arange(1, 27)
    rot = (toks.unsqueeze(1) + s.view(1, 26, 1)) % 26
    return einops.rearrange(rot, "w r l -> (w r) l"), einops.repeat(s, "r -> (w r)", w=len(word_list))


@right("rotated_word_tokens")
def rwt_loops(word_list):
    rows, shifts = [], []
    for w in word_list:
        for s in range(26):
            rows.append([(LETTERS.index(c) + s) % 26 for c in w])
            shifts.append(s)
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(shifts, dtype=torch.int64)


@wrong("rotation_averaged_probs", "softmax over the positions (dim 1) instead of over the 26 shifts")
@torch.inference_mode()
def rap_softmax_pos(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(1).cpu()
    return einops.reduce(eindex(probs, shifts.cpu(), "r s [r]"), "(w r) s -> w s", "mean", r=26)


@wrong("rotation_averaged_probs", "groups the rows as (rotation word) instead of (word rotation) when averaging")
@torch.inference_mode()
def rap_rot_major(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()
    return einops.reduce(eindex(probs, shifts.cpu(), "r s [r]"), "(r w) s -> w s", "mean", r=26)


@wrong("rotation_averaged_probs", "returns float64 (softmax taken in double precision) instead of float32")
@torch.inference_mode()
def rap_float64(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).double().softmax(-1).cpu()
    return einops.reduce(eindex(probs, shifts.cpu(), "r s [r]"), "(w r) s -> w s", "mean", r=26)


def _iep(word_list, letter_freqs, cumulative=True, pos_freqs=None, dim=-1):
    toks = torch.stack([_ids(w) for w in word_list])
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    logf = letter_freqs.double().log()
    pos = torch.arange(3).view(1, 3, 1) if pos_freqs is None else torch.full((1, 3, 1), pos_freqs)
    ev = logf[pos, plain]
    if cumulative:
        ev = ev.cumsum(1)
    return ev.softmax(dim)[..., 0]


@wrong("independent_evidence_probs", "no running sum: the posterior after letter j uses letter j's evidence alone")
def iep_no_cumsum(word_list, letter_freqs):
    return _iep(word_list, letter_freqs, cumulative=False)


@wrong("independent_evidence_probs", "looks every letter up in the first-letter frequencies (row 0) whatever its position")
def iep_row0(word_list, letter_freqs):
    return _iep(word_list, letter_freqs, pos_freqs=0)


@wrong("independent_evidence_probs", "softmax over the positions (dim 1) instead of over the 26 shifts")
def iep_softmax_pos(word_list, letter_freqs):
    return _iep(word_list, letter_freqs, dim=1)


@right("independent_evidence_probs")
def iep_product(word_list, letter_freqs):
    out = torch.zeros(len(word_list), 3, dtype=torch.float64)
    f = letter_freqs.double()
    for i, w in enumerate(word_list):
        lik = torch.ones(26, dtype=torch.float64)
        for j, c in enumerate(w[:3]):
            lik = lik * f[j, (LETTERS.index(c) - torch.arange(26)) % 26]
            out[i, j] = lik[0] / lik.sum()
    return out


def _disagreement(candidates, words_freq, col=1):
    indep = analysis.independent_evidence_probs(candidates, analysis.letter_freqs_by_position(words_freq))[:, col]
    bayes = analysis.bayes_word_probs(candidates, words_freq)[:, col]
    return bayes, indep


@wrong("discriminating_openings", "picks the words on which the independent observer is least confident, not where the two disagree")
def do_indep_unsure(candidates, words_freq, k):
    _, indep = _disagreement(candidates, words_freq)
    return [candidates[i] for i in indep.argsort()[:k].tolist()]


@wrong("discriminating_openings", "picks the words on which the independent observer is most confident, not where the two disagree")
def do_indep_confident(candidates, words_freq, k):
    _, indep = _disagreement(candidates, words_freq)
    return [candidates[i] for i in indep.argsort(descending=True)[:k].tolist()]


@wrong("discriminating_openings", "compares the observers at position 0 (first letter) instead of position 1")
def do_position0(candidates, words_freq, k):
    bayes, indep = _disagreement(candidates, words_freq, col=0)
    return [candidates[i] for i in (bayes - indep).abs().argsort(descending=True)[:k].tolist()]


@wrong("below_bayes_verdict", "unpaired standard error: the two means' errors combined in quadrature, ignoring the pairing")
def bb_unpaired(model_p, bayes_p):
    m, b = model_p.double(), bayes_p.double()
    n = len(m)
    diff = float(m.mean() - b.mean())
    se = math.sqrt(float(m.var() / n + b.var() / n))
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}


@wrong("below_bayes_verdict", "difference taken as Bayes - model (sign reversed)")
def bb_sign(model_p, bayes_p):
    d = (bayes_p - model_p).double()
    se = float(d.std() / math.sqrt(len(d)))
    return {"difference": float(d.mean()), "se": se, "real": abs(float(d.mean())) > 2 * se}


@wrong("below_bayes_verdict", "returns 0-d tensors (and a tensor bool) instead of Python floats and bool")
def bb_tensors(model_p, bayes_p):
    d = (model_p - bayes_p).double()
    se = d.std() / math.sqrt(len(d))
    return {"difference": d.mean(), "se": se, "real": d.mean().abs() > 2 * se}


@right("below_bayes_verdict")
def bb_closed_form(model_p, bayes_p):
    d = model_p.double() - bayes_p.double()
    n = d.numel()
    mean = d.sum() / n
    se = ((d - mean).pow(2).sum() / (n - 1)).sqrt() / n**0.5
    return {"difference": mean.item(), "se": se.item(), "real": bool(mean.abs() > 2 * se)}


# --- 04 -----------------------------------------------------------------------------------------------------------


@wrong("dla_correct", "multiplies by the LayerNorm scale instead of dividing by it")
def dla_times_scale(components, scale, W_U, labels):
    c = components - components.mean(1, keepdim=True)
    return einops.einsum(c * scale, W_U[:, labels], "c b s d, d b -> c b s")


@wrong("dla_correct", "subtracts the mean over batch and positions (dims 1 and 2) instead of over the batch only")
def dla_centre_batch_seq(components, scale, W_U, labels):
    c = components - components.mean((1, 2), keepdim=True)
    return einops.einsum(c / scale, W_U[:, labels], "c b s d, d b -> c b s")


@wrong("dla_correct", "divides by scale first and then subtracts the batch mean of the scaled components")
def dla_centre_after_scale(components, scale, W_U, labels):
    c = components / scale
    c = c - c.mean(1, keepdim=True)
    return einops.einsum(c, W_U[:, labels], "c b s d, d b -> c b s")


@right("dla_correct")
def dla_all_logits(components, scale, W_U, labels):
    logits = ((components - components.mean(1, keepdim=True)) / scale) @ W_U  # [c b s 26]
    return eindex(logits, labels, "c b s [b]")


@wrong("attention_slot_shares", "averages the attention over the sources of a slot instead of summing it")
def ass_mean_sources(pattern):
    seq = pattern.shape[-1]
    oh = F.one_hot(torch.arange(seq) % 4, 4).float()
    by_src = einops.einsum(pattern.float(), oh, "b h d s, s k -> b h d k") / oh.sum(0)
    summed = einops.einsum(by_src, oh, "b h d k, d j -> h j k")
    return (summed / (oh.sum(0) * pattern.shape[0]).view(1, 4, 1)).cpu()


@wrong("attention_slot_shares", "divides by batch * seq // 4 destinations per slot (wrong when seq is not a multiple of 4)")
def ass_seq_div4(pattern):
    seq = pattern.shape[-1]
    oh = F.one_hot(torch.arange(seq) % 4, 4).float()
    summed = einops.einsum(pattern.float(), oh, oh, "b h d s, s k, d j -> h j k")
    return (summed / (pattern.shape[0] * (seq // 4))).cpu()


@wrong("attention_slot_shares", "returns shares[h, src_slot, dest_slot] (the two slot axes swapped)")
def ass_transposed(pattern):
    return r4.attention_slot_shares(pattern).transpose(1, 2)


@right("attention_slot_shares")
def ass_loops(pattern):
    H, seq = pattern.shape[1], pattern.shape[-1]
    out = torch.zeros(H, 4, 4)
    p = pattern.float().cpu()
    for d in range(4):
        dests = list(range(d, seq, 4))
        for k in range(4):
            srcs = list(range(k, seq, 4))
            out[:, d, k] = p[:, :, dests][:, :, :, srcs].sum(-1).mean((0, 2))
    return out


@wrong("loss_per_position", "uses the raw logits as log-probs (no log_softmax)")
def lpp_no_logsoftmax(logits, labels):
    return -eindex(logits, labels, "batch seq [batch]").mean(0)


@wrong("loss_per_position", "sums the loss over the batch instead of averaging it")
def lpp_sum(logits, labels):
    return -eindex(logits.log_softmax(-1), labels, "batch seq [batch]").sum(0)


@wrong("loss_per_position", "log_softmax over the positions (dim 1) instead of the shifts")
def lpp_logsoftmax_dim1(logits, labels):
    return -eindex(logits.log_softmax(1), labels, "batch seq [batch]").mean(0)


@right("loss_per_position")
def lpp_cross_entropy(logits, labels):
    B, S, V = logits.shape
    ce = F.cross_entropy(logits.reshape(B * S, V), labels.repeat_interleave(S), reduction="none")
    return ce.view(B, S).mean(0)


def _abl(model, toks, layer, head, method, mean_dims=(0,), axis=2):
    def hook(z, hook):
        z = z.clone()
        sl = [slice(None)] * 4
        sl[axis] = head
        sl = tuple(sl)
        if method == "zero":
            z[sl] = 0.0
        else:
            z[sl] = z.mean(mean_dims, keepdim=True).expand_as(z)[sl]
        return z
    with torch.inference_mode():
        return model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])


@wrong("ablated_logits", "ignores method: always zero-ablates")
@torch.inference_mode()
def al_always_zero(model, toks, layer, head, method="mean"):
    return _abl(model, toks, layer, head, "zero")


@wrong("ablated_logits", "mean ablation averages over the positions (dim 1) of each sequence instead of over the batch")
@torch.inference_mode()
def al_mean_over_pos(model, toks, layer, head, method="mean"):
    return _abl(model, toks, layer, head, method, mean_dims=(1,))


@wrong("ablated_logits", "indexes the head on the seq axis (z[:, head]) instead of the head axis (z[:, :, head])")
@torch.inference_mode()
def al_seq_axis(model, toks, layer, head, method="mean"):
    return _abl(model, toks, layer, head, method, axis=1)


@right("ablated_logits")
@torch.inference_mode()
def al_torch_where(model, toks, layer, head, method="mean"):
    def hook(z, hook):
        repl = torch.zeros_like(z) if method == "zero" else z.mean(0, keepdim=True).expand_as(z)
        pick = torch.zeros(z.shape[2], dtype=torch.bool, device=z.device)
        pick[head] = True
        return torch.where(pick.view(1, 1, -1, 1), repl, z)
    return model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])


def _alc(model, toks, labels, method, combine=lambda a, c: a - c, loss=None):
    loss = loss or r4.loss_per_position
    clean = loss(model(toks.to(model.cfg.device)).cpu(), labels.cpu())
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, toks.shape[1])
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            abl = loss(r4.ablated_logits(model, toks, l, h, method).cpu(), labels.cpu())
            out[l, h] = combine(abl, clean)
    return out


@wrong("ablation_loss_change", "clean minus ablated loss (sign reversed)")
@torch.inference_mode()
def alc_sign(model, toks, labels, method="mean"):
    return _alc(model, toks, labels, method, combine=lambda a, c: c - a)


@wrong("ablation_loss_change", "ignores method: always mean-ablates")
@torch.inference_mode()
def alc_ignore_method(model, toks, labels, method="mean"):
    return _alc(model, toks, labels, "mean")


@wrong("ablation_loss_change", "loss summed over the batch instead of averaged (per-position loss of the whole batch)")
@torch.inference_mode()
def alc_summed(model, toks, labels, method="mean"):
    def loss(logits, labels):
        return -eindex(logits.log_softmax(-1), labels, "batch seq [batch]").sum(0)
    return _alc(model, toks, labels, method, loss=loss)


@wrong("discriminating_ablation", "ablates head 1.1's direct path: both accounts predict the same large drop")
def da_head_11():
    return {"components": ["1.1"], "path": "direct", "verdict": "filter"}


@wrong("discriminating_ablation", "removes the direct paths of all five components, head 1.1 included: both accounts predict a drop")
def da_everything():
    return {"components": ["embed", "0.0", "0.1", "1.0", "1.1"], "path": "direct", "verdict": "filter"}


@right("discriminating_ablation")
def da_with_head_10():
    """The filter account also has head 1.0's direct path choose among the consistent shifts; 'alone' needs none."""
    return {"components": ["embed", "0.0", "0.1", "1.0"], "path": "direct", "verdict": "filter"}


def _shares(dla, a, b):
    return attribution.group_share(dla, a) - attribution.group_share(dla, b)


@wrong("shares_differ", "standard error of the mean of per-sequence share differences (ratio of each sequence, not of means)")
def sd_per_sequence_ratio(dla, group_a, group_b):
    per = (dla[group_a].sum(0) - dla[group_b].sum(0)) / dla.sum(0)
    diff = float(_shares(dla, group_a, group_b))
    se = float(per.std() / math.sqrt(dla.shape[1]))
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}


@wrong("shares_differ", "difference taken as share of group_b minus share of group_a")
def sd_b_minus_a(dla, group_a, group_b):
    diff = float(_shares(dla, group_b, group_a))
    se = _bootstrap_se(lambda x: _shares(x.T, group_b, group_a), dla.T)
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}


@wrong("shares_differ", "calls the difference real beyond one standard error instead of two")
def sd_one_se(dla, group_a, group_b):
    diff = float(_shares(dla, group_a, group_b))
    se = _bootstrap_se(lambda x: _shares(x.T, group_a, group_b), dla.T)
    return {"difference": diff, "se": se, "real": abs(diff) > se}


@right("shares_differ")
def sd_bootstrap(dla, group_a, group_b):
    diff = float(_shares(dla, group_a, group_b))
    se = _bootstrap_se(lambda x: _shares(x.T, group_a, group_b), dla.T, n_boot=800, seed=3)
    return {"difference": diff, "se": se, "real": bool(abs(diff) > 2 * se)}


# --- 05 -----------------------------------------------------------------------------------------------------------


def _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, ln="div", fin="div", transpose=False):
    x = resid / ln_scale if ln == "div" else resid * ln_scale
    pat = "b s i, h o i -> h b s o" if transpose else "b s i, h i o -> h b s o"
    out = einops.einsum(x, W_OV, pat)
    out = out / final_scale if fin == "div" else out * final_scale
    logits = out @ W_U
    return eindex(logits, labels, "h b s [b]")


@wrong("ov_correct_logits", "multiplies the stream by the layer's LayerNorm scale instead of dividing")
def ov_mul_ln(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, ln="mul")


@wrong("ov_correct_logits", "multiplies by the final LayerNorm scale instead of dividing")
def ov_mul_final(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, fin="mul")


@wrong("ov_correct_logits", "applies W_OV transposed (contracts its output index with the stream)")
def ov_transposed(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return _ov(resid, ln_scale, W_OV, W_U, final_scale, labels, transpose=True)


@right("ov_correct_logits")
def ov_unembed_first(resid, ln_scale, W_OV, W_U, final_scale, labels):
    per_label = W_U[:, labels]  # [d batch]
    head_dirs = einops.einsum(W_OV, per_label, "h i o, o b -> h b i")
    return einops.einsum(resid / ln_scale, head_dirs, "b s i, h b i -> h b s") / final_scale


def _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, scale=None, mask="causal", after=False, use_bk=True):
    q = einops.einsum(q_resid, W_Q, "d m, h m k -> h d k") + b_Q.unsqueeze(1)
    k = einops.einsum(k_resid, W_K, "s m, h m k -> h s k") + (b_K.unsqueeze(1) if use_bk else 0)
    scale = W_Q.shape[-1] ** 0.5 if scale is None else scale
    scores = einops.einsum(q, k, "h d k, h s k -> h d s") / scale
    D, S = scores.shape[-2:]
    keep = torch.ones(D, S, dtype=torch.bool).tril() if mask == "causal" else torch.ones(D, S, dtype=torch.bool).triu()
    if after:
        return scores.softmax(-1) * keep
    return scores.masked_fill(~keep, float("-inf")).softmax(-1)


@wrong("qk_pattern", "scales the scores by 1 / d_head instead of 1 / sqrt(d_head)")
def qk_div_dhead(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, scale=W_Q.shape[-1])


@wrong("qk_pattern", "mask transposed: keeps sources at or after the destination (triu) instead of before it")
def qk_mask_transposed(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, mask="triu")


@wrong("qk_pattern", "softmax over all sources first, then zeroes the later ones without renormalising")
def qk_mask_after(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, after=True)


@wrong("qk_pattern", "scales the scores by 1 / sqrt(d_model) instead of 1 / sqrt(d_head)")
def qk_sqrt_dmodel(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, scale=W_Q.shape[1] ** 0.5)


@right("qk_pattern")
def qk_no_key_bias(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    """b_K adds q . b_K to every source of a row: a constant that the softmax cancels."""
    return _qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K, use_bk=False)


@wrong("key_input_control", "sets 0A's stream to zero: a key input the head never meets (out of distribution)")
def kic_zero(resid):
    out = resid.clone()
    out[:, 0] = 0.0
    return out


@wrong("key_input_control", "adds small random noise to 0A: far less than a third of the blow-up's change")
def kic_noise(resid):
    out = resid.clone()
    g = torch.Generator().manual_seed(0)
    out[:, 0] += 0.01 * resid[:, 0].norm(dim=-1, keepdim=True) * torch.randn(resid[:, 0].shape, generator=g) / math.sqrt(resid.shape[-1])
    return out


@wrong("key_input_control", "writes 0C's stream into 0A of the input tensor in place (modifies resid) and returns it")
def kic_inplace(resid):
    resid[:, 0] = resid[:, 2]
    return resid


@right("key_input_control")
def kic_from_0B(resid):
    out = resid.clone()
    out[:, 0] = resid[:, 1]
    return out


@wrong("discriminating_swap", "donor is the 3rd letter of the next word: neither hypothesis predicts a fall")
def dsw_third_letter_donor():
    return {"part": "position", "donor": "3rd letter", "verdict": "position"}


@wrong("discriminating_swap", "the right swap, but the verdict 'layer 0' although the measured share falls")
def dsw_wrong_verdict():
    return {"part": "position", "donor": "2nd letter", "verdict": "layer 0"}


@right("discriminating_swap")
def dsw_layer0_part():
    """Swapping layer 0's part instead: 'layer 0' predicts a fall, 'position' does not; the share does not fall."""
    return {"part": "layer 0", "donor": "2nd letter", "verdict": "position"}


# --- 06 -----------------------------------------------------------------------------------------------------------


def _fb(toks, letter_freqs, mask=True, cumulative=True, out="log"):
    logf = letter_freqs.double().log()
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    ev = logf[plain]
    if mask:
        ev = torch.where((toks < 26).unsqueeze(-1), ev, torch.zeros((), dtype=ev.dtype))
    if cumulative:
        ev = ev.cumsum(1)
    return ev.log_softmax(-1) if out == "log" else ev.softmax(-1)


@wrong("frequency_baseline_logprobs", "non-letters are not masked: ids >= 26 are decoded modulo 26 and add evidence")
def fb_no_mask(toks, letter_freqs):
    return _fb(toks, letter_freqs, mask=False)


@wrong("frequency_baseline_logprobs", "no running sum: each position uses only its own token's evidence")
def fb_no_cumsum(toks, letter_freqs):
    return _fb(toks, letter_freqs, cumulative=False)


@wrong("frequency_baseline_logprobs", "returns probabilities (softmax) instead of log-probabilities")
def fb_probs(toks, letter_freqs):
    return _fb(toks, letter_freqs, out="prob")


@right("frequency_baseline_logprobs")
def fb_uniform_nonletters(toks, letter_freqs):
    """A non-letter gets the same log-likelihood under every shift (here log 1/26): log_softmax cancels it."""
    logf = letter_freqs.double().log()
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    ev = logf[plain].masked_fill((toks >= 26).unsqueeze(-1), -math.log(26))
    cum = ev.cumsum(1)
    return cum - cum.logsumexp(-1, keepdim=True)


def _lbl(logprobs_correct, toks, max_letters=26, exclusive=False, n_buckets=None, empty_nan=True):
    is_letter = (toks < 26).long()
    n = is_letter.cumsum(1) - (is_letter if exclusive else 0)
    nb = max_letters + 1 if n_buckets is None else n_buckets
    n = n.clamp(max=nb - 1).flatten()
    loss = -logprobs_correct.flatten().double()
    total = torch.zeros(nb, dtype=torch.float64).index_add_(0, n, loss)
    count = torch.zeros(nb, dtype=torch.float64).index_add_(0, n, torch.ones_like(loss))
    out = total / count
    if not empty_nan:
        out = out.nan_to_num(0.0)
    return out


@wrong("loss_by_letters_seen", "counts the letters before the position, not including the current one")
def lbl_exclusive(logprobs_correct, toks, max_letters=26):
    return _lbl(logprobs_correct, toks, max_letters, exclusive=True)


@wrong("loss_by_letters_seen", "max_letters buckets (0..max_letters-1) instead of max_letters + 1: the top bucket is one too low")
def lbl_too_few_buckets(logprobs_correct, toks, max_letters=26):
    return _lbl(logprobs_correct, toks, max_letters, n_buckets=max_letters)


@wrong("loss_by_letters_seen", "empty buckets are 0 instead of NaN")
def lbl_empty_zero(logprobs_correct, toks, max_letters=26):
    return _lbl(logprobs_correct, toks, max_letters, empty_nan=False)


@right("loss_by_letters_seen")
def lbl_bincount(logprobs_correct, toks, max_letters=26):
    n = (toks < 26).cumsum(1).clamp(max=max_letters).flatten()
    loss = -logprobs_correct.flatten().double()
    total = torch.bincount(n, weights=loss, minlength=max_letters + 1)
    count = torch.bincount(n, minlength=max_letters + 1).double()
    out = torch.full((max_letters + 1,), float("nan"), dtype=torch.float64)
    nz = count > 0
    out[nz] = total[nz] / count[nz]
    return out


@wrong("nonletter_attention_share", "marks the destinations that hold non-letters instead of the sources")
def nas_mark_dest(pattern, toks):
    is_non = (toks >= 26).to(pattern.dtype)
    return einops.reduce(pattern.sum(-1) * is_non[:, None, :], "b h d -> h", "mean")


@wrong("nonletter_attention_share", "non-letter test is ids > 26: the space (id 26) counts as a letter")
def nas_gt26(pattern, toks):
    is_non = (toks > 26).to(pattern.dtype)
    return einops.reduce(einops.einsum(pattern, is_non, "b h d s, b s -> b h d"), "b h d -> h", "mean")


@wrong("nonletter_attention_share", "sums over destinations instead of averaging over them")
def nas_sum_dest(pattern, toks):
    is_non = (toks >= 26).to(pattern.dtype)
    return einops.einsum(pattern, is_non, "b h d s, b s -> b h d").sum(-1).mean(0)


@right("nonletter_attention_share")
def nas_masked_fill(pattern, toks):
    on = pattern.masked_fill((toks < 26)[:, None, None, :], 0.0).sum(-1)
    return on.mean(dim=(0, 2))


def _rb(probs, targets, n_bins=10, share=True, edge="floor", dtype=torch.float64, force_bins=None):
    nb = force_bins or n_bins
    p = probs.double()
    c, pred = p.max(-1)
    correct = (pred == targets).double()
    if edge == "floor":
        idx = (c * nb).floor().long().clamp(0, nb - 1)
    else:
        idx = ((c * nb).ceil().long() - 1).clamp(0, nb - 1)
    z = torch.zeros(nb, dtype=torch.float64)
    count = z.index_add(0, idx, torch.ones_like(c))
    mc = z.index_add(0, idx, c) / count
    acc = z.index_add(0, idx, correct) / count
    return torch.stack([mc, acc, count / len(c) if share else count]).to(dtype)


@wrong("reliability_bins", "row 2 is the number of predictions in each bin, not their share of all predictions")
def rb_count(probs, targets, n_bins=10):
    return _rb(probs, targets, n_bins, share=False)


@wrong("reliability_bins", "bin index ceil(c * n_bins) - 1: a confidence exactly on a bin edge goes into the bin below")
def rb_edge_lower(probs, targets, n_bins=10):
    return _rb(probs, targets, n_bins, edge="ceil")


@wrong("reliability_bins", "ignores n_bins: always 10 bins")
def rb_always_10(probs, targets, n_bins=10):
    return _rb(probs, targets, n_bins, force_bins=10)


@wrong("reliability_bins", "returns float32 instead of float64")
def rb_float32(probs, targets, n_bins=10):
    return _rb(probs, targets, n_bins, dtype=torch.float32)


@right("reliability_bins")
def rb_loop(probs, targets, n_bins=10):
    out = torch.full((3, n_bins), float("nan"), dtype=torch.float64)
    conf, pred = probs.double().max(-1)
    idx = torch.minimum((conf * n_bins).floor().long(), torch.tensor(n_bins - 1))
    for i in range(n_bins):
        sel = idx == i
        out[2, i] = sel.double().mean()
        if sel.any():
            out[0, i] = conf[sel].mean()
            out[1, i] = (pred[sel] == targets[sel]).double().mean()
    return out


def _ece(probs, labels):
    return float(calibration.ece_of_sums(calibration.per_sequence_bins(probs, labels).sum(0)))


@wrong("ece_difference_verdict", "bootstraps individual predictions (flattened windows) instead of whole windows: SE far too small")
def ece_per_prediction(model_probs, baseline_probs, labels):
    B, S, V = model_probs.shape
    a = calibration.per_sequence_bins(model_probs.reshape(B * S, 1, V), labels.repeat_interleave(S))
    b = calibration.per_sequence_bins(baseline_probs.reshape(B * S, 1, V), labels.repeat_interleave(S))
    diff = float(calibration.ece_of_sums(a.sum(0)) - calibration.ece_of_sums(b.sum(0)))
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, B * S, (200, B * S), generator=g)
    boots = torch.stack([calibration.ece_of_sums(a[i].sum(0)) - calibration.ece_of_sums(b[i].sum(0)) for i in idx])
    se = float(boots.std())
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}


@wrong("ece_difference_verdict", "calls the difference real when it exceeds a fixed 0.002, without any standard error")
def ece_fixed_threshold(model_probs, baseline_probs, labels):
    diff = _ece(model_probs, labels) - _ece(baseline_probs, labels)
    return {"difference": diff, "se": 0.0, "real": abs(diff) > 0.002}


@wrong("choose_control", "control is a zero ablation of the rival head: an activation the model never produces")
def cc_rival_zero(head, rival, position):
    return {"component": rival, "position": position, "method": "zero"}


@wrong("choose_control", "control is a mean ablation of the rival: the batch-mean activation is not one real text produces")
def cc_rival_mean(head, rival, position):
    return {"component": rival, "position": position, "method": "mean"}


@wrong("choose_control", "ignores the arguments: always resamples head 1.1 at position 1")
def cc_hardcoded(head, rival, position):
    return {"component": "1.1", "position": 1, "method": "resample"}


# --- 07 -----------------------------------------------------------------------------------------------------------


def _pmw(word_toks, word_probs, n_keep, how="prefix", unweighted=False, norm=True, exclude_self=False):
    if how == "prefix":
        same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
    else:  # only letter n_keep - 1
        same = (word_toks[:, None, n_keep - 1] == word_toks[None, :, n_keep - 1]) if n_keep else torch.ones(
            len(word_toks), len(word_toks), dtype=torch.bool)
    w = same.to(word_probs.dtype) * (torch.ones_like(word_probs) if unweighted else word_probs)[None, :]
    if exclude_self:
        w = w * (1 - torch.eye(len(word_toks), dtype=w.dtype))
    if norm:
        w = w / w.sum(-1, keepdim=True)
    return w


@wrong("prefix_match_weights", "compares only letter n_keep - 1 instead of all of the first n_keep letters")
def pmw_last_kept(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, how="last_kept")


@wrong("prefix_match_weights", "excludes word i itself from its row (a replacement must be a different word)")
def pmw_exclude_self(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, exclude_self=True)


@wrong("prefix_match_weights", "matching words weighted equally instead of by word_probs")
def pmw_unweighted(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, unweighted=True)


@wrong("prefix_match_weights", "no renormalisation: row i is word_probs masked to the matching words")
def pmw_no_norm(word_toks, word_probs, n_keep):
    return _pmw(word_toks, word_probs, n_keep, norm=False)


@right("prefix_match_weights")
def pmw_loop(word_toks, word_probs, n_keep):
    n = len(word_toks)
    out = torch.zeros(n, n, dtype=torch.float64)
    rows = [tuple(r) for r in word_toks[:, :n_keep].tolist()]
    for i in range(n):
        for j in range(n):
            if rows[i] == rows[j]:
                out[i, j] = word_probs[j]
        out[i] /= out[i].sum()
    return out


def _kv(model, toks, new_k, new_v, mask, layer=1, invert=False, none_all=True, inplace=False):
    S = toks.shape[1]
    if mask is None:
        keep = torch.ones(S, dtype=torch.bool) if none_all else torch.zeros(S, dtype=torch.bool)
    else:
        keep = mask.bool()
    if invert:
        keep = ~keep
    keep = keep.to(new_k.device).view(1, -1, 1, 1)

    def patch(new):
        if inplace:
            def h(act, hook):
                new[~keep.expand_as(new)] = act[~keep.expand_as(act)]
                return new
            return h
        return lambda act, hook: torch.where(keep, new, act)

    hooks = [(f"blocks.{layer}.attn.hook_k", patch(new_k)), (f"blocks.{layer}.attn.hook_v", patch(new_v))]
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=hooks)


@wrong("run_with_patched_kv", "mask=None is read as 'no positions': nothing is patched by default")
def kv_none_nothing(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, none_all=False)


@wrong("run_with_patched_kv", "patches layer 0's keys and values instead of layer 1's")
def kv_layer0(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, layer=0)


@wrong("run_with_patched_kv", "mask inverted: patches where mask is False, keeps where it is True")
def kv_inverted(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, invert=True)


@wrong("run_with_patched_kv", "writes the clean activations into new_k / new_v in place and returns them (mutates the inputs)")
def kv_inplace(model, toks, new_k, new_v, mask=None):
    return _kv(model, toks, new_k, new_v, mask, inplace=True)


def _wrp(model, word_toks, pos=2, label="s", log=False):
    shifts = torch.arange(26)
    rot = (word_toks[:, None, :] + shifts[None, :, None]) % 26
    logits = model(einops.rearrange(rot, "w s c -> (w s) c").to(model.cfg.device))[:, pos]
    p = (logits.log_softmax(-1) if log else logits.softmax(-1)).cpu()
    p = einops.rearrange(p, "(w s) v -> w s v", s=26)
    if label == "s":
        return eindex(p, shifts, "w s [s]")
    return p[..., 0]


@wrong("word_rotation_probs", "reads the prediction at position 0 (after the first letter) instead of after the 3rd")
@torch.inference_mode()
def wrp_pos0(model, word_toks):
    return _wrp(model, word_toks, pos=0)


@wrong("word_rotation_probs", "picks the probability of shift 0 for every encoding instead of shift s")
@torch.inference_mode()
def wrp_shift0(model, word_toks):
    return _wrp(model, word_toks, label="0")


@wrong("word_rotation_probs", "returns log-probabilities instead of probabilities")
@torch.inference_mode()
def wrp_log(model, word_toks):
    return _wrp(model, word_toks, log=True)


@right("word_rotation_probs")
@torch.inference_mode()
def wrp_loop(model, word_toks):
    cols = []
    for s in range(26):
        logits = model(((word_toks + s) % 26).to(model.cfg.device))
        cols.append(logits[:, -1].softmax(-1)[:, s].cpu())
    return torch.stack(cols, dim=1)


@wrong("falsify_monotone", "keeps more of slot A only, (2, 1, 1, 1): the first letter's slot, which the rule's falsifier does not need")
def fm_slot_a():
    return (2, 1, 1, 1)


@wrong("falsify_monotone", "keeps more only in the space slot, (1, 1, 1, 3), which the rule's falsifier does not need")
def fm_space_slot():
    return (1, 1, 1, 3)


@wrong("falsify_monotone", "keeps two letters in every slot, (2, 2, 2, 2): more everywhere, so it recovers more, not less")
def fm_all_two():
    return (2, 2, 2, 2)


@right("falsify_monotone")
def fm_c_and_space():
    return (1, 1, 3, 3)


@wrong("difference_is_real", "standard error over all tokens (batch*seq observations), as if positions were independent")
def dr_tokens(loss_a, loss_b):
    d = (loss_a - loss_b).double().flatten()
    se = float(d.std() / math.sqrt(len(d)))
    return {"difference": float(d.mean()), "se": se, "real": abs(float(d.mean())) > 2 * se}


@wrong("difference_is_real", "standard error over the positions (per-position mean differences, n = seq)")
def dr_positions(loss_a, loss_b):
    d = (loss_a - loss_b).double().mean(0)
    se = float(d.std() / math.sqrt(len(d)))
    return {"difference": float(d.mean()), "se": se, "real": abs(float(d.mean())) > 2 * se}


@wrong("difference_is_real", "se is the standard deviation of the per-sequence differences, not divided by sqrt(n)")
def dr_no_sqrt(loss_a, loss_b):
    d = (loss_a - loss_b).double().mean(1)
    se = float(d.std())
    return {"difference": float(d.mean()), "se": se, "real": abs(float(d.mean())) > 2 * se}


@right("difference_is_real")
def dr_bootstrap(loss_a, loss_b):
    a, b = loss_a.double().mean(1), loss_b.double().mean(1)
    diff = float(a.mean() - b.mean())
    se = _bootstrap_se(lambda x, y: x.mean() - y.mean(), a, b, n_boot=2000, seed=1)
    return {"difference": diff, "se": se, "real": abs(diff) > 2 * se}
