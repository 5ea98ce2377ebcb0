"""Lesson 07's judgement exercises are graded by consequence: plausible wrong decisions fail, correct decisions written
differently pass (utils/checks/lesson07_judgement.py)."""

import math
import random

import pytest
import torch

import utils.checks as checks
from helpers import rejects
from utils.checks.core import REGISTRY
from utils.reference import lesson07_judgement as ref
from utils.stats import bootstrap


def run_check(name, fn, seed=0):
    torch.manual_seed(seed)
    random.seed(seed)
    getattr(checks, f"test_{name}")(fn)


def test_both_are_judgement_exercises_with_their_own_compare():
    for name in ("falsify_monotone", "difference_is_real"):
        exercise = REGISTRY[name]
        assert exercise.kind == "judgement" and exercise.compare is not None and exercise.lesson == "07"


# ---- falsify_monotone: the check runs the learner's scrub on fresh data ---------------------------------------


FALSIFY = REGISTRY["falsify_monotone"]
CASE = FALSIFY.cases(7)[0]


def judged(keep):
    return FALSIFY.check_output(CASE, None, keep)


def test_falsify_accepts_falsifications_written_differently():
    run_check("falsify_monotone", ref.falsify_monotone)  # the learner's entry point, on the reference
    assert judged([1, 1, 2, 1]) is None  # a list, slot C two letters
    assert judged(torch.tensor([1, 1, 3, 3])) is None  # a tensor; the space keeps more too (it is never read)


def test_falsify_rejects_patterns_the_claim_says_nothing_about():
    for keep in [(0, 1, 3, 1), (1, 1, 1, 1), (1, 0, 3, 3)]:
        assert "cannot falsify" in judged(keep), keep


def test_falsify_rejects_the_lessons_own_example():
    """(1, 1, 3, 1) falsifies the claim, but the lesson shows it and the exercise says it is taken."""
    for keep in [(1, 1, 3, 1), [1, 1, 3, 1], torch.tensor([1, 1, 3, 1])]:
        assert "taken" in judged(keep), keep
    assert ref.falsify_monotone() != (1, 1, 3, 1)


def test_falsify_rejects_patterns_that_do_not_recover_less():
    for keep in [(1, 2, 1, 1), (1, 1, 1, 3), (1, 2, 3, 3)]:  # B ahead (not significant on easy); the space; the whole word
        problem = judged(keep)
        assert problem and "not above 0 at 2 SE" in problem and "fresh dataset" in problem, (keep, problem)


def test_falsify_rejects_malformed_answers_with_a_message():
    for got in ["1131", (1, 1, 4, 1), (1, 1, 3), (1.5, 1, 3, 1), None]:
        problem = judged(got)
        assert problem and ("four" in problem), (got, problem)
    rejects("falsify_monotone", lambda: (1, 2, 1, 1), match="not above 0")


def test_falsify_is_judged_on_data_the_learner_never_saw():
    scrubber = __import__("utils.checks.lesson07_judgement", fromlist=["_fresh_scrubber"])._fresh_scrubber(CASE.seed)
    assert scrubber.dataset.seed != 0 and len(scrubber.seeds) >= 5


# ---- difference_is_real --------------------------------------------------------------------------------------


def test_difference_accepts_the_reference_and_other_correct_ways():
    run_check("difference_is_real", ref.difference_is_real)

    def by_bootstrap(loss_a, loss_b):  # the library's paired bootstrap over sequences
        est = bootstrap(lambda a, b: a.mean() - b.mean(), loss_a.double().mean(-1), loss_b.double().mean(-1))
        return {"difference": est.value, "se": est.se, "real": bool(est.low > 0 or est.high < 0)}

    run_check("difference_is_real", by_bootstrap)

    def by_z_score(loss_a, loss_b):  # tensors for the numbers, a z-score for the verdict
        d = loss_a.mean(1) - loss_b.mean(1)
        se = d.std(unbiased=True) / len(d) ** 0.5
        return {"difference": d.mean(), "se": se, "real": bool((d.mean() / se).abs() > 2)}

    run_check("difference_is_real", by_z_score)


def unpaired(loss_a, loss_b):
    a, b = loss_a.double().mean(-1), loss_b.double().mean(-1)
    se = math.sqrt(a.var() / len(a) + b.var() / len(b))
    d = float(a.mean() - b.mean())
    return {"difference": d, "se": se, "real": abs(d) > 2 * se}


def per_token(loss_a, loss_b):
    diff = (loss_a - loss_b).double().flatten()
    d, se = float(diff.mean()), float(diff.std() / math.sqrt(len(diff)))
    return {"difference": d, "se": se, "real": abs(d) > 2 * se}


def one_sided(loss_a, loss_b):
    out = ref.difference_is_real(loss_a, loss_b)
    return {**out, "real": out["difference"] > 2 * out["se"]}


def sd_not_se(loss_a, loss_b):
    per_sequence = (loss_a - loss_b).double().mean(-1)
    d, sd = float(per_sequence.mean()), float(per_sequence.std())
    return {"difference": d, "se": sd, "real": abs(d) > 2 * sd}


def no_error_at_all(loss_a, loss_b):
    out = ref.difference_is_real(loss_a, loss_b)
    return {**out, "real": out["difference"] != 0}


def reversed_order(loss_a, loss_b):
    return ref.difference_is_real(loss_b, loss_a)


@pytest.mark.parametrize("wrong, match", [
    (unpaired, "what the independent units are"),
    (per_token, "what the independent units are"),
    (sd_not_se, "what the independent units are"),
    (one_sided, "size and the sign"),
    (no_error_at_all, "size and the sign"),
    (reversed_order, "check the order"),
])
def test_difference_rejects_plausible_wrong_decisions(wrong, match):
    rejects("difference_is_real", wrong, match=match)


def test_the_wrong_decisions_also_reach_wrong_verdicts():
    """Not only the SE is off: on the check's data, pairing and positions change the verdict itself."""
    cases = REGISTRY["difference_is_real"].cases(3)
    verdicts = {fn.__name__: [fn(*c.args)["real"] for c in cases] for fn in (ref.difference_is_real, unpaired, per_token)}
    assert verdicts["unpaired"] != verdicts["difference_is_real"]
    assert verdicts["per_token"] != verdicts["difference_is_real"]


def test_difference_rejects_malformed_answers():
    rejects("difference_is_real", lambda a, b: (0.1, 0.01, True), match="dict")
    rejects("difference_is_real", lambda a, b: {"difference": 0.1, "se": 0.01, "real": "yes"}, match="True or False")
