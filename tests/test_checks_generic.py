"""Generic diagnoses (utils/checks/generic.py): each relation between the reference's output and a learner's names
its cause, does not fire on an unrelated wrong answer, never fires on a right one, and gives way to a catalogued
mistake that reproduces the same outputs."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import LIKELY, accepts, rejects
from utils.checks import core
from utils.checks.core import REGISTRY, Case, Exercise, Mistake, diagnose, register

G = torch.Generator().manual_seed(0)
MATRICES = [torch.randn(3, 5, generator=G), torch.randn(4, 6, generator=G)]


@pytest.fixture
def exercise():
    """Register a throw-away exercise (lesson "99") on the two random matrices and remove it afterwards."""
    names = []

    def make(name, reference, cases=None, **kwargs):
        names.append(name)
        cases = cases or [Case((m.clone(),)) for m in MATRICES]
        return register(Exercise(name, "99", reference, lambda seed: cases, **kwargs))

    yield make
    for name in names:
        REGISTRY.pop(name, None)


def likely(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith(LIKELY) or line.startswith(core.ALSO)]


def names_cause(name: str, wrong, *phrases: str) -> str:
    """The check rejects `wrong` and its diagnosis holds every phrase."""
    lines = likely(rejects(name, wrong))
    assert lines, f"no diagnosis for {name}"
    text = "\n".join(lines)
    for phrase in phrases:
        assert phrase in text, (phrase, text)
    return text


def silent(name: str, wrong) -> None:
    assert not likely(rejects(name, wrong)), name


log_softmax = lambda x: x.log_softmax(-1)  # noqa: E731
softmax = lambda x: x.softmax(-1)  # noqa: E731


# ---------------------------------------------------------------------------------------------------------
# Each relation names its cause; an unrelated wrong answer and a right one get no diagnosis
# ---------------------------------------------------------------------------------------------------------


VALUE_CASES = [  # (reference, wrong answer, phrases its diagnosis must hold)
    (log_softmax, lambda x: -x.log_softmax(-1), ["every sign flipped", "minus sign"]),
    (log_softmax, lambda x: x.softmax(-1), ["exp of the reference's", "probabilities where log-probabilities"]),
    (softmax, lambda x: x.log_softmax(-1), ["log of the reference's", "log-probabilities where probabilities"]),
    (softmax, lambda x: 1 - x.softmax(-1), ["1 minus the reference's", "opposite event"]),
    (log_softmax, lambda x: x.log_softmax(-1).T, ["dimensions in the order (1, 0)", "swapped"]),
    (log_softmax, lambda x: x.log_softmax(-1).flip(1), ["reverse order along dim 1"]),
    (log_softmax, lambda x: x.log_softmax(-1)[[1, 2, 0, *range(3, x.shape[0])]], ["slices along dim 0 in another order"]),
    (log_softmax, lambda x: torch.cat([x[:, :1], x.log_softmax(-1)[:, :-1]], 1), ["shifted one place later along", "dim 1"]),
    (lambda x: x.mean(-1), lambda x: x.sum(-1), ["multiplied by the size of dim 1 of argument 1", "division by that count is missing"]),
    (lambda x: x.sum(0), lambda x: x.mean(0), ["divided by the size of dim 0 of argument 1", "extra division"]),
    (lambda x: x.mean(), lambda x: x.sum(), ["multiplied by the number of elements of argument 1"]),
    (softmax, lambda x: x.softmax(-1) / x.shape[0], ["divided by the size of dim 0 of the output"]),
    (softmax, lambda x: x.exp(), ["proportional to the reference's along dim 1", "does not sum to 1"]),
    (log_softmax, lambda x: x.clone(), ["minus its logsumexp over dim 1 is the reference's", "not normalised"]),
    (softmax, lambda x: x.softmax(0), ["sums to 1 over dim 0", "over dim 1", "wrong dimension"]),
    (log_softmax, lambda x: x.double().log_softmax(-1), ["dtype is not the reference's"]),
    (log_softmax, lambda x: x.log_softmax(-1) / math.log(2), ["divided by ln 2", "base 2"]),
    (log_softmax, lambda x: x.log_softmax(-1) / math.log(10), ["divided by ln 10", "base 10"]),
    (softmax, lambda x: x.softmax(-1) * 26, ["26 times the reference's", "a division by 26 missing"]),
    (softmax, lambda x: x.softmax(-1) / 26, ["divided by 26"]),
    (softmax, lambda x: x.softmax(-1).flatten(), ["same order but in another shape"]),
    (softmax, lambda x: x.softmax(-1)[None], ["same order but in another shape"]),
    (softmax, lambda x: x.softmax(-1).tolist(), ["Python type", "a list or array where a tensor is asked"]),
]


@pytest.mark.parametrize("i", range(len(VALUE_CASES)))
def test_each_relation_names_its_cause(exercise, i):
    reference, wrong, phrases = VALUE_CASES[i]
    exercise(f"_generic{i}", reference)
    names_cause(f"_generic{i}", wrong, *phrases)


@pytest.mark.parametrize("i", range(len(VALUE_CASES)))
def test_no_relation_fires_on_a_right_or_an_unrelated_wrong_answer(exercise, i):
    reference = VALUE_CASES[i][0]
    exercise(f"_generic{i}", reference)
    accepts(f"_generic{i}", lambda x: reference(x.double()).to(x.dtype))  # right, computed another way
    silent(f"_generic{i}", lambda x: reference(x) * 0.37 + 0.1)
    silent(f"_generic{i}", lambda x: reference(x + torch.linspace(0, 1, x.shape[-1])))


def test_integer_off_by_one(exercise):
    exercise("_argmax", lambda x: x.argmax(-1))
    names_cause("_argmax", lambda x: x.argmax(-1) + 1, "1 more than the reference's", "off-by-one")
    names_cause("_argmax", lambda x: x.argmax(-1) - 1, "1 less than the reference's")
    silent("_argmax", lambda x: x.argmin(-1))


def test_containers_of_another_type(exercise):
    exercise("_groups", lambda x: {"rows": [sorted(r) for r in x.tolist()]}, strict_types=True)
    names_cause("_groups", lambda x: {"rows": [set(r) for r in x.tolist()]}, "a tuple or set where a list")
    exercise("_pair", lambda x: {"min": float(x.min()), "max": float(x.max())}, strict_types=True)
    names_cause("_pair", lambda x: (float(x.min()), float(x.max())), "a tuple where a dict is asked")
    silent("_pair", lambda x: (float(x.max()), float(x.min())))


def test_a_list_of_characters_and_a_log_with_zeros(exercise):
    exercise("_upper", lambda x: "".join("ab"[int(v > 0)] for v in x.flatten().tolist()), strict_types=True)
    names_cause("_upper", lambda x: ["ab"[int(v > 0)] for v in x.flatten().tolist()], "a list of characters")
    exercise("_relu", lambda x: x.clamp_min(0))
    names_cause("_relu", lambda x: x.clamp_min(0).log(), "log of the reference's")


def test_items_in_another_order(exercise):
    exercise("_minmax", lambda x: (x.min(0).values, x.max(0).values))
    names_cause("_minmax", lambda x: (x.max(0).values, x.min(0).values), "items in another order")
    silent("_minmax", lambda x: (x.max(0).values, x.max(0).values))


def test_python_type(exercise):
    exercise("_total", lambda x: float(x.sum()), strict_types=True)
    names_cause("_total", lambda x: x.sum(), "Python type", ".item()")
    silent("_total", lambda x: float(x.sum()) + 1.5)
    accepts("_total", lambda x: x.sum().item())


def test_a_relation_on_one_key_of_a_dict_names_the_key(exercise):
    exercise("_stats", lambda x: {"mean": float(x.mean()), "lse": float(x.logsumexp((0, 1)))})
    text = names_cause("_stats", lambda x: {"mean": float(x.mean()), "lse": -float(x.logsumexp((0, 1)))},
                       "['lse']: ", "every sign flipped")
    assert "['mean']" not in text


def test_a_relation_that_holds_on_some_failing_cases_only_is_not_named(exercise):
    exercise("_lsm", log_softmax)
    silent("_lsm", lambda x: -x.log_softmax(-1) if x.shape[0] == 3 else x.log_softmax(-1) * 2)


def test_a_relation_must_agree_with_the_passing_cases(exercise):
    exercise("_lsm", log_softmax)
    # right on the 3 x 5 matrix, negated on the 4 x 6 one: "every sign flipped" would be false of the first
    silent("_lsm", lambda x: x.log_softmax(-1) if x.shape[0] == 3 else -x.log_softmax(-1))


def test_a_function_that_raises_gets_no_generic_diagnosis(exercise):
    exercise("_lsm", log_softmax)
    silent("_lsm", lambda x: x.log_softmax(5))


def test_judgement_exercises_get_no_generic_diagnosis(exercise):
    exercise("_verdict", lambda x: float(x.sum()), kind="judgement")
    silent("_verdict", lambda x: -float(x.sum()))


# ---------------------------------------------------------------------------------------------------------
# Precedence: a catalogued mistake that reproduces the outputs is named instead; the grader's one-case call
# ---------------------------------------------------------------------------------------------------------


def test_a_catalogued_mistake_takes_precedence(exercise, monkeypatch):
    monkeypatch.setattr(core, "mistake_function", lambda ex, m: lambda x: -x.log_softmax(-1))
    exercise("_lsm", log_softmax, mistakes=(Mistake("loss", "you returned the loss, not the log-probs."),))
    text = names_cause("_lsm", lambda x: -x.log_softmax(-1), "you returned the loss")
    assert "sign flipped" not in text
    names_cause("_lsm", lambda x: x.log_softmax(-1).T, "swapped")  # the catalogue does not explain it


def test_the_grader_call_names_a_generic_relation_on_one_case(exercise):
    ex = exercise("_lsm", log_softmax)
    case = ex.cases(0)[0]
    text = diagnose("_lsm", case, -ex.expected(case))
    assert text.startswith(LIKELY) and "every sign flipped" in text
    assert diagnose("_lsm", case, ex.expected(case) * 0.37) is None


# ---------------------------------------------------------------------------------------------------------
# Across the catalogue of lessons 01-03: where a generic relation also holds for a catalogued mistake, it says the
# same (reviewed pair by pair below), and the diagnosis shows the catalogued sentence, written for the exercise
# ---------------------------------------------------------------------------------------------------------

SAME_CAUSE = {  # (exercise, catalogued mistake): the generic relations that also hold on its outputs, each agreeing
    ("tokenize", "int32"): {"other_dtype"},
    ("tokenize", "no_dtype"): {"other_dtype"},
    ("word_probabilities", "float32"): {"other_dtype"},
    ("word_probabilities", "unnormalised"): {"unnormalised_0_p"},
    ("word_probabilities", "medium_unnormalised"): {"unnormalised_0_p"},
    ("rotation_twins", "tuples"): {"other_python_type"},
    ("correct_logprobs", "probabilities"): {"exp_of_reference"},
    ("correct_logprobs", "loss"): {"sign_flipped"},
    ("correct_logprobs", "to_float64"): {"other_dtype"},
    ("correct_logprobs", "transposed"): {"dims_10"},
    ("summary_stats", "tensors"): {"other_python_type"},
    ("summary_stats", "ce_sign"): {"sign_flipped['ce']: "},
    ("summary_stats", "min_of_logprobs"): {"log_of_reference['min_p']: "},
    ("summary_stats", "ce_in_bits"): {"log_base_2['ce']: "},
    ("first_word_posterior", "probabilities"): {"exp_of_reference"},
    ("first_word_posterior", "float32"): {"other_dtype"},
    ("first_word_posterior", "unnormalised"): {"unnormalised_1_log"},
    ("first_word_posterior", "prefix_off_by_one"): {"shift_0_1"},
    ("first_char_probs", "log_probs"): {"log_of_reference"},
    ("first_char_probs", "softmax_over_characters"): {"normalised_0_not_1_p"},
    ("first_char_probs", "transposed"): {"dims_10"},
    ("letter_freqs_by_position", "unnormalised"): {"unnormalised_1_p"},
    ("letter_freqs_by_position", "float32"): {"other_dtype"},
    ("letter_freqs_by_position", "transposed"): {"dims_10"},
    ("implied_first_letter_probs", "sum_not_mean"): {"times_26", "times_size_0_0", "times_size_0_1", "times_size_-1_0",
                                                     "unnormalised_0_p"},
    ("implied_first_letter_probs", "float32_always"): {"other_dtype"},
    ("rotated_word_tokens", "int32"): {"other_dtype"},
    ("rotated_word_tokens", "shifts_in_word_order"): {"reordered_0[1]: "},  # the shifts, in another order
    ("rotated_word_tokens", "backwards"): {"reordered_0[0]: "},  # the same 26 rotations, in another order
    ("rotated_word_tokens", "shifts_negated"): {"reordered_0[1]: "},
}
EARLY = [(ex.name, m.name) for ex in REGISTRY.values() if ex.lesson in ("01", "02", "03") and ex.kind == "code"
         for m in ex.mistakes]


def _observed(ex: Exercise, fn) -> list:
    """(case, output) pairs of `fn`, the wrong ones first, as run_cases hands them to diagnose."""
    wrong, right = [], []
    for case in ex.cases(0):
        result, got = core._run_case(ex, fn, case)
        (wrong if result.wrong_value else right).append((case, got))
    return wrong + right


@pytest.mark.parametrize("name,mistake", EARLY, ids=[f"{n}__{m}" for n, m in EARLY])
def test_generic_relations_agree_with_the_catalogue(name, mistake):
    ex = REGISTRY[name]
    fn = core.mistake_function(ex, next(m for m in ex.mistakes if m.name == mistake))
    held = {m.name.removeprefix(core.GENERIC) for m in core.generic_mistakes(ex, _observed(ex, fn))}
    assert held == SAME_CAUSE.get((name, mistake), set()), f"review: does each of {held} say what {mistake} says?"
    message = "\n".join(likely(rejects(name, fn)))
    assert message and all(line.split(": ", 1)[1] in {m.message for m in ex.mistakes} for line in message.splitlines())
