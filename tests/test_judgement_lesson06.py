"""Lesson 06's judgement exercises and check_experiment: wrong decisions fail, correct ones written differently pass."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import accepts, rejects
from utils import calibration as cal
from utils.checks.core import REGISTRY, CheckFailed
from utils.stats import bootstrap


def test_registered_as_judgement():
    for name in ("ece_difference_verdict", "choose_control"):
        assert REGISTRY[name].kind == "judgement" and REGISTRY[name].compare is not None


# ece_difference_verdict


def _diff(x, y):
    return cal.ece_of_sums(x.sum(0)) - cal.ece_of_sums(y.sum(0))


def windows_resampled(model_probs, baseline_probs, labels):
    a, b = cal.per_sequence_bins(model_probs, labels), cal.per_sequence_bins(baseline_probs, labels)
    est = bootstrap(_diff, a, b, n_boot=500, seed=3)
    return {"difference": est.value, "se": est.se, "real": bool(abs(est.value) > 2 * est.se)}


def windows_resampled_by_hand(model_probs, baseline_probs, labels):
    """A loop over resamples of window indices, recomputing the full reliability tables: the same decision."""
    g = torch.Generator().manual_seed(1)
    n = len(labels)

    def ece(p, lab):
        return cal.ece_of_sums(cal.per_sequence_bins(p, lab).sum(0)).item()

    value = ece(model_probs, labels) - ece(baseline_probs, labels)
    boots = []
    for _ in range(300):
        i = torch.randint(0, n, (n,), generator=g)
        boots.append(ece(model_probs[i], labels[i]) - ece(baseline_probs[i], labels[i]))
    se = float(torch.tensor(boots).std())
    return {"difference": value, "se": se, "real": abs(value) / se > 2.0}


def test_accepts_correct_verdicts():
    accepts("ece_difference_verdict", windows_resampled)
    accepts("ece_difference_verdict", windows_resampled_by_hand, seeds=(0,))


def predictions_resampled(model_probs, baseline_probs, labels):
    """Treats the 32 predictions of a window as independent draws."""
    flat = lambda p: p.reshape(-1, 1, 26)
    lab = labels.repeat_interleave(model_probs.shape[1])
    a, b = cal.per_sequence_bins(flat(model_probs), lab), cal.per_sequence_bins(flat(baseline_probs), lab)
    est = bootstrap(_diff, a, b, n_boot=300)
    return {"difference": est.value, "se": est.se, "real": abs(est.value) > 2 * est.se}


def unpaired(model_probs, baseline_probs, labels):
    a, b = cal.per_sequence_bins(model_probs, labels), cal.per_sequence_bins(baseline_probs, labels)
    ea, eb = cal.ece_estimate(a), cal.ece_estimate(b)
    se = math.hypot(ea.se, eb.se)
    return {"difference": ea.value - eb.value, "se": se, "real": abs(ea.value - eb.value) > 2 * se}


def any_gap_is_real(model_probs, baseline_probs, labels):
    out = windows_resampled(model_probs, baseline_probs, labels)
    return {**out, "real": out["difference"] != 0}


def swapped(model_probs, baseline_probs, labels):
    return windows_resampled(baseline_probs, model_probs, labels)


@pytest.mark.parametrize("wrong, match", [(predictions_resampled, "unit"), (unpaired, "same"),
                                          (any_gap_is_real, "verdict"), (swapped, "order")])
def test_rejects_wrong_verdicts(wrong, match):
    rejects("ece_difference_verdict", wrong, match=match)


# choose_control


def rival_resampled(head, rival, position):
    return {"component": f" {rival}", "position": torch.tensor(position), "method": "Resample", "why": "the rival"}


def test_accepts_the_control_that_can_fail():
    accepts("choose_control", rival_resampled, seeds=(0,))


@pytest.mark.parametrize("wrong, match", [
    (lambda h, r, p: {"component": h, "position": 29, "method": "resample"}, "does not isolate"),
    (lambda h, r, p: {"component": r, "position": p, "method": "zero"}, "no real input"),
    (lambda h, r, p: {"component": r, "position": p, "method": "mean"}, "no real input"),
    (lambda h, r, p: {"component": h, "position": p, "method": "resample"}, "itself"),
    (lambda h, r, p: [r, p], "dict"),
])
def test_rejects_controls_that_cannot_fail(wrong, match):
    rejects("choose_control", wrong, match=match)


# check_experiment


def _spec(component="1.0", position=1, control_component="1.1", control_position=1):
    return {"component": component, "position": position, "control_component": control_component,
            "control_position": control_position, "method": "resample"}


def honest(component="1.0", position=1, control_component="1.1", control_position=1, measured_at=None):
    """An experiment that measures what it says (or, with measured_at, at another position than it says)."""
    from utils.experiments import resample_head_loss

    def experiment(model, dataset):
        pos_e, pos_c = (measured_at, measured_at) if measured_at is not None else (position, control_position)
        effect = resample_head_loss(model, dataset.toks, dataset.labels, component, pos_e, seed=5).mean()
        control = resample_head_loss(model, dataset.toks, dataset.labels, control_component, pos_c, seed=5).mean()
        return {**_spec(component, position, control_component, control_position), "effect": effect,
                "control": control.item()}

    return experiment


def bigger(r):
    return r["effect"] > 1.5 * r["control"]


CLAIM = "Resampling head 1.0 at position 1 of the medium model costs over 1.5 times as much as resampling head 1.1 there."


def test_check_experiment_accepts_a_supported_claim(capsys):
    from utils.checks import check_experiment

    assert check_experiment(CLAIM, honest(), bigger, seed=11)
    assert "fresh dataset" in capsys.readouterr().out


def test_check_experiment_rejects_a_claim_measured_elsewhere():
    """The issue's example: the claim is about position 1, the numbers come from position 29."""
    from utils.checks import check_experiment

    with pytest.raises(CheckFailed, match="measure what its result says"):
        check_experiment(CLAIM, honest(measured_at=29), bigger, seed=11)
    with pytest.raises(CheckFailed, match="does not name the position"):
        check_experiment(CLAIM, honest(position=29, control_position=29), bigger, seed=11)
    with pytest.raises(CheckFailed, match="does not name the head"):
        check_experiment(CLAIM.replace("1.0", "0.0"), honest(), bigger, seed=11)


def test_check_experiment_rejects_controls_that_cannot_fail_and_differences_in_noise():
    from utils.checks import check_experiment

    with pytest.raises(CheckFailed, match="no difference"):
        check_experiment(CLAIM, honest(), lambda r: r["effect"] > 1.0, seed=11)
    with pytest.raises(CheckFailed, match="swapped"):
        check_experiment(CLAIM, honest(), lambda r: r["effect"] != r["control"], seed=11)
    with pytest.raises(CheckFailed, match="itself"):
        check_experiment(CLAIM, honest(control_component="1.0"), bigger, seed=11)
    # "over twice" holds on the point estimate (about 2.2) but not within its error: rejected
    with pytest.raises(CheckFailed, match="within their errors"):
        check_experiment(CLAIM.replace("1.5 times", "twice"), honest(), lambda r: r["effect"] > 2 * r["control"], seed=11)
    # a claim the fresh data contradict (at position 3 head 0.1 costs more than head 0.0) fails
    claim3 = "Resampling head 0.0 at position 3 costs more than resampling head 0.1 at position 3."
    with pytest.raises(CheckFailed, match="does not hold"):
        check_experiment(claim3, honest("0.0", 3, "0.1", 3), lambda r: r["effect"] > r["control"], seed=11)


@pytest.mark.parametrize("result, match", [
    ({"effect": 6.7, "control": 2.7}, "keys"),
    ({**_spec(), "effect": float("nan"), "control": 2.7}, "NaN"),
    ({**_spec(), "effect": "big", "control": 2.7}, "numbers"),
    ({**_spec(), "method": "zero", "effect": 6.7, "control": 2.7}, "zeroing"),
])
def test_check_experiment_rejects_malformed_results(result, match):
    from utils.checks import check_experiment

    with pytest.raises(CheckFailed, match=match):
        check_experiment(CLAIM, lambda m, d: result, bigger, seed=11)
    with pytest.raises(CheckFailed, match="State your claim"):
        check_experiment("...", lambda m, d: result, bigger, seed=11)
