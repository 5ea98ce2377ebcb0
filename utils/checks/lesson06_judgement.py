"""Judgement exercises of notebook 06: decisions a researcher makes, judged by their consequences on fresh data.

* `ece_difference_verdict`: is one predictor's calibration error really lower than another's? The answer (difference,
  standard error, verdict) is compared with what resampling whole windows gives on fresh predictions whose windows
  are strongly correlated inside, so an error that treats the 32 predictions of a window as independent is caught.
* `choose_control`: the control for "head X, not head Y, carries position p". The check runs the chosen control and
  the claimed intervention on a fresh dataset of the model the claim is about (the control must come out smaller) and
  of a model where the claim is false (it must come out larger: a control that could have failed).
"""

from __future__ import annotations

import random

import torch

from .core import Case, Exercise, Judged, Mistake, SeededCase, make_test, read_verdict, reference, register, verdict_problem
from .lesson06 import course_hard_run

R = "lesson06_judgement"


# ---------------------------------------------------------------------------------------------------------------
# ece_difference_verdict
# ---------------------------------------------------------------------------------------------------------------


def _window_predictions(g: torch.Generator, labels: torch.Tensor, true_conf: torch.Tensor, u: torch.Tensor,
                        stated: torch.Tensor) -> torch.Tensor:
    """[batch seq 26] predictions whose top shift is the label where u < true_conf (else another shift), stating
    confidence `stated` on the top shift and sharing the rest equally."""
    batch, seq = true_conf.shape
    right = u < true_conf
    other = (labels.unsqueeze(1) + torch.randint(1, 26, (batch, seq), generator=g)) % 26
    top = torch.where(right, labels.unsqueeze(1).expand(batch, seq), other)
    probs = ((1 - stated) / 25).unsqueeze(-1).expand(batch, seq, 26).clone()
    return probs.scatter(-1, top.unsqueeze(-1), stated.unsqueeze(-1)).float()


def _ece_cases(seed: int) -> list[Case]:
    """Windows of 32 predictions that share one draw (u) for their correctness: a window is easy or hard as a whole,
    like a real window of text. The first predictor is calibrated; the second is over-confident (a real gap) or
    calibrated with its own confidences (no real gap)."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, over, label in ((300, 0.5, "an over-confident second predictor (a real gap)"),
                               (300, 1.0, "two calibrated predictors (no real gap)"),
                               (120, 1.0, "two calibrated predictors, 120 windows")):
        labels = torch.randint(0, 26, (batch,), generator=g)
        ramp = torch.linspace(0.1, 0.97, 32)
        true_conf = (ramp + 0.05 * torch.randn(batch, 32, generator=g)).clamp(0.06, 0.995)
        u = torch.rand(batch, 1, generator=g).expand(batch, 32)
        conf_b = (true_conf + 0.04 * torch.randn(batch, 32, generator=g)).clamp(0.06, 0.995)
        model = _window_predictions(g, labels, true_conf, u, true_conf)
        baseline = _window_predictions(g, labels, conf_b, u, conf_b ** over)
        cases.append(Case((model, baseline, labels), label=f"{batch} windows x 32 predictions: {label}"))
    # as notebook 06 calls it: the hard model and the letter-frequency baseline on its 1,000 windows (the course
    # asserts "not real" there: the difference is 1.3 standard errors from zero, outside the band called either way)
    run = course_hard_run()
    cases.append(Case((run["probs"], run["baseline_probs"], run["labels"]),
                      label="notebook 06's hard model and letter-frequency baseline on its 1,000 windows"))
    return cases


def _ece_compare(expected: dict, got, case: Case) -> str | None:
    verdict = read_verdict(got)
    if isinstance(verdict, str):
        return verdict
    diff, se, _ = verdict
    if abs(diff - expected["difference"]) > 1e-6 + 1e-3 * abs(expected["difference"]):
        return (f"the difference {diff:.5f} is not ECE(model) - ECE(baseline) = {expected['difference']:.5f} over all "
                "predictions: check the order of the two and the binning")
    ratio = se / expected["se"] if expected["se"] > 0 else float("inf")
    if ratio < 0.6:
        return (f"your standard error {se:.5f} is {ratio:.2f} times the spread of the difference over resampled "
                "data sets: your resamples vary less than the data do. What is the unit that was drawn independently "
                "here, and what does your bootstrap draw?")
    if ratio > 1.6:
        return (f"your standard error {se:.5f} is {ratio:.1f} times the spread of the difference over resampled data "
                "sets: the two errors do not cancel as they should. The two predictors were measured on the same "
                "windows; does your resampling keep that?")
    return verdict_problem(got["real"], diff, se, expected)


register(Exercise(
    "ece_difference_verdict", "06", reference(R, "ece_difference_verdict"), _ece_cases, kind="judgement",
    compare=_ece_compare, points=2,
    mistakes=(
        Mistake("predictions_resampled", "your bootstrap resamples single predictions, as if the 32 predictions of a "
                "window were independent; they are not (a window is easy or hard as a whole), so resample whole "
                "windows."),
        Mistake("unpaired", "your standard error combines the two predictors' errors as if they came from different "
                "windows (separate resamples); both were measured on the same windows, so resample the difference "
                "with one draw of windows for both."),
        Mistake("baseline_minus_model", "the difference is ECE(baseline) - ECE(model); the exercise asks for "
                "ECE(model) - ECE(baseline)."),
        Mistake("signed_verdict", "your verdict compares the signed difference with 2 SE, so a difference far below "
                "zero is called not real; compare its size (the absolute value)."),
    ),
    hint="Think about which predictions are independent of each other, and what a bootstrap resample must redraw.",
))


# ---------------------------------------------------------------------------------------------------------------
# choose_control
# ---------------------------------------------------------------------------------------------------------------

# each claim: (head, rival, position) is true on the first mode and false (the roles swapped) on the second
CONTROL_CLAIMS = {("1.0", "1.1", 1): ("medium", "easy"), ("1.1", "1.0", 1): ("easy", "medium")}
CONTROL_SIZE = 300


def _control_cases(seed: int) -> list[Case]:
    claims = list(CONTROL_CLAIMS)
    rng = random.Random(seed)
    rng.shuffle(claims)
    return [SeededCase(claim, label=f"claim: at position {claim[2]}, the {CONTROL_CLAIMS[claim][0]} model's "
                                    f"prediction rests on head {claim[0]}, not on head {claim[1]}",
                       seed=rng.randrange(1, 2**31)) for claim in claims]


def _effect_minus_control(mode: str, claim: tuple, control: dict, seed: int):
    from .. import experiments, load_model
    from ..data import CodeBreakingDataset
    from ..stats import mean_se

    model = load_model(mode)
    ds = CodeBreakingDataset(mode, size=CONTROL_SIZE, seed=seed)
    head, _, position = claim
    effect = experiments.resample_head_loss(model, ds.toks, ds.labels, head, position, seed=seed)
    ctrl = experiments.resample_head_loss(model, ds.toks, ds.labels, control["component"], control["position"],
                                          control["method"], seed=seed)
    return mean_se(effect - ctrl)


def _control_compare(expected: dict, got, case: Case) -> str | None:
    from ..experiments import HEAD_NAMES
    from ..stats import Z

    if not isinstance(got, dict) or not {"component", "position", "method"} <= set(got):
        return f"return a dict with 'component', 'position' and 'method'; got {got!r:.80}"
    try:
        control = {"component": str(got["component"]).strip(), "position": int(got["position"]),
                   "method": str(got["method"]).strip().lower()}
    except (TypeError, ValueError):
        return "'position' must be an integer"
    if control["component"] not in HEAD_NAMES or not 0 <= control["position"] < 32:
        return f"the control must name a head {list(HEAD_NAMES)} and a position 0-31; got {got!r}"
    if control["method"] != "resample":
        return Judged(f"a {control['method']} ablation puts activations where no real input puts them: how would you "
                      "replace a head's output with one the model has actually seen?",
                      'a mean or zero ablation as the control: it puts activations where no real input puts them')
    head, rival, position = case.args
    if (control["component"], control["position"]) == (head, position):
        return Judged("that is the intervention itself, not a control",
                      'the control is the claimed intervention itself')
    true_mode, false_mode = CONTROL_CLAIMS[tuple(case.args)]
    seed = case.seed  # fresh data the learner never saw, the same for every run of this check's seed
    on_true = _effect_minus_control(true_mode, case.args, control, seed)
    if on_true.value <= Z * on_true.se:
        return Judged(f"on a fresh {true_mode} dataset the claim is true, yet your control costs as much as the effect "
                      f"(effect minus control {on_true} nats): it does not isolate what the claim is about",
                      'a control that does not isolate the claim: where the claim is true it costs as much as the effect')
    on_false = _effect_minus_control(false_mode, case.args, control, seed)
    if on_false.value >= -Z * on_false.se:
        return Judged(f"on the {false_mode} model, where the claim is false (there head {rival} does the work at position "
                      f"{position}), your control still comes out below the effect (effect minus control {on_false} nats): "
                      "it could not have failed, so passing it shows nothing about the claim",
                      'a control that could not have failed: it comes out below the effect even where the claim is false')
    return None


register(Exercise(
    "choose_control", "06", reference(R, "choose_control"), _control_cases, kind="judgement", compare=_control_compare,
    hint="A control that could fail is one that would come out larger than the effect if the claim were false. "
         "Which alternative does the claim rule out, and where?",
))

test_ece_difference_verdict = make_test("ece_difference_verdict")
test_choose_control = make_test("choose_control")

__all__ = ["test_ece_difference_verdict", "test_choose_control"]
