"""Checks for notebook 05 (the OV and QK circuits of layer 1)."""

from __future__ import annotations

import torch

from .core import Case, Exercise, Mistake, make_test, reference, register

R = "lesson05"


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _ov_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq, heads in ((52, 3, 2), (9, 7, 3)):
        resid = _centred(torch.randn(batch, seq, 48, generator=g) * 4)
        ln_scale = torch.rand(batch, seq, 1, generator=g) * 3 + 0.5
        W_OV = torch.randn(heads, 48, 48, generator=g) / 7
        W_U = torch.randn(48, 26, generator=g)
        labels = torch.randint(0, 26, (batch,), generator=g)
        final_scale = float(torch.rand((), generator=g) * 2 + 1.5)
        cases.append(Case((resid, ln_scale, W_OV, W_U, final_scale, labels), label=f"random tensors, batch {batch}, seq {seq}, {heads} heads"))
    return cases


def _qk_weights(g: torch.Generator, heads: int, d_model: int = 48, d_head: int = 24):
    return (
        torch.randn(heads, d_model, d_head, generator=g) / 3,
        torch.randn(heads, d_head, generator=g),
        torch.randn(heads, d_model, d_head, generator=g) / 3,
        torch.randn(heads, d_head, generator=g),
    )


def _qk_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for seq, heads in ((32, 2), (6, 3)):
        q_resid = torch.randn(seq, 48, generator=g)
        k_resid = torch.randn(seq, 48, generator=g)
        cases.append(Case((q_resid, k_resid, *_qk_weights(g, heads)), label=f"random queries and keys, seq {seq}, {heads} heads"))
    return cases


OV_MISTAKES = (
    Mistake("no_ln_scale", "`ln_scale` is not used: the head's LayerNorm divides resid by it before the OV circuit."),
    Mistake("no_final_scale", "`final_scale` is not used: the final LayerNorm divides the head's output by it."),
    Mistake("transposed_W_OV", "W_OV is applied transposed: in TransformerLens a row vector is multiplied on the "
                               "left (x @ W_OV, d_model in -> d_model out)."),
    Mistake("max_logit", "you take the largest logit over the shifts; the exercise asks for the logit of the "
                         "correct shift labels[b]."),
    Mistake("multiplies_final_scale", "the output is multiplied by final_scale: the final LayerNorm divides by it."),
    Mistake("multiplies_ln_scale", "resid is multiplied by `ln_scale`; the layer's LayerNorm divides by it."),
    Mistake("no_scales", "neither scale is used: the layer's LayerNorm divides resid by `ln_scale`, and the final "
                         "LayerNorm divides the head's output by `final_scale`."),
)
QK_MISTAKES = (
    Mistake("no_mask", "sources later than the destination are not masked before the softmax."),
    Mistake("no_scaling", "the scores are not scaled by 1 / sqrt(d_head)."),
    Mistake("divides_by_d_head", "the scores are divided by d_head; attention divides by its square root."),
    Mistake("no_biases", "the query bias b_Q is missing (at least b_Q: the key bias b_K adds the same score to every "
                         "source of a destination, so the pattern cannot show whether it is there)."),
    Mistake("softmax_over_destinations", "the softmax runs over destinations (dim -2); each destination's attention "
                                         "is a distribution over sources (the last dim)."),
    Mistake("diagonal_masked", "the destination's own position is masked too: a source is invisible only when "
                               "it is later than the destination (the mask keeps the diagonal)."),
    Mistake("masked_after_softmax", "the later sources are zeroed after the softmax, so the rows no longer sum to 1: "
                                    "mask the scores (minus infinity) before the softmax."),
    Mistake("masked_with_zero", "the later sources get a score of 0, which softmax turns into weight; they need "
                                "minus infinity to get exactly zero."),
    Mistake("scores_transposed", "the score matrix is transposed (keys times queries): row d must hold "
                                 "destination d's query against every source's key."),
    Mistake("mask_transposed", "the mask is transposed: it keeps the sources at or after the destination (triu); "
                               "a destination sees the sources at or before it (tril)."),
    Mistake("divides_by_sqrt_d_model", "the scores are divided by sqrt(d_model); attention divides by sqrt(d_head)."),
)
register(Exercise("ov_correct_logits", "05", reference(R, "ov_correct_logits"), _ov_cases, points=2,
                  mistakes=OV_MISTAKES,
                  hint="Look at the quantity that differs: the LayerNorm scale (before the OV circuit), the final "
                       "scale (after it), the side W_OV multiplies from, or which shift is read for each sequence."))
register(Exercise("qk_pattern", "05", reference(R, "qk_pattern"), _qk_cases, points=2,
                  mistakes=QK_MISTAKES,
                  hint="Look at where the failing pattern differs: the biases, the score scale, the mask (which "
                       "sources a destination may see), or the dimension the softmax runs over."))
test_ov_correct_logits = make_test("ov_correct_logits")
test_qk_pattern = make_test("qk_pattern")
