"""Head interventions measured per sequence, so every effect carries its bootstrap error (lessons 03 and 06).

    per_seq = resample_head_loss(model, toks, labels, layer=1, head=0, position=1, seed=0)  # [batch] nats
    print(utils.stats.mean_se(per_seq))  # "5.1 ± 0.2"

A *resample* ablation replaces one head's output (its `hook_z`) at one position by that head's output on another
real sequence of the batch (a random permutation, `seed`), so the patched activation stays in distribution. The
checks of lesson 06 (`check_experiment`, the judgement exercises) rerun the learner's stated intervention with these
functions on a fresh dataset seed.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

Method = Literal["resample", "mean", "zero"]
HEAD_NAMES = ("0.0", "0.1", "1.0", "1.1")


def parse_head(name: str) -> tuple[int, int]:
    """'1.0' -> (1, 0); raises ValueError with what is allowed."""
    if not isinstance(name, str) or name.strip() not in HEAD_NAMES:
        raise ValueError(f"a component is one of the heads {list(HEAD_NAMES)} (layer.head), got {name!r}")
    layer, head = name.strip().split(".")
    return int(layer), int(head)


def _z_hook(heads: Sequence[tuple[int, int]], positions: Sequence[int], method: Method, perm: Tensor):
    def hook(z: Float[Tensor, "batch seq head d_head"], hook) -> Float[Tensor, "batch seq head d_head"]:
        z = z.clone()
        layer = int(hook.name.split(".")[1])
        for lyr, head in heads:
            if lyr != layer:
                continue
            for pos in positions:
                if method == "resample":
                    z[:, pos, head] = z[perm, pos, head]
                elif method == "mean":
                    z[:, pos, head] = z[:, pos, head].mean(0, keepdim=True)
                else:
                    z[:, pos, head] = 0.0
        return z

    return hook


@torch.inference_mode()
def correct_loss(model: HookedTransformer, toks: Int[Tensor, "batch seq"], labels: Int[Tensor, "batch"],
                 fwd_hooks: list | None = None) -> Float[Tensor, "batch seq"]:
    """-log p(correct shift) at every position of every sequence (float64, CPU)."""
    logits = model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=fwd_hooks or []).cpu().double()
    return -eindex(logits.log_softmax(-1), labels.cpu(), "batch seq [batch]")


@torch.inference_mode()
def head_intervention_loss(
    model: HookedTransformer,
    toks: Int[Tensor, "batch seq"],
    labels: Int[Tensor, "batch"],
    heads: Sequence[str],
    positions: Sequence[int],
    method: Method = "resample",
    seed: int = 0,
) -> Float[Tensor, "batch seq"]:
    """Per-sequence, per-position loss with the named heads' outputs replaced at `positions` (resample: by their
    output on another sequence of the batch, a permutation drawn from `seed`; mean: the batch mean; zero)."""
    if method not in ("resample", "mean", "zero"):
        raise ValueError(f"method must be 'resample', 'mean' or 'zero', got {method!r}")
    parsed = [parse_head(h) for h in heads]
    perm = torch.randperm(len(toks), generator=torch.Generator().manual_seed(seed)).to(model.cfg.device)
    hook = _z_hook(parsed, list(positions), method, perm)
    layers = sorted({layer for layer, _ in parsed})
    return correct_loss(model, toks, labels, [(f"blocks.{layer}.attn.hook_z", hook) for layer in layers])


def resample_head_loss(
    model: HookedTransformer,
    toks: Int[Tensor, "batch seq"],
    labels: Int[Tensor, "batch"],
    head: str,
    position: int,
    method: Method = "resample",
    seed: int = 0,
) -> Float[Tensor, "batch"]:
    """Per-sequence increase in loss at `position` when head `head` ('1.0') is replaced there (see above)."""
    clean = correct_loss(model, toks, labels)[:, position]
    return head_intervention_loss(model, toks, labels, [head], [position], method, seed)[:, position] - clean
