"""Layer-1 circuits (lesson 05, reused on the medium model in lesson 06): each function takes the model (and a
cached run, or the word list) as arguments, so that one call analyses any mode's model.

OV: `rotated_words_cache`, `ov_correct_logits`, `ov_word_logits`, `ov_slot_means`.
QK: `causal_pattern`, `qk_pattern`, `positional_queries`, `kcomp_positional_output`, `ln_scale_by_position`,
`qk_pattern_key_scale`, `layer1_pattern`, `pattern_slot_shares`.
Hard mode: `letters_seen`, `loss_by_letters_seen`, `shift_entropy`.

Conventions as in `utils.analysis`: position p of an easy/medium sequence holds slot p % 4 of word p // 4 (1st,
2nd, 3rd letter, space); heads are indexed [head] within a layer. Everything runs without gradients and returns
CPU tensors.
"""

from __future__ import annotations

import einops
import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

from .analysis import rotated_word_tokens

# ---------------------------------------------------------------------------------------------------------
# OV circuit of layer 1
# ---------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def rotated_words_cache(
    model: HookedTransformer, word_list: list[str]
) -> tuple[Int[Tensor, "word_rot 3"], Int[Tensor, "word_rot"], ActivationCache]:
    """Run the model on every word of `word_list` encoded with every shift (row w * 26 + s is word w rotated by
    s, as `analysis.rotated_word_tokens`); returns the tokens, the shifts and the cache (on CPU)."""
    toks, shifts = rotated_word_tokens(word_list)
    _, cache = model.run_with_cache(toks.to(model.cfg.device), device="cpu")
    return toks, shifts, cache


def ov_correct_logits(
    resid: Float[Tensor, "batch seq d_model"],
    ln_scale: Float[Tensor, "batch seq 1"],
    W_OV: Float[Tensor, "head d_model d_model"],
    W_U: Float[Tensor, "d_model 26"],
    final_scale: float,
    labels: Int[Tensor, "batch"],
) -> Float[Tensor, "head batch seq"]:
    """Logit of the correct shift that each head would write if it attended only to that source position:
    resid / ln_scale (what the head's LayerNorm hands it) -> W_OV -> / final_scale (the final LayerNorm, as its
    average) -> W_U, read at the label."""
    out = einops.einsum(resid / ln_scale, W_OV, "batch seq d_in, head d_in d_out -> head batch seq d_out")
    logits = (out / final_scale) @ W_U  # [head batch seq 26]
    return eindex(logits, labels, "head batch seq [batch]")


@torch.inference_mode()
def ov_word_logits(
    model: HookedTransformer, word_list: list[str], layer: int = 1, *, final_scale: float
) -> Float[Tensor, "head word slot"]:
    """`ov_correct_logits` of each head of `layer` on the layer's input at letters 1-3 of every word (every rotation,
    the word alone), averaged over the 26 rotations. final_scale (required) is the average final LayerNorm scale of
    a run on real sequences, e.g. `cache["scale"].mean().item()`: the three-letter run of the words alone is no
    stand-in, since its position 0 has a far larger final scale than any later position."""
    _, shifts, cache = rotated_words_cache(model, word_list)
    W_OV = (model.W_V[layer] @ model.W_O[layer]).detach().cpu()
    correct = ov_correct_logits(
        cache["resid_pre", layer], cache["scale", layer, "ln1"], W_OV, model.W_U.detach().cpu(), final_scale, shifts
    )
    return einops.reduce(correct, "head (word rot) slot -> head word slot", "mean", rot=26)


def ov_slot_means(
    ov: Float[Tensor, "head word slot"], weights: Float[Tensor, "word"] | None = None
) -> Float[Tensor, "head slot"]:
    """Average of `ov_word_logits` over words, weighted by `weights` (e.g. each word's frequency) if given."""
    if weights is None:
        return ov.mean(1)
    w = (weights / weights.sum()).to(ov.dtype)
    return einops.einsum(ov, w, "head word slot, word -> head slot")


# ---------------------------------------------------------------------------------------------------------
# QK circuit of layer 1
# ---------------------------------------------------------------------------------------------------------


def causal_pattern(scores: Float[Tensor, "... dest src"]) -> Float[Tensor, "... dest src"]:
    """Softmax over sources after masking every source later than its destination."""
    dest, src = scores.shape[-2:]
    mask = torch.ones(dest, src, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def qk_pattern(
    q_resid: Float[Tensor, "dest d_model"],
    k_resid: Float[Tensor, "src d_model"],
    W_Q: Float[Tensor, "head d_model d_head"],
    b_Q: Float[Tensor, "head d_head"],
    W_K: Float[Tensor, "head d_model d_head"],
    b_K: Float[Tensor, "head d_head"],
) -> Float[Tensor, "head dest src"]:
    """Causal attention pattern of each head when queries are made from q_resid and keys from k_resid (both
    already LayerNorm-ed), with scores scaled by 1 / sqrt(d_head)."""
    q = einops.einsum(q_resid, W_Q, "dest d_model, head d_model d_head -> head dest d_head") + b_Q.unsqueeze(1)
    k = einops.einsum(k_resid, W_K, "src d_model, head d_model d_head -> head src d_head") + b_K.unsqueeze(1)
    scores = einops.einsum(q, k, "head dest d_head, head src d_head -> head dest src") / W_Q.shape[-1] ** 0.5
    return causal_pattern(scores)


def ln_scale_by_position(cache: ActivationCache, layer: int = 1) -> Float[Tensor, "seq"]:
    """The LayerNorm scale before `layer`'s attention, averaged over the batch at each position."""
    return cache["scale", layer, "ln1"].mean(0)[:, 0].cpu()


def positional_queries(cache: ActivationCache, layer: int = 1) -> Float[Tensor, "seq d_model"]:
    """The average (over the batch) LayerNorm-ed input of `layer` at every position: a typical query."""
    return cache[f"blocks.{layer}.ln1.hook_normalized"].mean(0).cpu()


def _qk_weights(model: HookedTransformer, layer: int):
    return tuple(w.detach().cpu() for w in (model.W_Q[layer], model.b_Q[layer], model.W_K[layer], model.b_K[layer]))


def kcomp_positional_output(
    W_pos: Float[Tensor, "seq d_model"],
    scale0: Float[Tensor, "seq"],
    W_OV0: Float[Tensor, "head d_model d_model"],
    pattern0: Float[Tensor, "head dest src"],
) -> Float[Tensor, "seq d_model"]:
    """The positional part of layer 0's output at each position: every layer-0 head moves W_pos[src] / scale0[src]
    through its OV circuit, weighted by its attention from that position to src; summed over heads."""
    moved = einops.einsum(W_pos / scale0.unsqueeze(-1), W_OV0, "src d_in, head d_in d_out -> head src d_out")
    return einops.einsum(pattern0, moved, "head dest src, head src d_out -> dest d_out")


def qk_pattern_key_scale(
    resid: Float[Tensor, "batch seq d_model"],
    scale: Float[Tensor, "batch seq 1"],
    key_scale: Float[Tensor, "batch seq 1"],
    W_Q: Float[Tensor, "head d_model d_head"],
    b_Q: Float[Tensor, "head d_head"],
    W_K: Float[Tensor, "head d_model d_head"],
    b_K: Float[Tensor, "head d_head"],
) -> Float[Tensor, "batch head dest src"]:
    """Causal attention pattern with queries from resid / scale (as the model does) but keys from resid / key_scale."""
    q = einops.einsum(resid / scale, W_Q, "batch seq d_model, head d_model d_head -> batch head seq d_head")
    k = einops.einsum(resid / key_scale, W_K, "batch seq d_model, head d_model d_head -> batch head seq d_head")
    q, k = q + b_Q.unsqueeze(1), k + b_K.unsqueeze(1)
    scores = einops.einsum(q, k, "batch head dest d_head, batch head src d_head -> batch head dest src")
    return causal_pattern(scores / W_Q.shape[-1] ** 0.5)


@torch.inference_mode()
def layer1_pattern(
    model: HookedTransformer, cache: ActivationCache, key_scale: Float[Tensor, "batch seq 1"] | None = None
) -> Float[Tensor, "batch head dest src"]:
    """Layer 1's attention recomputed from the cache with `qk_pattern_key_scale`: keys divided by `key_scale`
    instead of their own LayerNorm scale (None: the real scale, which reproduces cache["pattern", 1])."""
    resid = cache["resid_pre", 1].cpu()
    resid = resid - resid.mean(-1, keepdim=True)  # what LayerNorm centres (already ~0 with centred weights)
    scale = cache["scale", 1, "ln1"].cpu()
    return qk_pattern_key_scale(resid, scale, scale if key_scale is None else key_scale.cpu(), *_qk_weights(model, 1))


def pattern_slot_shares(pattern: Float[Tensor, "head dest src"], min_dest: int = 4) -> Float[Tensor, "head slot"]:
    """Share of each head's attention on sources in each slot (1st, 2nd, 3rd letter, space), averaged over the
    destinations from `min_dest` on (the default skips the first word, whose destinations see few sources)."""
    seq = pattern.shape[-1]
    onehot = torch.nn.functional.one_hot(torch.arange(seq) % 4, 4).to(pattern.dtype)
    return einops.einsum(pattern[:, min_dest:], onehot, "head dest src, src slot -> head dest slot").mean(1)


# ---------------------------------------------------------------------------------------------------------
# Hard mode
# ---------------------------------------------------------------------------------------------------------


def letters_seen(toks: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    """How many letter tokens (ids 0-25) each sequence holds up to and including each position."""
    return torch.cumsum((toks < 26).long(), dim=1)


def loss_by_letters_seen(
    logprobs_correct: Float[Tensor, "batch seq"], toks: Int[Tensor, "batch seq"], max_letters: int = 26
) -> Float[Tensor, "n_letters"]:
    """Mean cross-entropy over all (sequence, position) pairs that have seen n letters, for n = 0 .. max_letters
    (the last bucket holds every count from max_letters up; NaN where a bucket is empty)."""
    n = letters_seen(toks).clamp(max=max_letters).flatten().cpu()
    loss = -logprobs_correct.flatten().double().cpu()
    total = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n, loss)
    count = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n, torch.ones_like(loss))
    return total / count


def shift_entropy(logprobs: Float[Tensor, "... 26"]) -> Float[Tensor, "..."]:
    """Entropy in bits of each distribution given as log-probs (0 where p = 0)."""
    p = logprobs.exp()
    return -(p * torch.where(p > 0, logprobs, torch.zeros_like(logprobs))).sum(-1) / torch.log(torch.tensor(2.0))


# ---------------------------------------------------------------------------------------------------------
# Lesson 05's interventions on layer 1's keys, per sequence (for standard errors), and the consequences its
# judgement exercises are graded by (`utils.checks.lesson05_judgement`)
# ---------------------------------------------------------------------------------------------------------


def loss_per_sequence(logits: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]) -> Float[Tensor, "batch seq"]:
    """Cross-entropy of the correct shift at every position of every sequence (bootstrap over dim 0)."""
    logprobs = logits.float().log_softmax(-1).cpu()
    return -eindex(logprobs, labels.cpu(), "batch seq [batch]")


@torch.inference_mode()
def loss_with_pattern(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"], labels: Int[Tensor, "batch"], pattern: Float[Tensor, "batch head dest src"]
) -> Float[Tensor, "batch seq"]:
    """Loss per sequence and position when layer 1 attends with `pattern` (values and queries as the model's)."""

    def hook(p, hook):
        return pattern.to(p.device, p.dtype)

    logits = model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=[("blocks.1.attn.hook_pattern", hook)])
    return loss_per_sequence(logits, labels)


def slot_shares_per_sequence(pattern: Float[Tensor, "batch head dest src"], min_dest: int = 4) -> Float[Tensor, "batch head slot"]:
    """`pattern_slot_shares` for every sequence: its mean over sequences is the shares of the mean pattern."""
    seq = pattern.shape[-1]
    onehot = torch.nn.functional.one_hot(torch.arange(seq) % 4, 4).to(pattern.dtype)
    return einops.einsum(pattern[:, :, min_dest:], onehot, "batch head dest src, src slot -> batch head dest slot").mean(2)


def layer_norm_pre(x: Float[Tensor, "... d_model"], eps: float = 1e-5) -> Float[Tensor, "... d_model"]:
    """The model's LayerNorm with its weights folded away: centre, divide by the root mean square."""
    x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def lowered_0A_input(resid: Float[Tensor, "batch seq d_model"]) -> Float[Tensor, "batch d_model"]:
    """The key input at 0A under "0A lowered": 0A's centred stream divided by the average LayerNorm scale at the
    later 1st letters (1A, 2A, ...) of the same batch, instead of by its own scale."""
    centred = resid - resid.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    return centred[:, 0] / scale[:, 4::4].mean()


def change_at_0A(resid: Float[Tensor, "batch seq d_model"], key_input: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch"]:
    """How far `key_input` (a normalized key input at 0A) lies from 0A's real normalized stream, per sequence."""
    return (key_input - layer_norm_pre(resid[:, 0])).norm(dim=-1)


def nearest_real_key_input(
    resid: Float[Tensor, "batch seq d_model"], key_input: Float[Tensor, "n d_model"]
) -> Float[Tensor, "n"]:
    """Distance from each row of `key_input` to the nearest normalized stream any real position of any sequence
    in `resid` has: 0 for a key the head meets in real data, large for one it never sees."""
    real = layer_norm_pre(resid).reshape(-1, resid.shape[-1]).double()
    return torch.cdist(key_input.double(), real).min(-1).values.float()


DONOR_OFFSETS = {"1st letter": -2, "2nd letter": -1, "3rd letter": 4, "space": 1}  # from a 3rd letter (4w + 2)
SWAP_PARTS = {"token": [0], "position": [1], "0.0": [2], "0.1": [3], "layer 0": [2, 3], "b_O": [4], "whole stream": [0, 1, 2, 3, 4]}
HYPOTHESES = {"position": {1}, "layer 0": {2, 3}}  # what each says carries head 1.0's preference for 3rd letters


def swapped_key_stream(
    model: HookedTransformer, cache: ActivationCache, part: str, donor: str
) -> Float[Tensor, "batch seq d_model"]:
    """The stream entering layer 1 in which every 3rd letter's `part` (a key of SWAP_PARTS) is replaced by the
    same part at the `donor` slot (a key of DONOR_OFFSETS: its own word's 1st or 2nd letter or space; "3rd
    letter" is the next word's, wrapping round)."""
    from .attribution import layer1_stream_parts

    if part not in SWAP_PARTS or donor not in DONOR_OFFSETS:
        raise ValueError(f"part must be one of {list(SWAP_PARTS)} and donor one of {list(DONOR_OFFSETS)}; got {part!r}, {donor!r}")
    parts = layer1_stream_parts(model, cache)[SWAP_PARTS[part]].sum(0)  # [batch seq d_model]
    third = torch.arange(2, parts.shape[1], 4)
    donors = (third + DONOR_OFFSETS[donor]) % parts.shape[1]
    stream = cache["resid_pre", 1].cpu().clone()
    stream[:, third] += parts[:, donors] - parts[:, third]
    return stream


def third_letter_share(pattern: Float[Tensor, "batch head dest src"], head: int = 0) -> Float[Tensor, "batch"]:
    """Per sequence: the share of `head`'s attention on 3rd letters, over destinations from 1A on."""
    return slot_shares_per_sequence(pattern)[:, head, 2]


def predicted_outcomes(part: str, donor: str) -> dict[str, str]:
    """What each hypothesis of HYPOTHESES predicts for head 1.0's share on 3rd letters under the swap: it "falls"
    when the swap moves the part that hypothesis names from another slot into the 3rd letters, else "does not fall"."""
    moved = set(SWAP_PARTS[part]) if donor != "3rd letter" else set()
    return {h: "falls" if carried & moved else "does not fall" for h, carried in HYPOTHESES.items()}


def measured_outcome(model: HookedTransformer, cache: ActivationCache, part: str, donor: str, drop: float = 0.15):
    """Run the swap: (outcome, change in head 1.0's 3rd-letter share with its paired bootstrap SE). "falls" when the
    share drops by more than `drop` (a fifth of its usual 0.76) at 2 SE; "does not fall" otherwise."""
    from .attribution import pattern_from_key_stream
    from .stats import bootstrap

    clean = third_letter_share(cache["pattern", 1].cpu())
    swapped = third_letter_share(pattern_from_key_stream(model, cache, swapped_key_stream(model, cache, part, donor)).cpu())
    change = bootstrap(lambda a, b: (a - b).mean(), swapped, clean, n_boot=200)
    return ("falls" if change.high < -drop else "does not fall"), change
