"""Lesson 04's judgement exercises: plausible wrong decisions fail (with a message naming what is wrong), correct
ones written differently pass, and the checks decide on fresh data."""

import math

import pytest
import torch

from helpers import accepts, rejects
from utils.attribution import group_share, resampled_shares
from utils.checks import REGISTRY
from utils.checks import lesson04_judgement as J
from utils.reference import lesson04_judgement as R


def answer(components, path, verdict):
    return lambda: {"components": components, "path": path, "verdict": verdict}


# --- discriminating_ablation -----------------------------------------------------------------------------------


def test_both_are_registered_as_judgement():
    assert {REGISTRY[n].kind for n in ("discriminating_ablation", "shares_differ")} == {"judgement"}


def test_accepts_the_reference_and_other_discriminating_choices():
    accepts("discriminating_ablation", R.discriminating_ablation)
    accepts("discriminating_ablation", answer(("0.0", "0.1"), "Direct", "filter"), seeds=(3,))  # tuple, capitals
    accepts("discriminating_ablation", answer("1.0", "direct", " filter "), seeds=(4,))  # one name, not a list


@pytest.mark.parametrize("components, path", [(["1.1"], "direct"), (["0.0"], "total"), (["1.1", "0.1"], "total"),
                                              (["embed", "1.1"], "direct")])
def test_rejects_an_intervention_both_accounts_predict_alike(components, path):
    """Removing head 1.1's direct path, or any total ablation, breaks top-1 under both accounts: no test."""
    rejects("discriminating_ablation", answer(components, path, "filter"), match="cannot tell them apart")


def test_rejects_the_wrong_verdict_from_the_right_intervention():
    rejects("discriminating_ablation", answer(["embed", "0.0", "0.1"], "direct", "alone"), match="'filter' account predicts")


def test_rejects_an_intervention_without_power():
    """Head 0.0's direct path alone: the accounts disagree, but the measured drop is too small to pick one."""
    rejects("discriminating_ablation", answer(["0.0"], "direct", "filter"), match="too little power")


@pytest.mark.parametrize("bad, words", [
    ({"components": ["2.0"], "path": "direct", "verdict": "filter"}, "non-empty list"),
    ({"components": ["embed"], "path": "total", "verdict": "filter"}, "heads only"),
    ({"components": ["0.0"], "path": "direct"}, "keys"),
    ({"components": ["0.0"], "path": "sideways", "verdict": "filter"}, "'path'"),
])
def test_malformed_answers_get_a_message(bad, words):
    rejects("discriminating_ablation", lambda: bad, match=words)


def test_the_predictions_table():
    assert J.predictions(["embed"], "direct") == {"filter": "drop", "alone": "no change"}
    assert J.predictions(["1.1"], "direct") == {"filter": "drop", "alone": "drop"}
    assert J.predictions(["0.1"], "total") == {"filter": "drop", "alone": "drop"}


def test_the_check_runs_on_fresh_data():
    (case,) = J._ablation_cases(0)
    assert case.data_seed >= 10_000  # never a seed the lessons read their figures from
    drop = J.run_intervention(["embed", "0.0", "0.1"], "direct", case.data_seed)
    outcome, value, se = J.measured_outcome(drop)
    assert outcome == "drop" and value - 2 * se > J.DROP


# --- shares_differ --------------------------------------------------------------------------------------------


def bootstrap_loop(dla, a, b):
    """Right, written differently: an explicit loop over resamples with its own generator seed."""
    g = torch.Generator().manual_seed(123)
    diffs = []
    for _ in range(400):
        x = dla[:, torch.randint(0, dla.shape[1], (dla.shape[1],), generator=g)]
        diffs.append(float(group_share(x, a) - group_share(x, b)))
    d = float(group_share(dla, a) - group_share(dla, b))
    se = float(torch.tensor(diffs).std())
    return {"difference": d, "se": se, "real": bool(abs(d) > 2 * se)}


def unpaired(dla, a, b):
    """Plausible wrong: each share's error, combined as if the two came from independent samples."""
    boot = resampled_shares(dla)
    d = float(group_share(dla, a) - group_share(dla, b))
    se = math.hypot(float(boot[a].sum(0).std()), float(boot[b].sum(0).std()))
    return {"difference": d, "se": se, "real": abs(d) > 2 * se}


def with_rule(rule):
    def fn(dla, a, b):
        out = R.shares_differ(dla, a, b)
        out["real"] = bool(rule(out["difference"], out["se"]))
        return out

    return fn


def test_accepts_the_reference_and_a_loop():
    accepts("shares_differ", R.shares_differ, seeds=(0,))
    accepts("shares_differ", bootstrap_loop, seeds=(1,))


def test_rejects_an_unpaired_error():
    rejects("shares_differ", unpaired, match="independent")


@pytest.mark.parametrize("rule", [
    lambda d, se: d != 0,  # any difference is real
    lambda d, se: abs(d) > se,  # one standard error
    lambda d, se: abs(d) > 3 * se,  # too strict: misses a clear difference
    lambda d, se: d > 2 * se,  # one-sided: a share that is smaller counts as "not different"
])
def test_rejects_a_wrong_decision_rule(rule):
    rejects("shares_differ", with_rule(rule), match="decide by")


def test_rejects_a_standard_deviation_for_an_error():
    def sd(dla, a, b):
        out = R.shares_differ(dla, a, b)
        out["se"] *= dla.shape[1] ** 0.5
        return out

    rejects("shares_differ", sd, match="standard error")


def test_the_what_if_cases_sit_where_they_claim():
    cases = J._share_cases(0)
    z = [abs(R.shares_differ(*c.args)["difference"]) / R.shares_differ(*c.args)["se"] for c in cases]
    assert z[0] > 3 and abs(z[2] - 1.4) < 0.05 and abs(z[3] - 2.8) < 0.05, z
