"""Checks for notebook 04 (direct logit attribution, attention, ablation)."""

from __future__ import annotations

import functools

import torch

from ..data import CodeBreakingDataset
from .core import Case, Exercise, Mistake, Ref, _build_ref, make_test, reference, register

R = "lesson04"


def _dla_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq in ((40, 32), (7, 5)):
        components = torch.randn(5, batch, seq, 48, generator=g) + torch.randn(5, 1, seq, 48, generator=g) * 3
        scale = torch.rand(batch, seq, 1, generator=g) * 2 + 0.2
        W_U = torch.randn(48, 26, generator=g)
        labels = torch.randint(0, 26, (batch,), generator=g)
        cases.append(Case((components, scale, W_U, labels), label=f"random components, batch {batch}, seq {seq}"))
    cases.append(Case(_course_dla_inputs(seed), label=f"the easy model's components, cache['scale'], W_U and labels on "
                                                      f"{COURSE_DLA_SIZE} sequences (built as notebook 04 builds them)"))
    return cases


COURSE_DLA_SIZE = 100  # sequences: notebook 04 uses 1,000; the same construction on fewer keeps the check fast


@functools.lru_cache(maxsize=2)
def _course_dla_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(components, scale, W_U, labels) as notebook 04 calls dla_correct: the easy model's cached run on a dataset,
    its residual components (analysis.residual_components), its final LayerNorm scale and its unembedding."""
    from ..analysis import residual_components

    model = _build_ref(Ref("model", "easy"))
    dataset = CodeBreakingDataset("easy", size=COURSE_DLA_SIZE, seed=seed)
    with torch.inference_mode():
        _, cache = model.run_with_cache(dataset.toks)
        return (residual_components(cache).clone(), cache["scale"].clone(), model.W_U.detach().clone(),
                dataset.labels.clone())


def _random_pattern(g: torch.Generator, batch: int, heads: int, seq: int) -> torch.Tensor:
    scores = torch.randn(batch, heads, seq, seq, generator=g) * 2
    causal = torch.ones(seq, seq).tril().bool()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def _slot_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    return [
        Case((_random_pattern(g, 20, 2, 32),), label="random causal patterns [20, 2, 32, 32]"),
        Case((_random_pattern(g, 5, 3, 10),), label="random causal patterns [5, 3, 10, 10] (seq not a multiple of 4)"),
        Case((torch.eye(8).expand(2, 1, 8, 8).clone(),), label="every position attends to itself"),
    ]


def _loss_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    return [
        Case((torch.randn(30, 32, 26, generator=g) * 3, torch.randint(0, 26, (30,), generator=g)), label="random logits"),
        Case((torch.randn(4, 6, 26, generator=g), torch.randint(0, 26, (4,), generator=g)), label="random logits [4, 6, 26]"),
        Case((torch.randn(3, 32, 26, generator=g, dtype=torch.float64) * 5, torch.tensor([0, 25, 7])),
             label="float64 logits [3, 32, 26], shifts 0 and 25"),
    ]


def _toks(seed: int, size: int = 64, mode: str = "easy") -> tuple[torch.Tensor, torch.Tensor]:
    dataset = CodeBreakingDataset(mode, size=size, seed=seed)
    return dataset.toks, dataset.labels


def _ablation_cases(seed: int) -> list[Case]:
    toks, _ = _toks(seed)
    medium, _ = _toks(seed, 48, "medium")
    cases = [
        Case((Ref("model", "easy"), toks, layer, head, method), label=f"easy model, head {layer}.{head}, {method} ablation")
        for layer, head, method in ((0, 1, "mean"), (1, 0, "mean"), (1, 1, "zero"), (0, 0, "zero"))
    ]
    # the medium model: a function that ignores its `model` argument fails here
    cases.append(Case((Ref("model", "medium"), medium, 1, 0, "mean"), label="medium model, head 1.0, mean ablation"))
    cases.append(Case((Ref("model", "medium"), medium[:5, :9], 0, 1, "zero"),
                      label="medium model, 5 sequences of 9 tokens, head 0.1, zero ablation"))
    return cases


def _loss_change_cases(seed: int) -> list[Case]:
    toks, labels = _toks(seed)
    medium, medium_labels = _toks(seed, 40, "medium")
    cases = [Case((Ref("model", "easy"), toks, labels, method), label=f"easy model, {method} ablation") for method in ("mean", "zero")]
    cases.append(Case((Ref("model", "medium"), medium[:, :13], medium_labels, "zero"), label="medium model, 13 positions, zero ablation"))
    return cases


DLA_MISTAKES = (
    Mistake("no_mean_subtraction", "the components are not mean-subtracted: look at what you take away before "
                                   "dividing by scale (the mean over the batch, dim 1)."),
    Mistake("mean_over_components", "the mean you subtract is over the components (dim 0); the exercise centres "
                                    "each component over the batch."),
    Mistake("multiplies_by_scale", "the components are multiplied by `scale`; the final LayerNorm divides by it."),
    Mistake("no_scale", "`scale` is not used: the final LayerNorm divides every position by its scale."),
    Mistake("mean_over_positions", "the mean is removed over positions (dim 2) instead of over the batch (dim 1)."),
    Mistake("scaled_before_centring", "the batch mean is taken after dividing by `scale`; the text subtracts each "
                                      "component's batch mean from its output first, then divides by scale."),
    Mistake("centred_after_projecting", "the batch mean is removed after reading each sequence's correct-shift "
                                        "logit, whose direction differs from sequence to sequence; remove the "
                                        "component's batch mean from its output vectors before projecting."),
    Mistake("mean_over_batch_and_positions", "the mean you subtract is over the batch and the positions together "
                                             "(dims 1 and 2); the text takes it over the batch only, at each "
                                             "position."),
)
SLOT_MISTAKES = (
    Mistake("swapped_slots", "your [h, d, k] is the reference's [h, k, d]: the first slot index is the destination's "
                             "slot, the second the source's."),
    Mistake("destinations_counted_as_seq_over_4", "you divide by seq // 4 destinations per slot; when seq is not a "
                                                  "multiple of 4, the slots hold different numbers of positions."),
    Mistake("summed_over_destinations", "the destinations of a slot are summed, not averaged: each row should sum to 1."),
    Mistake("mean_over_sources", "the sources of a slot are averaged; the share is the sum of the attention on them."),
    Mistake("summed_over_batch", "the shares are summed over the batch instead of averaged: each row should sum to 1."),
    Mistake("destination_excluded", "the attention of a destination on itself is left out; the text counts "
                                    "sources in any slot, the destination itself included (each row sums to 1)."),
)
LOSS_MISTAKES = (
    Mistake("averaged_over_positions", "you average over positions too; keep one loss per position (mean over the "
                                       "batch only)."),
    Mistake("raw_logits", "you read the raw logits: turn them into log-probs over the 26 shifts first."),
    Mistake("probabilities", "you read probabilities (softmax); cross-entropy uses log-probs."),
    Mistake("no_minus_sign", "the sign is flipped: cross-entropy is minus the log-prob of the correct shift."),
    Mistake("batch_kept", "the loss is averaged over positions instead of over the batch: the result needs one value per position, not one per sequence."),
    Mistake("summed_over_batch", "the losses are summed over the batch, not averaged: the mean over the batch is asked for."),
    Mistake("log_softmax_over_batch", "the log-softmax is taken over the batch (dim 0); it normalises over the 26 "
                                      "shifts (the last dim)."),
    Mistake("log_softmax_over_positions", "the log-softmax is taken over positions (dim 1); it normalises over the "
                                          "26 shifts (the last dim)."),
)
ABLATION_MISTAKES = (
    Mistake("mean_over_positions_too", "the mean ablation averages over positions as well; the text asks for the "
                                       "mean over the batch, separately at each position."),
    Mistake("whole_layer", "every head of the layer is ablated: change only index `head` of hook_z's head dimension."),
    Mistake("always_zero", "`method` is ignored: \"mean\" ablation should replace the head's z by its batch mean."),
    Mistake("layer_and_head_swapped", "layer and head are swapped in the hook name / index."),
    Mistake("ignores_model", "your function does not use the `model` it is given (it gives the easy model's logits "
                             "for the medium model): use the argument, not a global variable."),
    Mistake("ablates_values", "your hook replaces the head's values (hook_v), not its z: for \"mean\" the mean "
                              "of the values is not the mean of z (z mixes them with this input's attention). "
                              "Hook blocks.{layer}.attn.hook_z."),
    Mistake("methods_swapped", "the two methods are swapped: \"zero\" should set the head's z to 0 and \"mean\" to "
                               "its batch mean at each position."),
    Mistake("mean_over_positions", "the mean ablation averages each sequence's z over its positions (dim 1); the text "
                                   "takes the mean over the batch (dim 0), separately at each position."),
    Mistake("head_on_seq_axis", "the head is indexed on the position axis (z[:, head]); z is [batch seq head d_head], "
                                "so the head is z[:, :, head]."),
)
LOSS_CHANGE_MISTAKES = (
    Mistake("flipped_sign", "the sign is flipped: ablated loss minus clean loss (positive when the head helped)."),
    Mistake("averaged_over_positions", "you average over positions; keep one value per position: [layer head seq]."),
    Mistake("ignores_method", "`method` is ignored: pass it on to the ablation."),
    Mistake("ignores_model", "your function does not use the `model` it is given: use the argument (and its "
                             "n_layers / n_heads), not a global variable."),
    Mistake("layers_and_heads_swapped", "your entry [l, h] holds head h.l: the first index is the layer, the "
                                        "second the head."),
    Mistake("summed_over_batch", "the losses are summed over the batch, not averaged: each entry is a change in "
                                 "the mean loss per sequence."),
)

register(Exercise("dla_correct", "04", reference(R, "dla_correct"), _dla_cases, points=2, mistakes=DLA_MISTAKES,
                  hint="Look at the step the reported value depends on: the batch-mean removal (which dimension), the "
                       "final scale, or which shift is read for each sequence."))
register(Exercise("attention_slot_shares", "04", reference(R, "attention_slot_shares"), _slot_cases, points=2,
                  mistakes=SLOT_MISTAKES,
                  hint="Compare one destination slot's row: which destinations count as that slot, which sources are "
                       "grouped into each source slot, and what the average is taken over."))
register(Exercise("loss_per_position", "04", reference(R, "loss_per_position"), _loss_cases, mistakes=LOSS_MISTAKES,
                  hint="Check the sign, which shift is read for each sequence, and which dimension is averaged (the "
                       "result keeps one value per position)."))
register(Exercise("ablated_logits", "04", reference(R, "ablated_logits"), _ablation_cases, points=2,
                  mistakes=ABLATION_MISTAKES,
                  hint="Look at what your hook replaces: which activation, which head (and only that head), and, for "
                       "the mean, which dimension the mean is taken over (each position keeps its own)."))
register(Exercise("ablation_loss_change", "04", reference(R, "ablation_loss_change"), _loss_change_cases,
                  mistakes=LOSS_CHANGE_MISTAKES,
                  hint="Check the sign of the difference (which run is subtracted from which) and that every (layer, "
                       "head) entry uses that head's ablation."))

test_dla_correct = make_test("dla_correct")
test_attention_slot_shares = make_test("attention_slot_shares")
test_loss_per_position = make_test("loss_per_position")
test_ablated_logits = make_test("ablated_logits")
test_ablation_loss_change = make_test("ablation_loss_change")
