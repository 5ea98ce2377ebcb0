"""Attribution that follows the decision, and layer-1 keys and values split into their parts (lessons 04 and 05).

Lesson 04, margins: `margin`, `strongest_wrong`, `dla_margin`, `consistent_shifts`.
Lesson 05, what a layer-1 head reads, split by where it came from: `layer1_stream_parts` (token embedding,
positional embedding, each layer-0 head, layer 0's bias), `key_score_components` (each part's share of every
attention score), `head_output_parts` (each part's share of a head's output), and in-distribution interventions on
the keys: `pattern_from_key_stream`, `loss_with_layer1_pattern`.

LayerNorm is handled as in the lessons: with the model's weights centred (`load_model`), LayerNorm before layer 1 is
a division of the centred stream by its scale. Freezing that scale at its value on the real input makes the
normalized stream a *sum* of the normalized parts, so each part's contribution to a score or an output is exact.
Everything runs without gradients; tensors stay on the inputs' device unless a docstring says otherwise.
"""

from __future__ import annotations

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

from .analysis import loss_per_position
from .circuits import causal_pattern

STREAM_PART_NAMES: list[str] = ["token", "position", "0.0", "0.1", "b_O"]  # the parts of the stream entering layer 1


# ---------------------------------------------------------------------------------------------------------
# Lesson 04: margins
# ---------------------------------------------------------------------------------------------------------


def strongest_wrong(logits: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]) -> Int[Tensor, "batch seq"]:
    """The wrong shift with the largest logit, at every position (the runner-up when the model is right)."""
    is_correct = torch.nn.functional.one_hot(labels, logits.shape[-1]).bool().unsqueeze(1)  # [batch 1 26]
    return logits.masked_fill(is_correct, float("-inf")).argmax(-1)


def margin(logits: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]) -> Float[Tensor, "batch seq"]:
    """Correct logit minus the strongest wrong logit: positive exactly where the model's top shift is right."""
    correct = logits.gather(-1, einops.repeat(labels, "batch -> batch seq 1", seq=logits.shape[1])).squeeze(-1)
    wrong = logits.gather(-1, strongest_wrong(logits, labels).unsqueeze(-1)).squeeze(-1)
    return correct - wrong


def dla_margin(
    components: Float[Tensor, "component batch seq d_model"],
    scale: Float[Tensor, "batch seq 1"],
    W_U: Float[Tensor, "d_model 26"],
    logits: Float[Tensor, "batch seq 26"],
    labels: Int[Tensor, "batch"],
) -> Float[Tensor, "component batch seq"]:
    """Each component's direct contribution to the margin: its batch-mean-subtracted output, divided by the final
    LayerNorm scale, projected onto W_U[:, correct] - W_U[:, strongest wrong] (the strongest wrong shift of the
    model's own `logits`, at each sequence and position)."""
    centred = components - components.mean(dim=1, keepdim=True)
    wrong = strongest_wrong(logits, labels)  # [batch seq]
    direction = W_U.T[labels].unsqueeze(1) - W_U.T[wrong]  # [batch seq d_model]
    return einops.einsum(centred / scale, direction, "comp batch seq d_model, batch seq d_model -> comp batch seq")


def consistent_shifts(prefixes: Int[Tensor, "batch n"], word_toks: Int[Tensor, "vocab_words 3"]) -> Bool[Tensor, "batch 26"]:
    """consistent[b, s]: the encoded letters `prefixes[b]`, rotated back by s, begin some word of the table."""
    n = prefixes.shape[1]
    shifts = torch.arange(26, device=prefixes.device).view(1, 26, 1)
    plain = (prefixes.unsqueeze(1) - shifts) % 26  # [batch 26 n]
    starts = word_toks[:, :n].to(prefixes.device)  # [vocab n]
    return (plain.unsqueeze(2) == starts.view(1, 1, *starts.shape)).all(-1).any(-1)


# ---------------------------------------------------------------------------------------------------------
# Lesson 05: the stream entering layer 1, split into parts
# ---------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def layer1_stream_parts(model: HookedTransformer, cache: ActivationCache) -> Float[Tensor, "part batch seq d_model"]:
    """The stream entering layer 1 as a sum of STREAM_PART_NAMES, each centred over d_model (what LayerNorm's
    centring does to it, linearly): token embedding, positional embedding, head 0.0, head 0.1, layer 0's b_O."""
    from .analysis import head_results

    results = head_results(cache, 0)
    parts = torch.stack([
        cache["embed"], cache["pos_embed"], results[:, :, 0], results[:, :, 1],
        model.b_O[0].to(results.device).expand_as(cache["embed"]),
    ])
    return parts - parts.mean(-1, keepdim=True)


def key_score_components(
    q: Float[Tensor, "batch head dest d_head"],
    parts: Float[Tensor, "part batch src d_model"],
    key_scale: Float[Tensor, "batch src 1"],
    W_K: Float[Tensor, "head d_model d_head"],
) -> Float[Tensor, "part batch head dest src"]:
    """Each part's contribution to every attention score q . k / sqrt(d_head): the key made from that part alone,
    part / key_scale @ W_K (no bias: b_K adds the same amount to every source of a destination). Not masked."""
    keys = einops.einsum(parts / key_scale, W_K, "part batch src d_model, head d_model d_head -> part batch head src d_head")
    scores = einops.einsum(q, keys, "batch head dest d_head, part batch head src d_head -> part batch head dest src")
    return scores / W_K.shape[-1] ** 0.5


def head_output_parts(
    parts: Float[Tensor, "part batch src d_model"],
    ln_scale: Float[Tensor, "batch src 1"],
    pattern: Float[Tensor, "batch head dest src"],
    W_OV: Float[Tensor, "head d_model d_model"],
) -> Float[Tensor, "part batch head dest d_model"]:
    """Each part's share of each head's output: the head moves part / ln_scale through its OV circuit and mixes the
    sources with its attention. Summed over parts, this is the head's output (without b_O)."""
    moved = einops.einsum(parts / ln_scale, W_OV, "part batch src d_in, head d_in d_out -> part batch head src d_out")
    return einops.einsum(pattern, moved, "batch head dest src, part batch head src d_out -> part batch head dest d_out")


# ---------------------------------------------------------------------------------------------------------
# Lesson 05: interventions on layer 1's keys that keep the stream in distribution
# ---------------------------------------------------------------------------------------------------------


def layer_norm_pre(x: Float[Tensor, "... d_model"], eps: float = 1e-5) -> Float[Tensor, "... d_model"]:
    """The model's LayerNorm (weights folded away): centre, then divide by the root mean square."""
    x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


@torch.inference_mode()
def pattern_from_key_stream(
    model: HookedTransformer,
    cache: ActivationCache,
    key_stream: Float[Tensor, "batch seq d_model"],
    normalize: bool = True,
) -> Float[Tensor, "batch head dest src"]:
    """Layer 1's attention with the cached queries and keys made from `key_stream` instead of the real stream.
    normalize=True passes it through the model's LayerNorm (its norm is then sqrt(d_model), as at every real
    position); normalize=False uses `key_stream` as the normalized stream itself (to build out-of-distribution
    keys on purpose)."""
    device = key_stream.device
    normed = layer_norm_pre(key_stream) if normalize else key_stream
    keys = einops.einsum(normed, model.W_K[1].to(device), "batch seq d_model, head d_model d_head -> batch head seq d_head")
    keys = keys + model.b_K[1].to(device).unsqueeze(1)
    q = einops.rearrange(cache["q", 1].to(device), "batch seq head d_head -> batch head seq d_head")
    scores = einops.einsum(q, keys, "batch head dest d_head, batch head src d_head -> batch head dest src")
    return causal_pattern(scores / model.cfg.d_head**0.5)


@torch.inference_mode()
def loss_with_layer1_pattern(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"], labels: Int[Tensor, "batch"], pattern: Float[Tensor, "batch head dest src"]
) -> Float[Tensor, "seq"]:
    """Loss per position (on the CPU) when layer 1 attends with `pattern` instead of its own attention (values and
    everything else as the model computes them)."""

    def hook(p, hook):
        return pattern.to(p.device, p.dtype)

    logits = model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=[("blocks.1.attn.hook_pattern", hook)])
    return loss_per_position(logits.cpu(), labels.cpu())
