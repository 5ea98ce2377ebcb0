"""Experiments of the learner's own design (lessons 04 and 05): a claim stated as a structured object, and a check
that measures it on the model.

    claim = Claim("mean_ablation", head="0.1", position=2, value=4.0, tolerance=1.0)
    check_claim(claim, model, dataset)   # prints claimed vs measured; raises CheckFailed if the model disagrees

A claim names what is measured (`quantity`), where (`head`, `position`, and for some quantities a `slot` or a stream
`part`), and the effect size with the tolerance the learner commits to. A claim too vague to be wrong (a tolerance
larger than half the claimed value, plus 0.1) is refused before anything is measured.
"""

from __future__ import annotations

import dataclasses

import einops
import torch
from eindex import eindex
from transformer_lens import HookedTransformer

from .analysis import (
    COMPONENT_NAMES,
    SLOT_NAMES,
    ablated_logits,
    dla_correct,
    loss_per_position,
    residual_components,
)
from .attribution import STREAM_PART_NAMES, dla_margin, head_output_parts, key_score_components, layer1_stream_parts
from .checks.core import CheckFailed

QUANTITIES: dict[str, str] = {
    "dla_correct": "mean direct logit attribution of `head` (or 'embed') to the correct shift at `position`",
    "dla_margin": "mean direct attribution of `head` (or 'embed') to the margin (correct minus strongest wrong) at `position`",
    "mean_ablation": "loss change (nats) at `position` when `head` is mean-ablated",
    "zero_ablation": "loss change (nats) at `position` when `head` is zero-ablated",
    "attention_on_slot": "share of layer-1 `head`'s attention from `position` that lands on sources in `slot`",
    "score_part": "mean contribution of stream `part` to layer-1 `head`'s attention score at the first word's letter "
                  "in `slot` (0A, 0B or 0C), over destinations from position 4 on",
    "output_part_dla": "mean direct attribution to the correct shift, at `position`, of the part of layer-1 `head`'s "
                       "output that comes from stream `part`",
}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One testable claim: `quantity` (a key of QUANTITIES) of `head` at `position` is `value` +- `tolerance`."""

    quantity: str
    head: str
    position: int
    value: float
    tolerance: float
    slot: str | None = None  # for attention_on_slot and score_part: one of SLOT_NAMES
    part: str | None = None  # for score_part and output_part_dla: one of STREAM_PART_NAMES


def validate(claim: Claim) -> None:
    """Raise ValueError with what to change if the claim cannot be measured or is too vague to be wrong."""
    if not isinstance(claim, Claim):
        raise ValueError(f"Pass a Claim(...), not {type(claim).__name__}.")
    if claim.quantity not in QUANTITIES:
        raise ValueError(f"Unknown quantity {claim.quantity!r}: choose one of {sorted(QUANTITIES)}.")
    layer1 = claim.quantity in ("attention_on_slot", "score_part", "output_part_dla")
    heads = ["1.0", "1.1"] if layer1 else (COMPONENT_NAMES if claim.quantity.startswith("dla") else COMPONENT_NAMES[1:])
    if claim.head not in heads:
        raise ValueError(f"head {claim.head!r} cannot be measured for {claim.quantity!r}: choose one of {heads}.")
    if not isinstance(claim.position, int) or not 0 <= claim.position < 32:
        raise ValueError(f"position must be an int from 0 to 31, got {claim.position!r}.")
    if claim.quantity in ("attention_on_slot", "score_part") and claim.slot not in SLOT_NAMES[: 3 if claim.quantity == "score_part" else 4]:
        raise ValueError(f"{claim.quantity!r} needs slot= one of {SLOT_NAMES[:3] if claim.quantity == 'score_part' else SLOT_NAMES}.")
    if claim.quantity in ("score_part", "output_part_dla") and claim.part not in STREAM_PART_NAMES:
        raise ValueError(f"{claim.quantity!r} needs part= one of {STREAM_PART_NAMES}.")
    if not claim.tolerance > 0:
        raise ValueError("tolerance must be positive: say how far off the measurement may be for the claim to hold.")
    if claim.tolerance > 0.5 * abs(claim.value) + 0.1:
        raise ValueError(
            f"tolerance {claim.tolerance} is too wide for a value of {claim.value}: a claim that almost any measurement "
            "satisfies tests nothing. Commit to a tolerance of at most half the value (plus 0.1)."
        )


@torch.inference_mode()
def measure(claim: Claim, model: HookedTransformer, toks: torch.Tensor, labels: torch.Tensor) -> float:
    """The value of the claim's quantity on the model, over the sequences `toks` with shifts `labels`."""
    validate(claim)
    toks, labels = toks.to(model.cfg.device), labels.to(model.cfg.device)
    p, q = claim.position, claim.quantity
    if q in ("mean_ablation", "zero_ablation"):
        layer, head = map(int, claim.head.split("."))
        clean = loss_per_position(model(toks), labels)
        ablated = loss_per_position(ablated_logits(model, toks, layer, head, q.split("_")[0]).to(clean.device), labels)
        return (ablated - clean)[p].item()
    logits, cache = model.run_with_cache(toks)
    if q in ("dla_correct", "dla_margin"):
        comps = residual_components(cache)
        index = COMPONENT_NAMES.index(claim.head)
        if q == "dla_correct":
            values = dla_correct(comps, cache["scale"], model.W_U, labels)
        else:
            values = dla_margin(comps, cache["scale"], model.W_U, logits, labels)
        return values[index, :, p].mean().item()
    head = int(claim.head[-1])
    if q == "attention_on_slot":
        slot = SLOT_NAMES.index(claim.slot)
        return cache["pattern", 1][:, head, p, slot::4][:, : p // 4 + 1].sum(-1).mean().item()
    parts = layer1_stream_parts(model, cache)
    part = STREAM_PART_NAMES.index(claim.part)
    scale = cache["scale", 1, "ln1"]
    if q == "score_part":
        q_vec = einops.rearrange(cache["q", 1], "batch seq head d_head -> batch head seq d_head")
        scores = key_score_components(q_vec, parts[part : part + 1], scale, model.W_K[1])  # [1 batch head dest src]
        return scores[0, :, head, 4:, SLOT_NAMES.index(claim.slot)].mean().item()
    W_OV = model.W_V[1, head : head + 1] @ model.W_O[1, head : head + 1]
    out = head_output_parts(parts[part : part + 1], scale, cache["pattern", 1][:, head : head + 1], W_OV)[0, :, 0]
    out = out - out.mean(0, keepdim=True)  # as in DLA: what varies with the input
    return eindex((out / cache["scale"]) @ model.W_U, labels, "batch seq [batch]")[:, p].mean().item()


def check_claim(claim: Claim, model: HookedTransformer, dataset) -> float:
    """Measure the claim on `dataset` (a CodeBreakingDataset); print claimed vs measured; raise CheckFailed saying by
    how much the model disagrees if the measurement falls outside the claimed tolerance. Returns the measurement."""
    measured = measure(claim, model, dataset.toks, dataset.labels)
    where = f"{claim.quantity} of {claim.head} at position {claim.position}" + (f", slot {claim.slot}" if claim.slot else "") + (
        f", part {claim.part}" if claim.part else "")
    off = measured - claim.value
    if abs(off) > claim.tolerance:
        raise CheckFailed(
            f"Claim not supported: {where} measures {measured:.3f}, you claimed {claim.value} +- {claim.tolerance} "
            f"(off by {off:+.3f}). Revise the claim from what you measured, or design a sharper experiment."
        )
    print(f"Claim supported: {where} measures {measured:.3f} (claimed {claim.value} +- {claim.tolerance}).")
    return measured
