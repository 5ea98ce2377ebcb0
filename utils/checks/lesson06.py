"""Checks for notebook 06 (the medium and hard models)."""

from __future__ import annotations

import functools
import re

import einops
import torch

from .core import Case, Exercise, Mistake, Ref, _build_ref, make_test, reference, register

R = "lesson06"
COURSE_WINDOWS = 1000  # notebook 06's hard dataset: CodeBreakingDataset("hard", size=1000, seed=0)


@functools.lru_cache(maxsize=1)
def course_letter_freqs() -> torch.Tensor:
    """Notebook 06's letter frequencies: those of the training corpus (float64)."""
    from ..data import letter_frequencies, load_corpus

    return letter_frequencies(load_corpus(split="train"))


@functools.lru_cache(maxsize=1)
def course_hard_run() -> dict[str, torch.Tensor]:
    """What notebook 06 computes on its hard dataset: the tokens, labels, the hard model's probabilities and its
    attention patterns (layer 0 and 1), and the letter-frequency baseline's probabilities."""
    from ..bayes import letter_frequency_logprobs
    from ..data import CodeBreakingDataset

    hard = CodeBreakingDataset("hard", size=COURSE_WINDOWS, seed=0)
    model = _build_ref(Ref("model", "hard"))
    with torch.inference_mode():
        logits, cache = model.run_with_cache(hard.toks)
        run = {"toks": hard.toks.clone(), "labels": hard.labels.clone(), "probs": logits.softmax(-1).clone(),
               "pattern0": cache["pattern", 0].clone(), "pattern1": cache["pattern", 1].clone()}
    run["baseline_probs"] = letter_frequency_logprobs(hard.toks, course_letter_freqs()).exp()
    return run


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
    # as notebook 06 calls it: its 1,000 hard windows and the training corpus's letter frequencies
    cases.append(Case((course_hard_run()["toks"], course_letter_freqs()),
                      label="notebook 06's hard dataset (1,000 windows), the training corpus's letter frequencies"))
    return cases


def _letters_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq, max_letters in ((50, 32, 26), (8, 10, 6), (20, 32, 32)):
        toks = torch.randint(0, 36, (batch, seq), generator=g)
        toks[0, :3] = 26 + torch.arange(3)  # a sequence that opens with non-letters: bucket 0 is not empty
        logprobs_correct = -torch.rand(batch, seq, generator=g) * 4
        cases.append(Case((logprobs_correct, toks, max_letters), label=f"random hard tokens [{batch}, {seq}], max_letters={max_letters}"))
    toks = torch.randint(0, 30, (30, 32), generator=g)  # mostly letters: counts run past 26 into the last bucket
    cases.append(Case((-torch.rand(30, 32, generator=g) * 4, toks),
                      label="random hard tokens [30, 32], max_letters left at its default (26)"))
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
    return cases + _course_nonletter_cases(seed)


def _course_nonletter_cases(seed: int, size: int = 200) -> list[Case]:
    """As notebook 06 calls it: the hard model's patterns (each layer) on its hard windows, and the uniform causal
    pattern on all 1,000 windows (the chance level; the course asserts it lies between 0.20 and 0.26). `size`
    windows of the 1,000, drawn by the seed, keep the check fast."""
    run = course_hard_run()
    pick = torch.randperm(COURSE_WINDOWS, generator=torch.Generator().manual_seed(seed))[:size]
    seq = run["toks"].shape[1]
    uniform = torch.ones(seq, seq).tril()
    uniform = einops.repeat(uniform / uniform.sum(-1, keepdim=True), "dest src -> batch 1 dest src", batch=COURSE_WINDOWS)
    return [
        *(Case((run[f"pattern{layer}"][pick], run["toks"][pick]),
               label=f"the hard model's layer-{layer} patterns on {size} of notebook 06's windows") for layer in (0, 1)),
        Case((uniform, run["toks"]), label="uniform causal attention [1000, 1, 32, 32] on notebook 06's windows (the chance level)"),
    ]


BASELINE_MISTAKES = (
    Mistake("punctuation_as_letters", "non-letter tokens (ids >= 26) add evidence; they carry none."),
    Mistake("shifts_the_wrong_way", "letters are decoded as (t + s) % 26; under shift s, token t decodes to (t - s) % 26."),
    Mistake("only_the_current_letter", "each position uses only its own letter: the evidence accumulates along the "
                                       "sequence."),
    Mistake("not_normalised", "the scores are not normalised over the 26 shifts (they are not log-probs yet)."),
    Mistake("input_dtype", "the result has letter_freqs' dtype; the text asks for float64 whatever that dtype."),
    Mistake("excludes_current_token", "the evidence at a position leaves out that position's own token; \"tokens so "
                                      "far\" includes it (the cumulative sum up to and including it)."),
    Mistake("probabilities", "the values are probabilities; the text asks for log-probs (log_softmax)."),
    Mistake("normalised_over_positions", "the log-softmax runs over positions (dim 1); normalise over the 26 shifts "
                                         "(the last dim)."),
    Mistake("freqs_not_logged", "the evidence adds letter frequencies, not their logs: independent letters "
                                "multiply their probabilities, so their log-probabilities add."),
)
LETTERS_MISTAKES = (
    Mistake("counts_before_the_position", "the letter count leaves out the current position; it is the count up to "
                                          "and including it."),
    Mistake("position_instead_of_letters", "every token is counted as a letter (the bucket is the position + 1): "
                                           "count only the letters (ids < 26) along the sequence."),
    Mistake("mean_logprob", "the sign is flipped: the loss is minus the log-prob."),
    Mistake("overflow_dropped", "counts above max_letters are dropped; they go into the last bucket."),
    Mistake("empty_bucket_zero", "an empty bucket is 0; the text asks for NaN."),
    Mistake("current_letter_not_counted", "the letter at the current position is not counted among the letters seen: the count includes it."),
    Mistake("float32", "the result is float32; the text asks for a float64 tensor."),
    Mistake("ignores_max_letters", "`max_letters` is ignored (always 26): the result has max_letters + 1 buckets, "
                                   "the last one holding every count from max_letters up."),
    Mistake("summed_not_averaged", "each bucket holds the sum of the losses; the text asks for their mean over the "
                                   "bucket's (sequence, position) pairs."),
    Mistake("one_bucket_short", "the result has max_letters buckets (0 to max_letters - 1); it has max_letters + 1, "
                                "the last one (max_letters) holding every count from max_letters up."),
)
NONLETTER_MISTAKES = (
    Mistake("destination_mask", "you mark the destinations that are non-letters; the share is over the *source* tokens."),
    Mistake("mean_over_sources", "the attention on the marked sources is averaged; the share is their sum."),
    Mistake("space_only", "only spaces (id 27) are counted: every id >= 26 (newline, punctuation) is a non-letter."),
    Mistake("letters", "you count the attention on letters (ids < 26); the share is on non-letters."),
    Mistake("spaces_only", "only id 26 counts as a non-letter (id 26 is the newline, the space is 27): every id >= 26 "
                           "is one."),
    Mistake("space_not_counted", "the space (id 27) is not counted as a non-letter; every id >= 26 is one."),
    Mistake("newline_not_counted", "the newline (id 26) is not counted as a non-letter (ids > 26 instead of >= 26): "
                                   "every id >= 26 is one."),
    Mistake("summed_over_destinations", "the shares are summed over destinations, not averaged: each head's share "
                                        "is a fraction, averaged over the batch and the destinations."),
)

register(Exercise("frequency_baseline_logprobs", "06", reference(R, "frequency_baseline_logprobs"), _baseline_cases,
                  mistakes=BASELINE_MISTAKES,
                  points=2,
                  hint="Look at the failing position and shift: the direction of decoding, which letters up to it "
                       "count (non-letters add nothing), the normalisation over shifts, and the dtype."))
register(Exercise("loss_by_letters_seen", "06", reference(R, "loss_by_letters_seen"), _letters_cases, points=2,
                  mistakes=LETTERS_MISTAKES,
                  hint="Look at the failing bucket: whether the current position's letter counts, what happens past "
                       "max_letters, and what an empty bucket reports."))
register(Exercise("nonletter_attention_share", "06", reference(R, "nonletter_attention_share"), _nonletter_cases,
                  mistakes=NONLETTER_MISTAKES,
                  hint="Check which tokens count as non-letters, whether they are the sources or the destinations, "
                       "and what the average is taken over."))

test_frequency_baseline_logprobs = make_test("frequency_baseline_logprobs")
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
        Mistake("float32", "the table is float32; the text asks for float64"),
        Mistake("ignores_n_bins", "`n_bins` is ignored (always 10 bins): the table has one column per bin of the "
                "n_bins asked for"),
        Mistake("accuracy_is_target_prob", "the accuracy row averages the probability of the target; accuracy is the "
                "share of the bin's predictions whose top shift is the target"),
    ),
))

test_reliability_bins = make_test("reliability_bins")


# ---------------------------------------------------------------------------------------------------------
# An experiment of the learner's own design (issue 10): the claim is checked on the learner's own measurement
# ---------------------------------------------------------------------------------------------------------


EXPERIMENT_KEYS = ("component", "position", "control_component", "control_position", "method", "effect", "control")
EXPERIMENT_SIZE = 500  # sequences of the fresh dataset the check runs your experiment on


def _experiment_spec(result) -> dict:
    """The learner's result, validated: which intervention was run (head, position, method), its control, and the
    two measured numbers. Raises CheckFailed saying what is missing."""
    from .core import CheckFailed
    from ..experiments import HEAD_NAMES

    if not isinstance(result, dict) or not set(EXPERIMENT_KEYS) <= set(result):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise CheckFailed(f"my_experiment must return a dict with the keys {list(EXPERIMENT_KEYS)}; got {got}. The "
                          "check reruns the intervention you describe there, and a claim about a mechanism needs a "
                          "control.")
    spec = dict(result)
    try:
        for key in ("effect", "control"):
            spec[key] = float(result[key])
        for key in ("position", "control_position"):
            spec[key] = int(result[key])
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"effect and control must be numbers, the positions integers: {e}") from None
    if any(spec[k] != spec[k] for k in ("effect", "control")):
        raise CheckFailed(f"your measurement has NaN in it: effect {spec['effect']}, control {spec['control']}")
    for key in ("component", "control_component"):
        if str(result[key]).strip() not in HEAD_NAMES:
            raise CheckFailed(f"{key} must name a head, one of {list(HEAD_NAMES)}; got {result[key]!r}.")
        spec[key] = str(result[key]).strip()
    if spec["method"] not in ("resample", "mean"):
        raise CheckFailed(f"method {spec['method']!r}: use 'resample' (another sequence's output: in distribution) or "
                          "'mean'; zeroing puts the model where it never was, so its effect says little.")
    if any(not 0 <= spec[k] < 32 for k in ("position", "control_position")):
        raise CheckFailed("positions run from 0 to 31.")
    if (spec["component"], spec["position"]) == (spec["control_component"], spec["control_position"]):
        raise CheckFailed("your control is the intervention itself: it cannot come out differently. Change another "
                          "head, or the same head at another position, where your hypothesis predicts less.")
    return spec


def _claim_names_the_intervention(claim: str, spec: dict) -> str | None:
    """The claim must be about the intervention run: it names its head and its position."""
    if spec["component"] not in claim:
        return f"your claim does not name the head your experiment intervenes on ({spec['component']})"
    if not re.search(rf"\bpositions?\s*{spec['position']}\b", claim):
        return f"your claim does not name the position your experiment intervenes at ('position {spec['position']}')"
    return None


def check_experiment(claim: str, experiment, holds, mode: str = "medium", seed: int | None = None) -> bool:
    """Check the claim of an experiment you designed, on a fresh dataset.

    `experiment(model, dataset)` returns a dict: the head it intervenes on (`component`, e.g. "1.0") at `position`,
    the `method` ("resample" or "mean"), the control (`control_component` at `control_position`, same method) and
    the measured increases in loss at those positions, `effect` and `control` (nats). `holds(result)` is your claim
    as a test on those numbers. The check runs your experiment on a fresh dataset of `mode`, reruns the intervention
    you describe with the library (`utils.experiments`), and passes the claim only if
    * the claim names the head and position intervened on,
    * your numbers are what that intervention gives (so the experiment is the one described),
    * the claim does not hold when the effect equals the control, nor with effect and control swapped (so the control
      could have come out the other way),
    * the claim holds on your numbers and at every corner of their two-standard-error box, and effect minus control
      is beyond two standard errors (paired, over sequences).
    Raises CheckFailed with what is wrong; otherwise prints the verdict with its error and returns True."""
    import random

    from .core import CheckFailed
    from .. import experiments, load_model
    from ..data import CodeBreakingDataset
    from ..stats import Z, mean_se

    if not isinstance(claim, str) or len(claim.strip().strip(".")) < 15:
        raise CheckFailed("State your claim in words in MY_CLAIM (one sentence) before you check it.")
    if not callable(experiment) or not callable(holds):
        raise CheckFailed("Pass your functions themselves: check_experiment(MY_CLAIM, my_experiment, my_claim_holds).")
    seed = random.randrange(1, 2**31) if seed is None else seed
    model = load_model(mode)
    dataset = CodeBreakingDataset(mode, size=EXPERIMENT_SIZE, seed=seed)
    try:
        result = experiment(model, dataset)
    except NotImplementedError:
        raise CheckFailed("my_experiment is not written yet.") from None
    except Exception as e:  # the learner's bug, reported
        raise CheckFailed(f"my_experiment raised {type(e).__name__}: {e}") from None
    spec = _experiment_spec(result)
    problem = _claim_names_the_intervention(claim, spec)
    if problem:
        raise CheckFailed(f"{problem}: a claim must be about the intervention you ran.")

    runs, errors = {}, {}
    for which, comp, pos in (("effect", spec["component"], spec["position"]),
                             ("control", spec["control_component"], spec["control_position"])):
        runs[which] = experiments.resample_head_loss(model, dataset.toks, dataset.labels, comp, pos, spec["method"],
                                                     seed=seed)
        est = mean_se(runs[which])
        errors[which] = est.se
        if abs(spec[which] - est.value) > 4 * est.se + 0.2 * abs(est.value) + 0.05:
            raise CheckFailed(
                f"your {which} ({spec[which]:.3g}) is not what a {spec['method']} ablation of head {comp} at "
                f"position {pos} gives on the same sequences ({est}, loss increase at that position, nats): "
                "does my_experiment measure what its result says (the head, the position, the loss there)?")
    diff = mean_se(runs["effect"] - runs["control"])
    values = {k: spec[k] for k in ("effect", "control")}
    shown = f"effect {values['effect']:.3g}, control {values['control']:.3g} nats"
    if not bool(holds(spec)):
        raise CheckFailed(f"your claim does not hold on a fresh dataset (seed {seed}: {shown}). That is a result too: "
                          "what did you learn? Refine the claim (or the experiment) and run it again.")
    if bool(holds({**spec, "effect": values["control"]})):
        raise CheckFailed("your claim also holds when the effect equals the control, i.e. when the intervention makes "
                          "no difference: it does not test the effect. Make it say how the effect compares with the "
                          "control.")
    if bool(holds({**spec, "effect": values["control"], "control": values["effect"]})):
        raise CheckFailed("your claim also holds with effect and control swapped: whichever way the experiment came "
                          "out, it would pass. Make it say which should be larger.")
    corners = [{**spec, "effect": values["effect"] + a * Z * errors["effect"], "control": values["control"] + b * Z * errors["control"]}
               for a in (-1, 1) for b in (-1, 1)]
    if not all(bool(holds(c)) for c in corners):
        raise CheckFailed(f"your claim holds on the measured numbers ({shown}) but not everywhere within their errors "
                          f"(effect ± {Z * errors['effect']:.2g}, control ± {Z * errors['control']:.2g} nats: two "
                          f"standard errors over {EXPERIMENT_SIZE} sequences): claim only what the error supports.")
    if abs(diff.value) <= Z * diff.se:
        raise CheckFailed(f"on a fresh dataset (seed {seed}) effect minus control is {diff} nats (SE, paired bootstrap "
                          f"over {EXPERIMENT_SIZE} sequences): within {Z:g} standard errors of zero, so the data do not "
                          "tell effect and control apart. Your claim needs a difference the data can see.")
    print(f"Your claim holds on a fresh dataset (seed {seed}; {shown}; effect minus control {diff} nats, SE over "
          f"{EXPERIMENT_SIZE} sequences): {claim.strip()}")
    return True
