"""Plausible wrong answers to the lesson-04 exercises, one function `<exercise>__<mistake>` per catalogued
`Mistake` (utils/checks/lesson04.py). The checks run them to name a learner's mistake; tests/ runs them to show
that each is rejected and named. Never shipped to a learner's sandbox."""

from __future__ import annotations

import functools

import einops
import torch
from eindex import eindex

from ..analysis import ablated_logits, ablation_loss_change, loss_per_position


@functools.lru_cache(maxsize=1)
def _easy_model():
    from ..model import load_model

    return load_model("easy", device="cpu")


# dla_correct(components, scale, W_U, labels)


def _project(x, W_U, labels):
    return eindex(x @ W_U, labels, "comp batch seq [batch]")


def dla_correct__no_mean_subtraction(components, scale, W_U, labels):
    return _project(components / scale, W_U, labels)


def dla_correct__mean_over_components(components, scale, W_U, labels):
    return _project((components - components.mean(0, keepdim=True)) / scale, W_U, labels)


def dla_correct__multiplies_by_scale(components, scale, W_U, labels):
    return _project((components - components.mean(1, keepdim=True)) * scale, W_U, labels)


def dla_correct__no_scale(components, scale, W_U, labels):
    return _project(components - components.mean(1, keepdim=True), W_U, labels)


# attention_slot_shares(pattern)


def _slot_sums(pattern):
    onehot = torch.nn.functional.one_hot(torch.arange(pattern.shape[-1]) % 4, 4).to(pattern.dtype)
    return einops.einsum(pattern, onehot, onehot, "b h dest src, src k, dest d -> h d k"), onehot


def attention_slot_shares__swapped_slots(pattern):
    summed, onehot = _slot_sums(pattern)
    return (summed / (onehot.sum(0) * pattern.shape[0]).view(1, 4, 1)).transpose(-1, -2).float()


def attention_slot_shares__destinations_counted_as_seq_over_4(pattern):
    summed, _ = _slot_sums(pattern)
    return (summed / (pattern.shape[0] * (pattern.shape[-1] // 4))).float()


def attention_slot_shares__summed_over_destinations(pattern):
    summed, _ = _slot_sums(pattern)
    return (summed / pattern.shape[0]).float()


def attention_slot_shares__mean_over_sources(pattern):
    onehot = torch.nn.functional.one_hot(torch.arange(pattern.shape[-1]) % 4, 4).to(pattern.dtype)
    by_src = einops.einsum(pattern, onehot, "b h dest src, src k -> b h dest k") / onehot.sum(0)
    summed = einops.einsum(by_src, onehot, "b h dest k, dest d -> h d k")
    return (summed / (onehot.sum(0) * pattern.shape[0]).view(1, 4, 1)).float()


# loss_per_position(logits, labels)


def loss_per_position__averaged_over_positions(logits, labels):
    return loss_per_position(logits, labels).mean()


def loss_per_position__raw_logits(logits, labels):
    return -eindex(logits, labels, "batch seq [batch]").mean(0)


def loss_per_position__probabilities(logits, labels):
    return -eindex(logits.softmax(-1), labels, "batch seq [batch]").mean(0)


def loss_per_position__no_minus_sign(logits, labels):
    return -loss_per_position(logits, labels)


# ablated_logits(model, toks, layer, head, method)


def _run_with(model, toks, layer, hook):
    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])


def ablated_logits__mean_over_positions_too(model, toks, layer, head, method="mean"):
    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = 0.0 if method == "zero" else z[:, :, head].mean((0, 1), keepdim=True)
        return z

    return _run_with(model, toks, layer, hook)


def ablated_logits__whole_layer(model, toks, layer, head, method="mean"):
    def hook(z, hook):
        return torch.zeros_like(z) if method == "zero" else z.mean(0, keepdim=True).expand_as(z)

    return _run_with(model, toks, layer, hook)


def ablated_logits__always_zero(model, toks, layer, head, method="mean"):
    return ablated_logits(model, toks, layer, head, "zero")


def ablated_logits__layer_and_head_swapped(model, toks, layer, head, method="mean"):
    return ablated_logits(model, toks, head, layer, method)


def ablated_logits__ignores_model(model, toks, layer, head, method="mean"):
    return ablated_logits(_easy_model(), toks, layer, head, method)


# ablation_loss_change(model, toks, labels, method)


def ablation_loss_change__flipped_sign(model, toks, labels, method="mean"):
    return -ablation_loss_change(model, toks, labels, method)


def ablation_loss_change__averaged_over_positions(model, toks, labels, method="mean"):
    return ablation_loss_change(model, toks, labels, method).mean(-1)


def ablation_loss_change__ignores_method(model, toks, labels, method="mean"):
    return ablation_loss_change(model, toks, labels, "mean")


def ablation_loss_change__ignores_model(model, toks, labels, method="mean"):
    return ablation_loss_change(_easy_model(), toks, labels, method)


def _margin_dla(components, scale, W_U, wrong, labels, centre=True):
    centred = components - components.mean(dim=1, keepdim=True) if centre else components
    direction = W_U.T[labels].unsqueeze(1) - W_U.T[wrong]
    return einops.einsum(centred / scale, direction, "c b s d, b s d -> c b s")


# --- catalogue grown from the classes of issue 19 ---
from . import lesson04 as ref  # noqa: E402


def dla_correct__mean_over_positions(components, scale, W_U, labels):
    c = components - components.mean(2, keepdim=True)
    return eindex((c / scale) @ W_U, labels, 'c b s [b]')


def loss_per_position__batch_kept(logits, labels):
    return -eindex(logits.log_softmax(-1), labels, 'b s [b]').mean(1)


def attention_slot_shares__summed_over_batch(pattern):
    return ref.attention_slot_shares(pattern) * pattern.shape[0]


def loss_per_position__summed_over_batch(logits, labels):
    return -eindex(logits.log_softmax(-1), labels, 'b s [b]').sum(0)


# shares_differ(dla, group_a, group_b) (a judgement exercise: the error of a difference of shares, and the verdict)


def _share_verdict(difference: float, se: float) -> dict:
    return {"difference": float(difference), "se": float(se), "real": bool(abs(difference) > 2 * se)}


def shares_differ__independent_errors(dla, group_a, group_b):
    from ..attribution import share_estimates

    est = share_estimates(dla, {"a": group_a, "b": group_b})
    return _share_verdict(est["a"].value - est["b"].value, (est["a"].se ** 2 + est["b"].se ** 2) ** 0.5)


def shares_differ__b_minus_a(dla, group_a, group_b):
    from .lesson04_judgement import shares_differ

    return shares_differ(dla, group_b, group_a)


def shares_differ__se_of_group_a(dla, group_a, group_b):
    from ..attribution import group_share, share_estimates

    est = share_estimates(dla, {"a": group_a})["a"]
    return _share_verdict(float(group_share(dla, group_a) - group_share(dla, group_b)), est.se)


# --- issue 19 (lessons 04-07): more classes from the exercise text ---


def dla_correct__scaled_before_centring(components, scale, W_U, labels):
    scaled = components / scale
    return _project(scaled - scaled.mean(1, keepdim=True), W_U, labels)


def dla_correct__centred_after_projecting(components, scale, W_U, labels):
    raw = _project(components / scale, W_U, labels)
    return raw - raw.mean(1, keepdim=True)


def dla_correct__mean_over_batch_and_positions(components, scale, W_U, labels):
    return _project((components - components.mean((1, 2), keepdim=True)) / scale, W_U, labels)


def attention_slot_shares__destination_excluded(pattern):
    seq = pattern.shape[-1]
    return ref.attention_slot_shares(pattern * (1 - torch.eye(seq, dtype=pattern.dtype)))


def loss_per_position__log_softmax_over_batch(logits, labels):
    return -eindex(logits.log_softmax(0), labels, "batch seq [batch]").mean(0)


def loss_per_position__log_softmax_over_positions(logits, labels):
    return -eindex(logits.log_softmax(1), labels, "batch seq [batch]").mean(0)


def ablated_logits__ablates_values(model, toks, layer, head, method="mean"):
    def hook(v, hook):
        v = v.clone()
        v[:, :, head] = 0.0 if method == "zero" else v[:, :, head].mean(0, keepdim=True)
        return v

    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_v", hook)])


def ablation_loss_change__layers_and_heads_swapped(model, toks, labels, method="mean"):
    return ablation_loss_change(model, toks, labels, method).transpose(0, 1).contiguous()


def ablation_loss_change__summed_over_batch(model, toks, labels, method="mean"):
    return ablation_loss_change(model, toks, labels, method) * toks.shape[0]


def ablated_logits__methods_swapped(model, toks, layer, head, method="mean"):
    return ablated_logits(model, toks, layer, head, {"mean": "zero", "zero": "mean"}[method])


def _ablate_slice(model, toks, layer, method, where, mean_dims=(0,)):
    """Ablate z[where] (an index tuple into [batch seq head d_head]) by zero or by its mean over `mean_dims`."""
    def hook(z, hook):
        z = z.clone()
        z[where] = 0.0 if method == "zero" else z.mean(mean_dims, keepdim=True).expand_as(z)[where]
        return z

    return _run_with(model, toks, layer, hook)


def ablated_logits__mean_over_positions(model, toks, layer, head, method="mean"):
    return _ablate_slice(model, toks, layer, method, (slice(None), slice(None), head), mean_dims=(1,))


def ablated_logits__head_on_seq_axis(model, toks, layer, head, method="mean"):
    return _ablate_slice(model, toks, layer, method, (slice(None), head))


def shares_differ__per_sequence_se(dla, group_a, group_b):
    from ..attribution import group_share

    per_sequence = (dla[group_a].sum(0) - dla[group_b].sum(0)) / dla.sum(0)
    difference = float(group_share(dla, group_a) - group_share(dla, group_b))
    return _share_verdict(difference, float(per_sequence.std() / dla.shape[1] ** 0.5))
