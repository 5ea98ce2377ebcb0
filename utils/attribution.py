"""Attribution that follows the decision, and layer-1 keys and values split into their parts (lessons 04 and 05).

Lesson 04, margins: `margin`, `strongest_wrong`, `dla_margin` (with the rival's definition and the centring as
options, to show how much a share depends on them), `group_share`, `consistent_shifts`; and what the final stream
needs: `direct_path_ablated_logits` (a component's direct path to the logits replaced by its batch mean, its effect
through later layers kept), `outcomes` (top-1 right and loss per sequence).
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
from .stats import Estimate

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
    rival: str = "strongest",
    centre: bool = True,
) -> Float[Tensor, "component batch seq"]:
    """Each component's direct contribution to the margin: its batch-mean-subtracted output, divided by the final
    LayerNorm scale, projected onto W_U[:, correct] - W_U[:, strongest wrong] (the strongest wrong shift of the
    model's own `logits`, at each sequence and position).

    The lesson's definition is the default. rival="softmax" measures against the probability-weighted average of
    the wrong shifts' unembeddings instead of the single strongest one; centre=False keeps each component's
    batch mean (its constant output) in."""
    if rival not in ("strongest", "softmax"):
        raise ValueError(f"rival must be 'strongest' or 'softmax', got {rival!r}")
    x = components - components.mean(dim=1, keepdim=True) if centre else components
    correct = W_U.T[labels].unsqueeze(1)  # [batch 1 d_model]
    if rival == "strongest":
        direction = correct - W_U.T[strongest_wrong(logits, labels)]  # [batch seq d_model]
    else:
        is_correct = torch.nn.functional.one_hot(labels, logits.shape[-1]).bool().unsqueeze(1)
        weights = logits.softmax(-1).masked_fill(is_correct, 0.0)
        weights = weights / weights.sum(-1, keepdim=True)  # p(wrong shift | wrong), [batch seq 26]
        direction = correct - einops.einsum(weights, W_U, "batch seq v, d_model v -> batch seq d_model")
    return einops.einsum(x / scale, direction, "comp batch seq d_model, batch seq d_model -> comp batch seq")


def group_share(dla: Float[Tensor, "component batch"], group: list[int]) -> Float[Tensor, ""]:
    """The share of the components in `group` in the mean attribution over the batch: sum of their means / the sum
    of every component's mean (a ratio of means, so resample sequences, not per-sequence shares, for its error)."""
    means = dla.mean(1)
    return means[group].sum() / means.sum()


def resampled_shares(dla: Float[Tensor, "component batch"], n_boot: int = 1000, seed: int = 0) -> Float[Tensor, "component n_boot"]:
    """Each component's share of the mean attribution on `n_boot` resamples of the sequences (one index draw for
    every component: paired), drawn as `utils.stats.bootstrap` draws them, in one tensor operation."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, dla.shape[1], (n_boot, dla.shape[1]), generator=g)
    means = dla.detach().cpu()[:, idx].mean(-1)  # [component n_boot]
    return means / means.sum(0, keepdim=True)


def share_difference(dla: Float[Tensor, "component batch"], group_a: list[int], group_b: list[int], seed: int = 0) -> Estimate:
    """group_share(a) - group_share(b) with its paired bootstrap SE over sequences (the same sequences enter both
    shares, so the difference is resampled as a whole)."""
    boot = resampled_shares(dla, seed=seed)
    value = float(group_share(dla.detach().cpu(), group_a) - group_share(dla.detach().cpu(), group_b))
    return Estimate(value, float((boot[group_a].sum(0) - boot[group_b].sum(0)).std()), "bootstrap over sequences", dla.shape[1])


def share_estimates(dla: Float[Tensor, "component batch"], groups: dict[str, list[int]], seed: int = 0) -> dict[str, Estimate]:
    """{name: that group's share ± its bootstrap SE over sequences}."""
    boot = resampled_shares(dla, seed=seed)
    return {name: Estimate(float(group_share(dla.detach().cpu(), g)), float(boot[g].sum(0).std()),
                           "bootstrap over sequences", dla.shape[1]) for name, g in groups.items()}


@torch.inference_mode()
def direct_path_ablated_logits(
    model: HookedTransformer, cache: ActivationCache, components: list[int], position: int
) -> Float[Tensor, "batch 26"]:
    """The logits at `position` with the *direct path* of each component in `components` (indices of
    COMPONENT_NAMES) mean-ablated: its output is replaced by its batch mean in the final residual stream only, and
    the final LayerNorm recomputed. What it does through later layers (what they read) is kept, so this asks whether
    the logits need the component's own write, not whether the model needs the component."""
    from .analysis import residual_components

    comps = residual_components(cache)[:, :, position]  # [component batch d_model]
    removed = (comps[components] - comps[components].mean(1, keepdim=True)).sum(0)
    resid = cache["resid_post", model.cfg.n_layers - 1][:, position] - removed
    return model.unembed(model.ln_final(resid.unsqueeze(1))).squeeze(1)


def outcomes(logits: Float[Tensor, "batch 26"], labels: Int[Tensor, "batch"]) -> tuple[Float[Tensor, "batch"], Float[Tensor, "batch"]]:
    """Per sequence, on the CPU: 1.0 where the top shift is right (else 0.0), and the loss (-log p of the right
    shift), for bootstrap errors over sequences."""
    logits, labels = logits.float().cpu(), labels.cpu()
    right = (logits.argmax(-1) == labels).float()
    loss = -logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return right, loss


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
