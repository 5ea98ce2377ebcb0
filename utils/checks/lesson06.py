"""Checks for notebook 06 (the medium and hard models)."""

from __future__ import annotations

import torch

from .core import Case, Exercise, Mistake, Ref, make_test, reference, register

R = "lesson06"


def _observer_cases(seed: int) -> list[Case]:
    # Only the word table of the dataset matters here, so the cases are the same for every seed.
    return [
        Case((Ref("model", "easy"), Ref("dataset", "easy", 100, seed)), label="the easy model and an easy dataset"),
        Case((Ref("model", "medium"), Ref("dataset", "medium", 100, seed)), label="the medium model and a medium dataset"),
    ]


def _random_freqs(g: torch.Generator) -> torch.Tensor:
    freqs = torch.rand(26, generator=g) ** 3 + 1e-3  # uneven, like real letter frequencies, never 0
    return (freqs / freqs.sum()).double()


def _baseline_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq, vocab in ((20, 32, 36), (6, 9, 36), (10, 16, 27)):
        toks = torch.randint(0, vocab, (batch, seq), generator=g)
        toks[0, :2] = torch.tensor([27, 26])  # a sequence that opens with non-letters
        cases.append(Case((toks, _random_freqs(g)), label=f"random tokens [{batch}, {seq}] (ids < {vocab}), random letter frequencies"))
    toks = torch.randint(0, 36, (4, 12), generator=g)
    cases.append(Case((toks, _random_freqs(g).float()), label="random tokens [4, 12], float32 letter frequencies"))
    return cases


def _gap_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq in ((50, 32), (7, 12)):
        model_lp = (torch.randn(batch, seq, 26, generator=g) * 3).log_softmax(-1)
        baseline_lp = (torch.randn(batch, seq, 26, generator=g) * 2).log_softmax(-1).double()
        labels = torch.randint(0, 26, (batch,), generator=g)
        cases.append(Case((model_lp, baseline_lp, labels), label=f"random log-probs [{batch}, {seq}, 26]"))
    return cases


def _entropy_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    sharp = torch.full((26,), float("-inf"))
    sharp[3] = 0.0  # one certain shift: the others have log-prob -inf
    return [
        Case(((torch.randn(10, 32, 26, generator=g) * 3).log_softmax(-1),), label="random log-probs [10, 32, 26]"),
        Case((torch.full((26,), -torch.log(torch.tensor(26.0))),), label="uniform over 26 shifts (log2(26) bits)"),
        Case((sharp.log_softmax(-1),), label="a certain shift (0 bits)"),
        Case(((torch.randn(4, 26, generator=g) * 8).log_softmax(-1).double(),), label="peaked float64 log-probs [4, 26]"),
        Case(((torch.randn(2, 3, 5, 26, generator=g) * 2).log_softmax(-1),), label="log-probs of shape [2, 3, 5, 26]"),
    ]


def _letters_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq, max_letters in ((50, 32, 26), (8, 10, 6), (20, 32, 32)):
        toks = torch.randint(0, 36, (batch, seq), generator=g)
        toks[0, :3] = 26 + torch.arange(3)  # a sequence that opens with non-letters: bucket 0 is not empty
        logprobs_correct = -torch.rand(batch, seq, generator=g) * 4
        cases.append(Case((logprobs_correct, toks, max_letters), label=f"random hard tokens [{batch}, {seq}], max_letters={max_letters}"))
    return cases


def _nonletter_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, heads, seq in ((16, 2, 32), (5, 3, 10)):
        scores = torch.randn(batch, heads, seq, seq, generator=g) * 3
        causal = torch.ones(seq, seq).tril().bool()
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        toks = torch.randint(0, 36, (batch, seq), generator=g)
        cases.append(Case((pattern, toks), label=f"random causal patterns [{batch}, {heads}, {seq}, {seq}], random hard tokens"))
    return cases


OBSERVER_MISTAKES = (
    Mistake("unweighted_mean", "every word counts the same: weight each word by its frequency (dataset.words_freq)."),
    Mistake("transposed", "rows and columns are swapped: rows are the observers, columns the positions."),
    Mistake("float32", "the table is float32: the text asks for float64."),
    Mistake("ignores_model", "your function does not use the `model` it is given (it gives the easy model's figures "
                             "for the medium model): use the argument, not a global variable."),
)
BASELINE_MISTAKES = (
    Mistake("punctuation_as_letters", "non-letter tokens (ids >= 26) add evidence; they carry none."),
    Mistake("shifts_the_wrong_way", "letters are decoded as (t + s) % 26; under shift s, token t decodes to (t - s) % 26."),
    Mistake("only_the_current_letter", "each position uses only its own letter: the evidence accumulates along the "
                                       "sequence."),
    Mistake("not_normalised", "the scores are not normalised over the 26 shifts (they are not log-probs yet)."),
    Mistake("input_dtype", "the result has letter_freqs' dtype; the text asks for float64 whatever that dtype."),
)
GAP_MISTAKES = (
    Mistake("model_minus_baseline", "the sign is flipped: baseline cross-entropy minus the model's (positive where the "
                                    "model does better)."),
    Mistake("probabilities", "you compare probabilities; cross-entropy uses the log-probs."),
    Mistake("float32", "the result is float32: compute and return float64."),
    Mistake("averaged_over_positions", "you average over positions too; keep one value per position."),
    Mistake("summed_over_batch", "the gaps are summed over the batch, not averaged: each position's gap is a mean over sequences."),
)
ENTROPY_MISTAKES = (
    Mistake("nats", "the entropy is in nats: the text asks for bits (log base 2)."),
    Mistake("nan_on_certain_shift", "a shift with probability 0 gives NaN (0 * -inf): make it contribute 0."),
    Mistake("no_minus_sign", "the sign is flipped: entropy is minus the sum of p log p."),
    Mistake("always_float32", "float64 log-probs give a float32 entropy: keep the input's dtype."),
    Mistake("log10", "the entropy uses log base 10: bits are log base 2."),
)
LETTERS_MISTAKES = (
    Mistake("counts_before_the_position", "the letter count leaves out the current position; it is the count up to "
                                          "and including it."),
    Mistake("position_instead_of_letters", "every position lands in one bucket: count letters (ids < 26) along the "
                                           "sequence."),
    Mistake("mean_logprob", "the sign is flipped: the loss is minus the log-prob."),
    Mistake("overflow_dropped", "counts above max_letters are dropped; they go into the last bucket."),
    Mistake("empty_bucket_zero", "an empty bucket is 0; the text asks for NaN."),
    Mistake("current_letter_not_counted", "the letter at the current position is not counted among the letters seen: the count includes it."),
)
NONLETTER_MISTAKES = (
    Mistake("destination_mask", "you mark the destinations that are non-letters; the share is over the *source* tokens."),
    Mistake("mean_over_sources", "the attention on the marked sources is averaged; the share is their sum."),
    Mistake("space_only", "only spaces are counted: every id >= 26 (newline, punctuation) is a non-letter."),
    Mistake("letters", "you count the attention on letters (ids < 26); the share is on non-letters."),
    Mistake("spaces_only", "only the space (id 26) counts as a non-letter: newlines and punctuation (ids 27 and up) do too."),
)

register(Exercise("observer_table", "06", reference(R, "observer_table"), _observer_cases,
                  mistakes=OBSERVER_MISTAKES,
                  hint="Check which observer each row holds, which position each column holds, and how the words are "
                       "weighted in the average."))
register(Exercise("frequency_baseline_logprobs", "06", reference(R, "frequency_baseline_logprobs"), _baseline_cases,
                  mistakes=BASELINE_MISTAKES,
                  points=2,
                  hint="Look at the failing position and shift: the direction of decoding, which letters up to it "
                       "count (non-letters add nothing), the normalisation over shifts, and the dtype."))
register(Exercise("baseline_loss_gap", "06", reference(R, "baseline_loss_gap"), _gap_cases,
                  mistakes=GAP_MISTAKES,
                  hint="Check the sign (which loss is subtracted from which), which shift is read, the dimension that "
                       "is averaged, and the dtype."))
register(Exercise("shift_entropy", "06", reference(R, "shift_entropy"), _entropy_cases,
                  mistakes=ENTROPY_MISTAKES,
                  hint="Check the base of the logarithm, the sign, the dimension summed over, and what a shift with "
                       "probability 0 contributes."))
register(Exercise("loss_by_letters_seen", "06", reference(R, "loss_by_letters_seen"), _letters_cases, points=2,
                  mistakes=LETTERS_MISTAKES,
                  hint="Look at the failing bucket: whether the current position's letter counts, what happens past "
                       "max_letters, and what an empty bucket reports."))
register(Exercise("nonletter_attention_share", "06", reference(R, "nonletter_attention_share"), _nonletter_cases,
                  mistakes=NONLETTER_MISTAKES,
                  hint="Check which tokens count as non-letters, whether they are the sources or the destinations, "
                       "and what the average is taken over."))

test_observer_table = make_test("observer_table")
test_frequency_baseline_logprobs = make_test("frequency_baseline_logprobs")
test_baseline_loss_gap = make_test("baseline_loss_gap")
test_shift_entropy = make_test("shift_entropy")
test_loss_by_letters_seen = make_test("loss_by_letters_seen")
test_nonletter_attention_share = make_test("nonletter_attention_share")


# ---------------------------------------------------------------------------------------------------------
# Calibration of the hard model (added with the reliability diagram; issue 9, item 3)
# ---------------------------------------------------------------------------------------------------------


from .core import Mistake  # noqa: E402  (appended section)


def _exact_top(g: torch.Generator, top: torch.Tensor) -> torch.Tensor:
    """[n, 26] float64 distributions whose largest entry is exactly `top` (> 1/26, no tie), at a random shift; the
    other 25 shifts share the rest equally."""
    probs = torch.cat([top.unsqueeze(-1), ((1 - top) / 25).unsqueeze(-1).expand(-1, 25)], dim=-1)
    roll = torch.randint(0, 26, (len(top),), generator=g)
    idx = (torch.arange(26).unsqueeze(0) + roll.unsqueeze(1)) % 26
    return torch.zeros_like(probs).scatter(-1, idx, probs)


def _reliability_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    # model-like float32 predictions (some sharp, some certain), away from the bin edges k/10, where float32 and
    # float64 arithmetic could bin differently
    logits = torch.randn(3000, 26, generator=g) * torch.rand(3000, 1, generator=g) * 8
    logits[:200, 0] += 200.0  # certain predictions: confidence exactly 1.0 in float32
    probs = logits.softmax(-1)
    scaled = probs.max(-1).values.double() * 10
    keep = ((scaled - scaled.round()).abs() > 1e-4) | (scaled == 10)
    probs = probs[keep]
    n = len(probs)
    targets = torch.where(torch.rand(n, generator=g) < 0.6, probs.argmax(-1), torch.randint(0, 26, (n,), generator=g))
    cases = [Case((probs, targets), label=f"{n} model-like float32 predictions, n_bins=10 (default)")]
    # exact edges, certain predictions and empty bins, float64, 4 and 8 bins
    top = torch.tensor([1.0, 1.0, 0.5, 0.5, 0.25, 0.75, 0.625, 0.3, 0.9, 1.0], dtype=torch.float64)
    probs = _exact_top(g, top)
    targets = torch.where(torch.arange(10) % 3 == 0, torch.randint(0, 26, (10,), generator=g), probs.argmax(-1))
    cases.append(Case((probs, targets, 4), label="10 float64 predictions with confidences 1.0, 0.5, 0.25 (bin edges), n_bins=4"))
    cases.append(Case((probs, targets, 8), label="the same 10 predictions, n_bins=8 (some bins empty)"))
    return cases


register(Exercise(
    "reliability_bins", "06", reference(R, "reliability_bins"), _reliability_cases, points=2,
    hint="Row 0 is the mean confidence (top-shift probability) of the predictions in each bin, row 1 the share of "
         "them whose top shift is the target, row 2 the bin's share of all predictions. Check which bin a "
         "confidence on an edge, or of exactly 1.0, lands in, and what an empty bin reports.",
    mistakes=(
        Mistake("confidence_of_the_target", "the bins are filled by p(target); confidence is the probability of the "
                "shift the model itself ranks first, which does not depend on the target"),
        Mistake("upper_edge_dropped", "predictions with confidence exactly 1.0 are missing from the table: look at "
                "what your bin index is for a confidence of 1.0"),
        Mistake("edges_to_lower_bin", "a confidence exactly on a bin edge (such as 0.5) lands in the bin below it: "
                "each bin includes its lower edge"),
        Mistake("counts_not_shares", "the third row holds counts; it should be each bin's share of all predictions "
                "(the row sums to 1)"),
        Mistake("empty_bins_zero", "an empty bin reports 0 confidence and accuracy; nothing was measured there, so "
                "those entries should be NaN"),
        Mistake("accuracy_of_all_predictions", "the accuracy row is the same in every bin: it must be the accuracy "
                "of the predictions in that bin only"),
    ),
))

test_reliability_bins = make_test("reliability_bins")


# ---------------------------------------------------------------------------------------------------------
# An experiment of the learner's own design (issue 10): the claim is checked on the learner's own measurement
# ---------------------------------------------------------------------------------------------------------


def check_experiment(claim: str, result: dict, holds) -> bool:
    """Check the claim of an experiment you designed: `result` holds your measured "effect" and "control" (the same
    intervention where your hypothesis predicts less), `holds(result)` is your claim as a test on those numbers. A
    claim must be stated in words, and must not hold when the intervention does nothing (effect equal to control).
    Raises CheckFailed, with what is wrong, otherwise prints the verdict and returns True."""
    from .core import CheckFailed

    if not isinstance(claim, str) or len(claim.strip()) < 15 or claim.strip().strip(".") == "":
        raise CheckFailed("State your claim in words in MY_CLAIM (one sentence) before you check it.")
    if not isinstance(result, dict) or not {"effect", "control"} <= set(result):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise CheckFailed(f"my_experiment must return a dict with the measured 'effect' and 'control'; got {got}. "
                          "A claim about a mechanism needs a control.")
    try:
        values = {k: float(v) for k, v in result.items()}
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"every value in the result must be a number (a float or a 1-element tensor): {e}") from None
    if any(v != v for v in values.values()):
        raise CheckFailed(f"your measurement has NaN in it: {values}")
    null = {**values, "effect": values["control"]}
    if bool(holds(null)):
        raise CheckFailed("your claim also holds when the effect equals the control, i.e. when the intervention "
                          "makes no difference: it does not test the effect. Make it say how the effect compares "
                          "with the control.")
    shown = ", ".join(f"{k} {v:.3g}" for k, v in values.items())
    if not bool(holds(values)):
        raise CheckFailed(f"your claim does not hold on your measurement ({shown}). That is a result too: what did "
                          "you learn? Refine the claim (or the experiment) and run it again.")
    print(f"Your claim holds on your measurement ({shown}): {claim.strip()}")
    return True
