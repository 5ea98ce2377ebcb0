"""Experiments of the learner's own design (lessons 04 and 05): a claim stated as a structured object, and a check
that measures it on the model.

    claim = Claim("mean_ablation", head="0.1", position=2, value=4.0, tolerance=1.0)
    check_claim(claim, model, dataset)   # prints claimed vs measured; raises CheckFailed if the model disagrees

A claim names what is measured (`quantity`), where (`head`, `position`, and for some quantities a `slot` or a stream
`part`), and the effect size with the tolerance the learner commits to. A claim too vague to be wrong (a tolerance
larger than half the claimed value, plus 0.1) is refused before anything is measured.

A claim read off some data is judged on *other* data: `check_claim` measures it again on a fresh dataset (same mode
and size, a seed derived from the learner's, never the same one) and decides on that measurement, printed with its
standard error over sequences. Reading a number off 1,000 sequences and "confirming" it on the same 1,000 tests
nothing.
"""

from __future__ import annotations

import dataclasses

import einops
import torch
from eindex import eindex
from transformer_lens import HookedTransformer

from .analysis import COMPONENT_NAMES, SLOT_NAMES, ablated_logits, dla_correct, residual_components
from .attribution import STREAM_PART_NAMES, dla_margin, head_output_parts, key_score_components, layer1_stream_parts
from .checks.core import CheckFailed
from .stats import Estimate, mean_se

QUANTITIES: dict[str, str] = {
    "dla_correct": "mean direct logit attribution of `head` (or 'embed') to the correct shift at `position`",
    "dla_margin": "mean direct attribution of `head` (or 'embed') to the margin (correct minus strongest wrong) at `position`",
    "mean_ablation": "loss change (nats) at `position` when `head` is mean-ablated",
    "zero_ablation": "loss change (nats) at `position` when `head` is zero-ablated",
    "attention_on_slot": "share of layer-1 `head`'s attention from `position` that lands on sources in `slot`",
    "score_part": "mean contribution of stream `part` to layer-1 `head`'s attention score on the first word's letter "
                  "in `slot` (0A, 0B or 0C), over destinations from `position` on (at the earliest from position 4, "
                  "the second word: positions 0-3 belong to the first word itself)",
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
    slot: str | None = None  # attention_on_slot: one of SLOT_NAMES; score_part: 0A, 0B or 0C (or "1st letter", ...)
    part: str | None = None  # for score_part and output_part_dla: one of STREAM_PART_NAMES


FIRST_WORD_SLOTS: dict[str, str] = {"0A": SLOT_NAMES[0], "0B": SLOT_NAMES[1], "0C": SLOT_NAMES[2]}
SCORE_PART_FIRST_DEST = 4  # score_part averages over destinations in later words, which read the first word
FRESH_SEED_OFFSET = 7919  # check_claim's fresh data: the learner's seed plus this (a prime, far from 0-100)


def _slot_index(claim: Claim) -> int:
    """The slot of a claim as an index of SLOT_NAMES; score_part also takes the first word's names 0A, 0B, 0C."""
    name = FIRST_WORD_SLOTS.get(claim.slot, claim.slot) if claim.quantity == "score_part" else claim.slot
    return SLOT_NAMES.index(name)


def first_destination(claim: Claim) -> int:
    """score_part's first destination: `position`, or 4 where `position` is inside the first word."""
    return max(claim.position, SCORE_PART_FIRST_DEST)


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
    if claim.quantity == "attention_on_slot" and claim.slot not in SLOT_NAMES:
        raise ValueError(f"'attention_on_slot' needs slot= one of {SLOT_NAMES} (the slot of every word, not one word's).")
    if claim.quantity == "score_part" and claim.slot not in [*FIRST_WORD_SLOTS, *SLOT_NAMES[:3]]:
        raise ValueError(f"'score_part' needs slot= one of {list(FIRST_WORD_SLOTS)} (the first word's letters; "
                         f"{SLOT_NAMES[:3]} are accepted as the same slots).")
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
def per_sequence(claim: Claim, model: HookedTransformer, toks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The claim's quantity on each sequence of `toks` (shifts `labels`), on the CPU: its mean is the measurement."""
    validate(claim)
    toks, labels = toks.to(model.cfg.device), labels.to(model.cfg.device)
    p, q = claim.position, claim.quantity
    if q in ("mean_ablation", "zero_ablation"):
        layer, head = map(int, claim.head.split("."))
        clean = eindex(model(toks).log_softmax(-1), labels, "batch seq [batch]")
        ablated = eindex(ablated_logits(model, toks, layer, head, q.split("_")[0]).to(clean.device).log_softmax(-1),
                         labels, "batch seq [batch]")
        return (clean - ablated)[:, p].cpu()  # loss change: ablated loss minus clean loss
    logits, cache = model.run_with_cache(toks)
    if q in ("dla_correct", "dla_margin"):
        comps = residual_components(cache)
        index = COMPONENT_NAMES.index(claim.head)
        if q == "dla_correct":
            values = dla_correct(comps, cache["scale"], model.W_U, labels)
        else:
            values = dla_margin(comps, cache["scale"], model.W_U, logits, labels)
        return values[index, :, p].cpu()
    head = int(claim.head[-1])
    if q == "attention_on_slot":
        slot = _slot_index(claim)
        return cache["pattern", 1][:, head, p, slot::4][:, : p // 4 + 1].sum(-1).cpu()
    parts = layer1_stream_parts(model, cache)
    part = STREAM_PART_NAMES.index(claim.part)
    scale = cache["scale", 1, "ln1"]
    if q == "score_part":
        q_vec = einops.rearrange(cache["q", 1], "batch seq head d_head -> batch head seq d_head")
        scores = key_score_components(q_vec, parts[part : part + 1], scale, model.W_K[1])  # [1 batch head dest src]
        return scores[0, :, head, first_destination(claim):, _slot_index(claim)].mean(-1).cpu()
    W_OV = model.W_V[1, head : head + 1] @ model.W_O[1, head : head + 1]
    out = head_output_parts(parts[part : part + 1], scale, cache["pattern", 1][:, head : head + 1], W_OV)[0, :, 0]
    out = out - out.mean(0, keepdim=True)  # as in DLA: what varies with the input
    return eindex((out / cache["scale"]) @ model.W_U, labels, "batch seq [batch]")[:, p].cpu()


def measure(claim: Claim, model: HookedTransformer, toks: torch.Tensor, labels: torch.Tensor) -> float:
    """The value of the claim's quantity on the model, over the sequences `toks` with shifts `labels`."""
    return per_sequence(claim, model, toks, labels).mean().item()


def describe(claim: Claim) -> str:
    """Where the claim measures, in words (score_part names the destinations it averages over)."""
    where = f"{claim.quantity} of {claim.head}"
    if claim.quantity == "score_part":
        where += f" on {list(FIRST_WORD_SLOTS)[_slot_index(claim)]}, destinations {first_destination(claim)}-31"
    else:
        where += f" at position {claim.position}" + (f", slot {claim.slot}" if claim.slot else "")
    return where + (f", part {claim.part}" if claim.part else "")


def fresh_dataset(dataset):
    """Data the claim was not read from: the same mode and size, seed = the learner's seed + FRESH_SEED_OFFSET."""
    from .data import CodeBreakingDataset

    return CodeBreakingDataset(dataset.mode, seq_len=dataset.seq_len, size=dataset.size,
                               seed=dataset.seed + FRESH_SEED_OFFSET)


def check_claim(claim: Claim, model: HookedTransformer, dataset) -> float:
    """Judge the claim on fresh data: measure it on a new dataset (same mode and size as `dataset`, another seed),
    print claimed vs measured with the fresh measurement's standard error over sequences, and raise CheckFailed
    saying by how much the model disagrees when the fresh measurement falls outside the claimed value +- tolerance.
    Returns the measurement on `dataset` itself (the data you read the claim from, for comparison)."""
    validate(claim)
    on_yours = measure(claim, model, dataset.toks, dataset.labels)
    fresh = fresh_dataset(dataset)
    est: Estimate = mean_se(per_sequence(claim, model, fresh.toks, fresh.labels))
    where, off = describe(claim), est.value - claim.value
    noise = (f" Note: the fresh measurement's own error (2 SE = {2 * est.se:.2g}) is comparable to your tolerance, so "
             "a claim this tight can fail by chance alone.") if 2 * est.se > 0.5 * claim.tolerance else ""
    if abs(off) > claim.tolerance:
        raise CheckFailed(
            f"Claim not supported: {where} measures {est} (SE over {est.n} fresh sequences, seed {fresh.seed}), "
            f"you claimed {claim.value} +- {claim.tolerance} (off by {off:+.3f}; on the data you read it from: "
            f"{on_yours:.3f}). Revise the claim from what you measured, or design a sharper experiment.{noise}"
        )
    print(f"Claim supported on fresh data: {where} measures {est} (SE over {est.n} fresh sequences, seed {fresh.seed}; "
          f"claimed {claim.value} +- {claim.tolerance}; on your data {on_yours:.3f}).{noise}")
    return on_yours
