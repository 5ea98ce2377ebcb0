"""A held-out set of plausible wrong answers, written from each exercise's text as a learner would (not from the
catalogue in utils/reference/lessonNN_mistakes.py), and of correct answers written differently.

`WRONG`: (exercise, id, function, causes): `causes` are the catalogued mistakes whose sentence would be a right
diagnosis of this answer (empty: none of them; a diagnosis naming another one is a misdiagnosis).
`RIGHT`: (exercise, id, function): must pass. `python -m tests.mutants.measure` prints the rates."""

from __future__ import annotations

import math
import string

import einops
import torch
from eindex import eindex

from utils.data import VOCAB_EASY, VOCAB_HARD
from utils.reference import lesson01 as r1, lesson02 as r2, lesson03 as r3, lesson04 as r4
from utils.reference import lesson05 as r5, lesson06 as r6, lesson07 as r7

LOW, UP = string.ascii_lowercase, string.ascii_uppercase
WRONG: list[tuple[str, str, object, tuple[str, ...]]] = []
RIGHT: list[tuple[str, str, object]] = []


def wrong(exercise, causes=()):
    def add(fn):
        WRONG.append((exercise, fn.__name__, fn, tuple(causes)))
        return fn
    return add


def right(exercise):
    def add(fn):
        RIGHT.append((exercise, fn.__name__, fn))
        return fn
    return add


# --- 01 -----------------------------------------------------------------------------------------------------------
@wrong("rotate_text", ["wraps_at_25"])
def rot_mod_25(text, shift):
    return "".join(LOW[(LOW.index(c) + shift) % 25] if c in LOW else UP[(UP.index(c) + shift) % 25] if c in UP else c for c in text)


@wrong("rotate_text", ["abs_shift"])
def rot_abs(text, shift):
    return r1.rotate_text(text, abs(shift))


@wrong("rotate_text", ["backwards"])
def rot_minus(text, shift):
    return r1.rotate_text(text, -shift)


@wrong("rotate_text", ["capitals_lowered"])
def rot_lower_first(text, shift):
    return r1.rotate_text(text.lower(), shift)


@wrong("rotate_text", ["isalpha"])
def rot_isalpha(text, shift):
    return "".join(chr((ord(c.lower()) - 97 + shift) % 26 + 97) if c.isalpha() else c for c in text)


@wrong("rotate_text", ["shift_clamped"])
def rot_shift_clamped(text, shift):  # "any integer": clamps to 0..25 instead of reducing mod 26
    return r1.rotate_text(text, max(0, min(25, shift)))


@right("rotate_text")
def rot_translate(text, shift):
    s = shift % 26
    table = str.maketrans(LOW + UP, LOW[s:] + LOW[:s] + UP[s:] + UP[:s])
    return text.translate(table)


@wrong("tokenize", ["no_dtype"])
def tok_no_dtype(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab])


@wrong("tokenize", ["casefold"])
def tok_casefold(text, mode):
    return r1.tokenize(text.casefold(), mode)


@wrong("tokenize", ["capitals_dropped"])
def tok_no_lower(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text if c in vocab], dtype=torch.long)


@wrong("tokenize", ["easy_vocab_always"])
def tok_mode_medium_hard(text, mode):  # "hard" spelled as a vocabulary only for mode == "Hard"
    vocab = VOCAB_HARD if mode == "Hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab], dtype=torch.long)


@wrong("tokenize", ["unknown_as_space"])
def tok_unknown_to_space(text, mode):  # replaces unknown characters by a space instead of dropping them
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c if c in vocab else " ") for c in text.lower()], dtype=torch.long)


@right("tokenize")
def tok_find(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    ids = ["".join(vocab).find(c) if len(c) == 1 else -1 for c in text.lower()]
    return torch.tensor([i for i in ids if i >= 0], dtype=torch.int64)


@wrong("encode_tokens", ["rotates_non_letters"])
def enc_all(plain_toks, shifts):
    return (plain_toks + shifts[:, None]) % 26


@wrong("encode_tokens", ["no_modulo"])
def enc_no_mod(plain_toks, shifts):
    return torch.where(plain_toks < 26, plain_toks + shifts[:, None], plain_toks)


@wrong("encode_tokens", ["shift_per_position"])
def enc_broadcast_last(plain_toks, shifts):
    n = plain_toks.shape[1]
    s = shifts[:n] if len(shifts) >= n else torch.cat([shifts, shifts.new_zeros(n - len(shifts))])
    return torch.where(plain_toks < 26, (plain_toks + s) % 26, plain_toks)


@wrong("encode_tokens", ["space_rotated"])
def enc_le_26(plain_toks, shifts):  # off by one: id 26 (space) counted as a letter
    return torch.where(plain_toks <= 26, (plain_toks + shifts[:, None]) % 26, plain_toks)


@right("encode_tokens")
def enc_loop(plain_toks, shifts):
    out = plain_toks.clone()
    for b in range(len(shifts)):
        letters = out[b] < 26
        out[b, letters] = (out[b, letters] + int(shifts[b])) % 26
    return out


@wrong("word_probabilities", ["counts_in_medium"])
def wp_counts_always(counts, mode):
    c = counts.double()
    return c / c.sum()


@wrong("word_probabilities", ["float32"])
def wp_float(counts, mode):
    c = counts.float()
    w = c if mode == "easy" else torch.ones_like(c)
    return w / w.sum()


@wrong("word_probabilities", ["uniform_in_easy"])
def wp_swapped(counts, mode):
    return r1.word_probabilities(counts, "medium" if mode == "easy" else "easy")


@wrong("word_probabilities", ["softmax_of_counts"])
def wp_softmax(counts, mode):
    c = counts.double()
    return c.softmax(-1) if mode == "easy" else torch.ones_like(c) / len(c)


@wrong("word_probabilities", ["medium_unnormalised"])
def wp_medium_ones(counts, mode):
    c = counts.double()
    return c / c.sum() if mode == "easy" else torch.ones_like(c)


@right("word_probabilities")
def wp_div(counts, mode):
    if mode == "medium":
        return torch.full(counts.shape, 1 / len(counts), dtype=torch.float64)
    return counts.to(torch.float64) / counts.to(torch.float64).sum()


@wrong("rotation_twins", ["tuples"])
def twins_tuples(words):
    return [tuple(g) for g in r1.rotation_twins(words)]


@wrong("rotation_twins", ["unsorted"])
def twins_unsorted(words):
    groups = {}
    for w in words:
        groups.setdefault(tuple((LOW.index(c) - LOW.index(w[0])) % 26 for c in w), []).append(w)
    return [g for g in groups.values() if len(g) > 1]


@wrong("rotation_twins", ["keeps_singletons"])
def twins_singletons(words):
    groups = {}
    for w in words:
        groups.setdefault(tuple((LOW.index(c) - LOW.index(w[0])) % 26 for c in w), []).append(w)
    return sorted(sorted(g) for g in groups.values())


@wrong("rotation_twins", ["no_modulo"])
def twins_no_mod(words):
    groups = {}
    for w in words:
        groups.setdefault(tuple(LOW.index(c) - LOW.index(w[0]) for c in w), []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@right("rotation_twins")
def twins_rotate(words):
    groups = {}
    for w in words:
        groups.setdefault(r1.rotate_text(w, -LOW.index(w[0])), []).append(w)
    return sorted([sorted(g) for g in groups.values() if len(g) >= 2])


# --- 02 -----------------------------------------------------------------------------------------------------------
@wrong("make_config", ["no_seed"])
def cfg_no_seed(mode):
    import dataclasses
    return dataclasses.replace(r2.make_config(mode), seed=None)


@wrong("make_config", ["hard_vocab_always"])
def cfg_vocab_36(mode):
    import dataclasses
    return dataclasses.replace(r2.make_config(mode), d_vocab=36)


@wrong("make_config", ["other_normalization"])
def cfg_rms(mode):
    import dataclasses
    return dataclasses.replace(r2.make_config(mode), normalization_type="RMS")


@wrong("load_trained_model", ["ignores_device"])
def load_cpu(mode, device="cpu"):
    return r2.load_trained_model(mode, "cpu")


@wrong("load_trained_model", ["no_eval"])
def load_train_mode(mode, device="cpu"):
    return r2.load_trained_model(mode, device).train()


@wrong("rebuild_b_O", ["not_centred"])
def bo_no_centre(state_dict, layer):
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    return state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])


@wrong("rebuild_b_O", ["no_ln_bias"])
def bo_no_ln(state_dict, layer):
    p = f"blocks.{layer}"
    b_O = state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", state_dict[f"{p}.attn.b_V"], state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()


@wrong("correct_logprobs", ["first_label_for_all"])
def clp_first_label(logprobs, labels):
    return logprobs[:, :, labels[0]]


@wrong("correct_logprobs", ["loss"])
def clp_negative(logprobs, labels):
    return -eindex(logprobs, labels, "batch seq [batch]")


@wrong("correct_logprobs", ["probabilities"])
def clp_probs(logprobs, labels):
    return eindex(logprobs.exp(), labels, "batch seq [batch]")


@right("correct_logprobs")
def clp_gather(logprobs, labels):
    idx = labels.view(-1, 1, 1).expand(-1, logprobs.shape[1], 1)
    return logprobs.gather(-1, idx).squeeze(-1)


@wrong("summary_stats", ["tensors"])
def ss_tensors(lp):
    p = lp.exp()
    return {"ce": -lp.mean(), "mean_p": p.mean(), "median_p": p.median(), "min_p": p.min()}


@wrong("summary_stats", ["ce_from_mean_p"])
def ss_ce_from_p(lp):
    out = r2.summary_stats(lp)
    return {**out, "ce": -math.log(out["mean_p"])}


@wrong("summary_stats", ["min_of_logprobs"])
def ss_min_lp(lp):
    out = r2.summary_stats(lp)
    return {**out, "min_p": lp.min().item()}


@wrong("first_word_posterior", ["probabilities"])
def fwp_probs(toks, words_freq):
    return r2.first_word_posterior(toks, words_freq).exp()


@wrong("first_word_posterior", ["ignores_frequencies"])
def fwp_unweighted(toks, words_freq):
    return r2.first_word_posterior(toks, [(w, 1.0) for w, _ in words_freq])


@wrong("first_word_posterior", ["float32"])
def fwp_float(toks, words_freq):
    return r2.first_word_posterior(toks, words_freq).float()


# --- 03 -----------------------------------------------------------------------------------------------------------
@wrong("first_char_probs", ["logits"])
def fcp_logits(model):
    toks = torch.arange(26).view(-1, 1)
    with torch.inference_mode():
        return model(toks)[:, 0]


@wrong("letter_freqs_by_position", ["counts_words"])
def lf_unweighted(words_freq):
    return r3.letter_freqs_by_position([(w, 1.0 / len(words_freq)) for w, _ in words_freq])


@wrong("letter_freqs_by_position", ["float32"])
def lf_float(words_freq):
    return r3.letter_freqs_by_position(words_freq).float()


@wrong("implied_first_letter_probs", ["sum_not_mean"])
def ifl_sum(probs):
    return r3.implied_first_letter_probs(probs) * probs.shape[0]


@wrong("rotated_word_tokens", ["shifts_negated"])
def rwt_back(words):
    toks, shifts = r3.rotated_word_tokens(words)
    return toks, (-shifts) % 26


@wrong("rotation_averaged_probs", ["log_probs"])
def rap_logprobs(model, toks, shifts):
    with torch.inference_mode():
        lp = model(toks).log_softmax(-1)
    return einops.reduce(eindex(lp, shifts, "w s [w]"), "(word rot) seq -> word seq", "mean", rot=26)


@wrong("independent_evidence_probs", ["no_cumsum"])
def iep_no_cumsum(word_list, letter_freqs):
    toks = torch.tensor([[LOW.index(c) for c in w] for w in word_list])
    decoded = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), decoded]
    return ev.softmax(-1)[..., 0]


@right("independent_evidence_probs")  # p(shift 0) is the same either way: not a wrong answer
def iep_forward(word_list, letter_freqs):
    toks = torch.tensor([[LOW.index(c) for c in w] for w in word_list])
    decoded = (toks.unsqueeze(-1) + torch.arange(26)) % 26
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), decoded]
    return ev.cumsum(1).softmax(-1)[..., 0]


# --- 04 -----------------------------------------------------------------------------------------------------------
@wrong("dla_correct", ["no_mean_subtraction"])
def dla_no_centre(components, scale, W_U, labels):
    return eindex((components / scale) @ W_U, labels, "c b s [b]")


@wrong("dla_correct", ["mean_over_positions"])
def dla_centre_seq(components, scale, W_U, labels):
    c = components - components.mean(2, keepdim=True)
    return eindex((c / scale) @ W_U, labels, "c b s [b]")


@wrong("dla_correct", ["multiplies_by_scale"])
def dla_times_scale(components, scale, W_U, labels):
    c = components - components.mean(1, keepdim=True)
    return eindex((c * scale) @ W_U, labels, "c b s [b]")


@wrong("loss_per_position", ["batch_kept"])
def lpp_mean_seq(logits, labels):
    return -eindex(logits.log_softmax(-1), labels, "b s [b]").mean(1)


@wrong("loss_per_position", ["raw_logits"])
def lpp_raw(logits, labels):
    return -eindex(logits, labels, "b s [b]").mean(0)


@wrong("loss_per_position", ["no_minus_sign"])
def lpp_sign(logits, labels):
    return eindex(logits.log_softmax(-1), labels, "b s [b]").mean(0)


@right("loss_per_position")
def lpp_ce(logits, labels):
    b, s, _ = logits.shape
    return torch.nn.functional.cross_entropy(logits.reshape(b * s, -1), labels.repeat_interleave(s), reduction="none").view(b, s).mean(0)


@wrong("attention_slot_shares", ["summed_over_batch"])
def ass_sum(pattern):
    return r4.attention_slot_shares(pattern) * pattern.shape[0]


@wrong("dla_margin", ["correct_masked_with_zero"])
def dlam_zero_mask(components, scale, W_U, logits, labels):
    wrong_ = (logits * (1 - torch.nn.functional.one_hot(labels, 26)[:, None].float())).argmax(-1)
    c = components - components.mean(1, keepdim=True)
    d = W_U.T[labels].unsqueeze(1) - W_U.T[wrong_]
    return einops.einsum(c / scale, d, "c b s d, b s d -> c b s")


@wrong("dla_margin", ["runner_up_even_when_wrong"])
def dlam_topk(components, scale, W_U, logits, labels):  # second largest logit, even where the model is wrong
    wrong_ = logits.topk(2, -1).indices[..., 1]
    c = components - components.mean(1, keepdim=True)
    d = W_U.T[labels].unsqueeze(1) - W_U.T[wrong_]
    return einops.einsum(c / scale, d, "c b s d, b s d -> c b s")


@wrong("ablated_logits", ["mean_over_positions_too"])
def abl_mean_all(model, toks, layer, head, method="mean"):
    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = 0 if method == "zero" else z[:, :, head].mean((0, 1), keepdim=True)
        return z
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])


@wrong("ablated_logits", ["whole_layer"])
def abl_all_heads(model, toks, layer, head, method="mean"):
    def hook(z, hook):
        return torch.zeros_like(z) if method == "zero" else z.mean(0, keepdim=True).expand_as(z)
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])


@wrong("ablation_loss_change", ["flipped_sign"])
def alc_sign(model, toks, labels, method="mean"):
    return -r4.ablation_loss_change(model, toks, labels, method)


# --- 05 -----------------------------------------------------------------------------------------------------------
@wrong("ov_correct_logits", ["no_ln_scale"])
def ov_no_ln(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return r5.ov_correct_logits(resid, torch.ones_like(ln_scale), W_OV, W_U, final_scale, labels)


@wrong("ov_correct_logits", ["multiplies_final_scale"])
def ov_times_final(resid, ln_scale, W_OV, W_U, final_scale, labels):
    return r5.ov_correct_logits(resid, ln_scale, W_OV, W_U, final_scale, labels) * final_scale ** 2


@wrong("qk_pattern", ["no_scaling"])
def qk_no_sqrt(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    return r5.qk_pattern(q_resid, k_resid, W_Q * W_Q.shape[-1] ** 0.5, b_Q * W_Q.shape[-1] ** 0.5, W_K, b_K)


@wrong("qk_pattern", ["no_mask"])
def qk_no_mask(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    q = einops.einsum(q_resid, W_Q, "q d, h d e -> h q e") + b_Q[:, None]
    k = einops.einsum(k_resid, W_K, "k d, h d e -> h k e") + b_K[:, None]
    return (einops.einsum(q, k, "h q e, h k e -> h q k") / W_Q.shape[-1] ** 0.5).softmax(-1)


@wrong("qk_pattern", ["softmax_over_destinations"])
def qk_softmax_dest(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
    q = einops.einsum(q_resid, W_Q, "q d, h d e -> h q e") + b_Q[:, None]
    k = einops.einsum(k_resid, W_K, "k d, h d e -> h k e") + b_K[:, None]
    s = einops.einsum(q, k, "h q e, h k e -> h q k") / W_Q.shape[-1] ** 0.5
    mask = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
    return s.masked_fill(~mask, float("-inf")).softmax(-2).nan_to_num(0.0)


@wrong("kcomp_positional_output", ["multiplies_by_scale"])
def kc_times(W_pos, scale0, W_OV0, pattern0):
    return r5.kcomp_positional_output(W_pos, 1 / scale0, W_OV0, pattern0)


@wrong("words_shift_posterior", ["mean_over_words"])
def wsp_mean(encoded_words, word_toks, word_probs):
    shifts = torch.arange(26).view(26, 1, 1)
    plain = (encoded_words.unsqueeze(0) - shifts) % 26
    match = (plain[:, :, None] == word_toks[None, None]).all(-1).to(word_probs.dtype)
    return (match @ word_probs).log().mean(-1).softmax(-1)


@wrong("words_shift_posterior", ["weakest_word"])
def wsp_min(encoded_words, word_toks, word_probs):  # the weakest word decides
    shifts = torch.arange(26).view(26, 1, 1)
    plain = (encoded_words.unsqueeze(0) - shifts) % 26
    match = (plain[:, :, None] == word_toks[None, None]).all(-1).to(word_probs.dtype)
    lik = (match @ word_probs).min(-1).values
    return lik / lik.sum()


@wrong("words_shift_posterior", ["last_word_only"])
def wsp_last(encoded_words, word_toks, word_probs):
    return r5.words_shift_posterior(encoded_words[-1:], word_toks, word_probs)


@right("words_shift_posterior")
def wsp_loop(encoded_words, word_toks, word_probs):
    post = torch.ones(26, dtype=word_probs.dtype)
    for s in range(26):
        for w in (encoded_words - s) % 26:
            post[s] *= word_probs[(word_toks == w).all(-1)].sum()
    return post / post.sum()


@wrong("key_score_components", ["scaled_by_d_model"])
def ksc_sqrt_wrong_dim(q, parts, key_scale, W_K):
    return r5.key_score_components(q, parts, key_scale, W_K) * (q.shape[-1] ** 0.5) / (W_K.shape[1] ** 0.5)


@wrong("head_output_parts", ["no_ln_scale"])
def hop_no_scale(parts, ln_scale, pattern, W_OV):
    return r5.head_output_parts(parts, torch.ones_like(ln_scale), pattern, W_OV)


# --- 06 -----------------------------------------------------------------------------------------------------------
@wrong("shift_entropy", ["nats"])
def ent_nats(logprobs):
    p = logprobs.exp()
    return -(p * logprobs).nan_to_num(0.0).sum(-1)


@wrong("shift_entropy", ["nan_on_certain_shift"])
def ent_nan(logprobs):
    p = logprobs.exp()
    return -(p * logprobs / math.log(2)).sum(-1)


@wrong("baseline_loss_gap", ["model_minus_baseline"])
def gap_sign(model_logprobs, baseline_logprobs, labels):
    return -r6.baseline_loss_gap(model_logprobs, baseline_logprobs, labels)


@wrong("baseline_loss_gap", ["float32"])
def gap_float(model_logprobs, baseline_logprobs, labels):
    return r6.baseline_loss_gap(model_logprobs, baseline_logprobs, labels).float()


@wrong("nonletter_attention_share", ["destination_mask"])
def nls_dest(pattern, toks):
    nonletter = (toks >= 26).to(pattern.dtype)  # [batch seq]
    return einops.einsum(pattern, nonletter, "b h d s, b d -> b h d s").sum(-1).mean((0, 2))


@wrong("nonletter_attention_share", ["spaces_only"])
def nls_space(pattern, toks):
    nonletter = (toks == 26).to(pattern.dtype)
    return einops.einsum(pattern, nonletter, "b h d s, b s -> b h d").mean((0, 2))


@wrong("loss_by_letters_seen", ["current_letter_not_counted"])
def lbl_before(logprobs_correct, toks, max_letters=26):
    seen = ((toks < 26).long().cumsum(1) - (toks < 26).long()).clamp(max=max_letters)
    out = torch.full((max_letters + 1,), float("nan"), dtype=logprobs_correct.dtype)
    for n in range(max_letters + 1):
        sel = seen == n
        if sel.any():
            out[n] = -logprobs_correct[sel].mean()
    return out


@wrong("reliability_bins", ["edges_to_lower_bin"])
def rb_ceil(probs, targets, n_bins=10):
    conf, pred = probs.max(-1)
    idx = (torch.ceil(conf.double() * n_bins) - 1).clamp(0, n_bins - 1).long()
    table = torch.full((3, n_bins), float("nan"), dtype=torch.float64)
    for i in range(n_bins):
        sel = idx == i
        table[2, i] = sel.double().mean()
        if sel.any():
            table[0, i] = conf[sel].double().mean()
            table[1, i] = (pred[sel] == targets[sel]).double().mean()
    return table.to(r6.reliability_bins(probs, targets, n_bins).dtype)


@wrong("frequency_baseline_logprobs", ["punctuation_as_letters"])
def fb_nonletters(toks, letter_freqs):
    return r6.frequency_baseline_logprobs(toks % 26, letter_freqs)


# --- 07 -----------------------------------------------------------------------------------------------------------
@wrong("run_with_patched_kv", ["no_mask_patches_nothing"])
def kv_none_nothing(model, toks, new_k, new_v, mask=None):
    if mask is None:
        mask = torch.zeros(toks.shape[1], dtype=torch.bool)
    return r7.run_with_patched_kv(model, toks, new_k, new_v, mask)


@wrong("run_with_patched_kv", ["values_only"])
def kv_values_only(model, toks, new_k, new_v, mask=None):
    keep = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask.bool()
    hook = lambda act, hook: torch.where(keep.view(1, -1, 1, 1), new_v, act)  # noqa: E731
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_v", hook)])


@wrong("scrub_loss_recovered", ["returns_tensor"])
def slr_tensor(logits_clean, logits_scrub, logits_control, labels):
    return torch.tensor(r7.scrub_loss_recovered(logits_clean, logits_scrub, logits_control, labels))


@wrong("scrub_loss_recovered", ["fraction_lost"])
def slr_lost(logits_clean, logits_scrub, logits_control, labels):
    return 1 - r7.scrub_loss_recovered(logits_clean, logits_scrub, logits_control, labels)


@wrong("prefix_match_weights", ["normalised_over_wrong_axis", "ignores_word_probs"])
def pmw_cols(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
    w = same.to(word_probs.dtype) * word_probs[None]
    return w / w.sum(0, keepdim=True)


@wrong("prefix_match_weights", ["excludes_itself"])
def pmw_no_self(word_toks, word_probs, n_keep):
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1) & ~torch.eye(len(word_toks), dtype=torch.bool)
    w = same.to(word_probs.dtype) * word_probs[None]
    return (w / w.sum(-1, keepdim=True)).nan_to_num(0.0)


@wrong("ablated_query_logits", ["ignores_perm"])
def aq_roll(model, toks, method, perm=None):
    return r7.ablated_query_logits(model, toks, method, None if perm is None else perm.roll(1))


@wrong("word_rotation_probs", ["logits_not_probs"])
def wrp_logprobs(model, word_toks):
    return r7.word_rotation_probs(model, word_toks).log()
