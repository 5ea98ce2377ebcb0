"""Analyses shared by several lessons: each takes the model (and the dataset or word table) as arguments, so
that a later lesson can rerun an earlier lesson's analysis on another mode's model without copying code.

Lesson 03 (positions 0 and 1): `first_char_probs`, `plaintext_aligned`, `shift_invariance_gap`,
`implied_first_letter_probs`, `letter_freqs_by_position`, `rotated_word_tokens`, `rotation_averaged_probs`,
`word_correct_probs`,
`independent_evidence_probs`, `bayes_word_probs`, `position_comparison`, `observer_summary`.

Lesson 04 (direct logit attribution, attention, ablation): `residual_components`, `dla_correct`, `component_dla`,
`attention_slot_shares`, `attention_first_word_share`, `loss_per_position`, `ablated_logits`,
`ablation_loss_change`.

Conventions: easy/medium sequences are words of three letters then a space, so position p holds the
`p % 4`-th "slot" of word `p // 4` (slots: 1st letter, 2nd letter, 3rd letter, space). Heads are named
"layer.head" ("0.0", "0.1", "1.0", "1.1"). Everything runs without gradients and returns CPU tensors.
"""

from __future__ import annotations

from typing import Literal, Sequence

import einops
import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

from .bayes import prefix_logprobs
from .data import word_tokens

COMPONENT_NAMES: list[str] = ["embed", "0.0", "0.1", "1.0", "1.1"]  # embed = token + positional embedding
HEAD_NAMES: list[str] = ["0.0", "0.1", "1.0", "1.1"]
SLOT_NAMES: list[str] = ["1st letter", "2nd letter", "3rd letter", "space"]
TOKEN_SYMBOLS: list[str] = [f"{j // 4}{'ABC_'[j % 4]}" for j in range(32)]  # 0A 0B 0C 0_ 1A ...
AblationMethod = Literal["mean", "zero"]


# ---------------------------------------------------------------------------------------------------------
# Lesson 03: position 0
# ---------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def first_char_probs(model: HookedTransformer) -> Float[Tensor, "first_char shift"]:
    """probs[c, s] = the model's p(shift = s) at position 0 when the (encoded) first character is letter c."""
    toks = torch.arange(26, device=model.cfg.device).unsqueeze(1)
    return model(toks)[:, 0].softmax(-1).cpu()


def plaintext_aligned(probs: Float[Tensor, "first_char shift"]) -> Float[Tensor, "first_char plain_letter"]:
    """Re-index each row of `first_char_probs` by the plaintext letter the shift implies:
    aligned[c, L] = probs[c, (c - L) % 26]. If every row is the same distribution shifted, all rows are equal."""
    c = torch.arange(26).unsqueeze(1)
    plain = torch.arange(26).unsqueeze(0)
    return probs[c, (c - plain) % 26]


def shift_invariance_gap(probs: Float[Tensor, "first_char shift"]) -> float:
    """Largest |aligned[c, L] - mean over c of aligned[c, L]|: 0 when every row is the same distribution, rolled."""
    aligned = plaintext_aligned(probs)
    return (aligned - aligned.mean(0, keepdim=True)).abs().max().item()


def implied_first_letter_probs(probs: Float[Tensor, "first_char shift"]) -> Float[Tensor, "plain_letter"]:
    """The model's implied p(first plaintext letter = L): probs[c, c - L] averaged over the 26 first characters c."""
    return plaintext_aligned(probs).mean(0)


def letter_freqs_by_position(words_freq: Sequence[tuple[str, float]]) -> Float[Tensor, "3 26"]:
    """freqs[j, L] = probability that letter j (0, 1, 2) of a drawn word is L, words drawn with their frequencies."""
    toks = word_tokens([w for w, _ in words_freq])
    weights = torch.tensor([float(f) for _, f in words_freq], dtype=torch.float64)
    freqs = torch.zeros(3, 26, dtype=torch.float64)
    for j in range(3):
        freqs[j].index_add_(0, toks[:, j], weights)
    return freqs / weights.sum()


# ---------------------------------------------------------------------------------------------------------
# Lesson 03: position 1 (and 2), word by word
# ---------------------------------------------------------------------------------------------------------


def rotated_word_tokens(word_list: Sequence[str]) -> tuple[Int[Tensor, "word_rot 3"], Int[Tensor, "word_rot"]]:
    """Every word encoded with every shift: row w * 26 + s is word w rotated by s, and shifts[w * 26 + s] = s."""
    toks = word_tokens(list(word_list))
    shifts = torch.arange(26)
    rotated = (toks.unsqueeze(1) + shifts.view(1, 26, 1)) % 26  # [word rot letter]
    return (
        einops.rearrange(rotated, "word rot letter -> (word rot) letter"),
        einops.repeat(shifts, "rot -> (word rot)", word=len(word_list)),
    )


@torch.inference_mode()
def rotation_averaged_probs(
    model: HookedTransformer, toks: Int[Tensor, "word_rot 3"], shifts: Int[Tensor, "word_rot"]
) -> Float[Tensor, "word 3"]:
    """The model's p(correct shift) at each position, averaged over the 26 rotations of each word (toks and shifts
    as returned by rotated_word_tokens)."""
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()  # [word_rot seq 26]
    correct = eindex(probs, shifts.cpu(), "word_rot seq [word_rot]")
    return einops.reduce(correct, "(word rot) seq -> word seq", "mean", rot=26)


def word_correct_probs(model: HookedTransformer, word_list: Sequence[str]) -> Float[Tensor, "word 3"]:
    """The model's p(correct shift) at positions 0, 1, 2 when the sequence starts with each word, averaged over
    the 26 shifts of that word."""
    return rotation_averaged_probs(model, *rotated_word_tokens(word_list))


def independent_evidence_probs(
    word_list: Sequence[str], letter_freqs: Float[Tensor, "3 26"]
) -> Float[Tensor, "word 3"]:
    """p(correct shift) after 1, 2, 3 letters of each word for an observer that treats the letters as independent
    evidence: log p(shift s | letters 0..j) = sum over i <= j of log letter_freqs[i, letter_i - s] + const.
    The posterior is the same for every rotation of a word, so the word is read unrotated (correct shift 0)."""
    toks = word_tokens(list(word_list))  # [word 3]
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26  # [word pos shift]: the letter if the shift were s
    logf = letter_freqs.double().log()
    evidence = logf[torch.arange(3).view(1, 3, 1), plain]  # [word pos shift]
    return torch.cumsum(evidence, dim=1).softmax(-1)[..., 0]


def bayes_word_probs(word_list: Sequence[str], words_freq: Sequence[tuple[str, float]]) -> Float[Tensor, "word 3"]:
    """The exact (Bayes-optimal) p(correct shift) after 1, 2, 3 letters of each word, when that word opens the
    sequence: p(prefix) / sum over shifts s of p(prefix rotated back by s), with p(prefix) the total frequency of
    the words that start with it."""
    lp1, lp2, lp3 = prefix_logprobs(words_freq)
    toks = word_tokens(list(word_list))
    plain = (toks.unsqueeze(1) - torch.arange(26).view(1, 26, 1)) % 26  # [word shift letter]
    a, b, c = plain.unbind(-1)
    loglik = torch.stack([lp1[a], lp2[a, b], lp3[a, b, c]], dim=-1)  # [word shift pos]
    return loglik.softmax(dim=1)[:, 0, :]


def position_comparison(model: HookedTransformer, dataset) -> dict[str, Tensor]:
    """Per word (rows follow dataset.word_list) and position 0-2: the model's p(correct) averaged over rotations,
    the independent-evidence observer's and the Bayes-optimal one's; plus `weights`, each word's frequency."""
    words = dataset.word_list
    freqs = letter_freqs_by_position(dataset.words_freq)
    return {
        "model": word_correct_probs(model, words),
        "independent": independent_evidence_probs(words, freqs),
        "bayes": bayes_word_probs(words, dataset.words_freq),
        "weights": torch.tensor([f for _, f in dataset.words_freq], dtype=torch.float64),
    }


def observer_summary(comparison: dict[str, Tensor], position: int = 1) -> dict[str, float]:
    """Frequency-weighted means at `position` of a `position_comparison`: p(correct) of the model, the
    independent-evidence observer and the Bayes-optimal one; `gap_closed`, the share of the gap from independent
    evidence to Bayes that the model closes; and `beats_independent`, the share of openings (by frequency) on which
    the model is more confident than independent evidence."""
    w = comparison["weights"].double()
    mean = {k: (comparison[k][:, position].double() * w).sum().item() for k in ("model", "independent", "bayes")}
    gap_closed = (mean["model"] - mean["independent"]) / (mean["bayes"] - mean["independent"])
    beats = ((comparison["model"][:, position].double() > comparison["independent"][:, position]).double() * w).sum()
    return {**mean, "gap_closed": gap_closed, "beats_independent": beats.item()}


# ---------------------------------------------------------------------------------------------------------
# Lesson 04: direct logit attribution
# ---------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def head_results(cache: ActivationCache, layer: int) -> Float[Tensor, "batch seq head d_model"]:
    """cache["result", layer] (each head's output, without b_O), computed from z and W_O if the model ran without
    `use_attn_result`."""
    key = f"blocks.{layer}.attn.hook_result"
    if key in cache.cache_dict:
        return cache[key]
    W_O = cache.model.W_O[layer].to(cache["z", layer].device)
    return einops.einsum(cache["z", layer], W_O, "batch seq head d_head, head d_head d_model -> batch seq head d_model")


def residual_components(cache: ActivationCache) -> Float[Tensor, "component batch seq d_model"]:
    """The residual stream before the final LayerNorm, split into embed + pos_embed and each head's output
    (in the order of COMPONENT_NAMES). The rest of the stream is the constant b_O of each layer."""
    parts = [cache["embed"] + cache["pos_embed"]]
    for layer in range(cache.model.cfg.n_layers):
        results = head_results(cache, layer)
        parts += [results[:, :, h] for h in range(results.shape[2])]
    return torch.stack(parts)


def dla_correct(
    components: Float[Tensor, "component batch seq d_model"],
    scale: Float[Tensor, "batch seq 1"],
    W_U: Float[Tensor, "d_model d_vocab_out"],
    labels: Int[Tensor, "batch"],
) -> Float[Tensor, "component batch seq"]:
    """Each component's direct contribution to the correct shift's logit: mean-subtracted over the batch, divided
    by the final LayerNorm scale, projected onto the unembedding column of the correct shift."""
    centred = components - components.mean(dim=1, keepdim=True)
    directions = W_U[:, labels]  # [d_model batch]
    return einops.einsum(centred / scale, directions, "comp batch seq d_model, d_model batch -> comp batch seq")


@torch.inference_mode()
def component_dla(model: HookedTransformer, cache: ActivationCache, labels: Int[Tensor, "batch"]) -> Float[Tensor, "component batch seq"]:
    """Direct logit attribution to the correct shift for each component of COMPONENT_NAMES (see dla_correct),
    from a cached run of `model`."""
    comps = residual_components(cache)
    return dla_correct(comps, cache["scale"], model.W_U.to(comps.device), labels.to(comps.device)).cpu()


# ---------------------------------------------------------------------------------------------------------
# Lesson 04: attention
# ---------------------------------------------------------------------------------------------------------


def slot_one_hot(seq_len: int) -> Float[Tensor, "seq slot"]:
    """one_hot[p, k] = 1 where position p holds slot k (p % 4) of its word."""
    return torch.nn.functional.one_hot(torch.arange(seq_len) % 4, 4).float()


def attention_slot_shares(pattern: Float[Tensor, "batch head dest src"]) -> Float[Tensor, "head dest_slot src_slot"]:
    """shares[h, d, k]: the share of head h's attention, from destinations in slot d (averaged over the batch and
    over those destinations), that lands on sources in slot k. Each row d sums to 1."""
    onehot = slot_one_hot(pattern.shape[-1]).to(pattern.device)
    by_src = einops.einsum(pattern.float(), onehot, "batch head dest src, src slot -> batch head dest slot")
    summed = einops.einsum(by_src, onehot, "batch head dest src_slot, dest dest_slot -> head dest_slot src_slot")
    counts = onehot.sum(0) * pattern.shape[0]  # destinations in each slot, over the batch
    return (summed / counts.view(1, 4, 1)).cpu()


def all_attention_slot_shares(cache: ActivationCache) -> Float[Tensor, "layer head dest_slot src_slot"]:
    """attention_slot_shares for every layer of a cached run."""
    return torch.stack([attention_slot_shares(cache["pattern", l]) for l in range(cache.model.cfg.n_layers)])


def attention_first_word_share(pattern: Float[Tensor, "batch head dest src"], min_dest: int = 4) -> Float[Tensor, "head"]:
    """Share of each head's attention that lands on the first word's letters (positions 0-2), averaged over the
    batch and over destinations from position `min_dest` on (the default skips the first word itself)."""
    return pattern[:, :, min_dest:, :3].float().sum(-1).mean((0, 2)).cpu()


# ---------------------------------------------------------------------------------------------------------
# Lesson 04: ablation
# ---------------------------------------------------------------------------------------------------------


def loss_per_position(logits: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]) -> Float[Tensor, "seq"]:
    """Cross-entropy of the correct shift at every position, averaged over the batch."""
    logprobs = logits.log_softmax(-1)
    return -eindex(logprobs, labels.to(logprobs.device), "batch seq [batch]").mean(0)


def _ablation_hook(head: int, method: AblationMethod):
    if method not in ("mean", "zero"):
        raise ValueError(f"method must be 'mean' or 'zero', got {method!r}")

    def hook(z: Float[Tensor, "batch seq head d_head"], hook) -> Float[Tensor, "batch seq head d_head"]:
        z = z.clone()
        if method == "zero":
            z[:, :, head] = 0.0
        else:
            z[:, :, head] = z[:, :, head].mean(0, keepdim=True)
        return z

    return hook


@torch.inference_mode()
def ablated_logits(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"], layer: int, head: int, method: AblationMethod = "mean"
) -> Float[Tensor, "batch seq 26"]:
    """Logits with head layer.head ablated at hook_z: "mean" replaces its z by the batch mean at each position,
    "zero" by zeros (with value biases folded into b_O, as load_model does, this removes W_O z but keeps b_O)."""
    hook_name = f"blocks.{layer}.attn.hook_z"
    return model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=[(hook_name, _ablation_hook(head, method))]).cpu()


@torch.inference_mode()
def ablation_loss_change(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"], labels: Int[Tensor, "batch"], method: AblationMethod = "mean"
) -> Float[Tensor, "layer head seq"]:
    """Increase in loss at every position when each head is ablated alone (ablated loss minus clean loss)."""
    clean = loss_per_position(model(toks.to(model.cfg.device)).cpu(), labels.cpu())
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, toks.shape[1])
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            out[layer, head] = loss_per_position(ablated_logits(model, toks, layer, head, method), labels.cpu()) - clean
    return out
