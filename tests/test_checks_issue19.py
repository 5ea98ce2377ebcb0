"""Issue 19, class by class: the course's own calls are cases, the course's asserts are no stronger than the check,
the types and edge inputs the text names are checked, and a "Likely mistake:" line names only a mistake that
reproduces every output of the learner's (both, where two do)."""

from __future__ import annotations

import dataclasses
import string

import pytest
import torch

from helpers import LIKELY, accepts, diagnoses, diagnosis_lines, mistake_message, not_diagnosed, reference_of, rejects
from utils.checks.core import ALSO, REGISTRY, Case, CheckFailed, Exercise, Mistake, diagnose, register, run_cases
from utils.reference import lesson01 as r1, lesson05 as r5, lesson07 as r7
from utils.reference import lesson02 as r2

LOW = string.ascii_lowercase


# --- 1. the path the notebook itself uses is a case --------------------------------------------------------------


def test_patched_kv_without_mask_is_checked():
    """Lesson 07 calls run_with_patched_kv(model, toks, k, v) with no mask: patching nothing there fails, and so
    does raising on mask=None."""
    labels = [c.label for c in REGISTRY["run_with_patched_kv"].cases(0)]
    assert any("no mask" in label for label in labels) and any("mask=None" in label for label in labels)

    def nothing_without_mask(model, toks, new_k, new_v, mask=None):
        return r7.run_with_patched_kv(model, toks, new_k, new_v, torch.zeros(toks.shape[1], dtype=torch.bool) if mask is None else mask)

    def raises_without_mask(model, toks, new_k, new_v, mask=None):
        return r7.run_with_patched_kv(model, toks, new_k, new_v, mask.bool())

    diagnoses("run_with_patched_kv", nothing_without_mask, "no_mask_patches_nothing")
    rejects("run_with_patched_kv", raises_without_mask, match="raised")


# --- 2. wrong answers the notebook's own asserts reject ----------------------------------------------------------


# (lesson 05's words_shift_posterior, the issue's example, is now given code: lesson 05 asks a judgement there.)


# --- 3. types the text names ------------------------------------------------------------------------------------


def test_twins_must_be_lists():
    message = rejects("rotation_twins", lambda words: [tuple(g) for g in r1.rotation_twins(words)])
    assert "expected a list, got a tuple" in message
    rejects("rotation_twins", lambda words: tuple(r1.rotation_twins(words)))


def test_python_floats_where_the_text_asks_for_them():
    """(Lesson 07's scrub_loss_recovered, the issue's example, is now given code; summary_stats asks for floats.)"""
    message = rejects("summary_stats", lambda lp: {k: torch.tensor(v) for k, v in r2.summary_stats(lp).items()})
    assert "Python number" in message
    accepts("summary_stats", lambda lp: {k: float(torch.tensor(v)) for k, v in r2.summary_stats(lp).items()})


def test_strict_types_on_containers():
    from utils.checks.core import compare_values

    assert compare_values([[1]], ([1],), strict=True) and compare_values([[1]], [(1,)], strict=True)
    assert compare_values([[1]], ([1],)) is None  # without strict, any sequence passes


# --- 4. edge inputs the text promises ----------------------------------------------------------------------------


def test_tokenize_empty_text_and_casefold():
    labels = [c.label for c in REGISTRY["tokenize"].cases(0)]
    assert any("empty text" in label for label in labels) and any("ß" in label for label in labels)
    diagnoses("tokenize", lambda text, mode: torch.tensor(r1.tokenize(text, mode).tolist()), "no_dtype")
    diagnoses("tokenize", lambda text, mode: r1.tokenize(text.casefold(), mode), "casefold")


def test_reliability_bins_edges_and_bin_counts():
    cases = REGISTRY["reliability_bins"].cases(0)
    assert {c.args[2] if len(c.args) > 2 else 10 for c in cases} >= {4, 8, 10}
    probs = cases[1].args[0]
    assert (probs.max(-1).values * 4 == (probs.max(-1).values * 4).round()).any()  # confidences exactly on edges


def test_config_needs_seed_42():
    diagnoses("make_config", lambda mode: dataclasses.replace(r2.make_config(mode), seed=None), "no_seed")
    rejects("make_config", lambda mode: dataclasses.replace(r2.make_config(mode), seed=0), match="['seed']")


def test_loader_must_use_device():
    diagnoses("load_trained_model", lambda mode, device="cpu": r2.load_trained_model(mode), "ignores_device")


# --- 6. a diagnosis names only a mistake that reproduces every output -------------------------------------------


def test_abs_shift_is_not_told_its_letters_moved_backwards():
    message = diagnoses("rotate_text", lambda text, shift: r1.rotate_text(text, abs(shift)), "abs_shift")
    assert mistake_message("rotate_text", "backwards") not in message


def test_wrong_axis_is_named_as_the_cause():
    """Normalising down the columns gives exactly the outputs of ignoring word_probs (matching is symmetric, so
    column i's total is p_i times row i's count): the message names the axis, and the other cause beside it."""
    def columns(word_toks, word_probs, n_keep):
        same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)
        w = same.to(word_probs.dtype) * word_probs[None]
        return w / w.sum(0, keepdim=True)

    message = diagnoses("prefix_match_weights", columns, "normalised_over_wrong_axis")
    lines = diagnosis_lines(message)
    assert len(lines) == 2 and "wrong axis" in message


@pytest.fixture
def toy():
    """An exercise whose three catalogued mistakes differ: doubling (wrong everywhere), a sign error on negative
    inputs only, and tripling a second way (the same outputs as `triples`)."""
    name = "_issue19_toy"
    REGISTRY.pop(name, None)
    cases = lambda seed: [Case((torch.tensor([1.0, 2.0]),), label="positive"), Case((torch.tensor([-1.0, -3.0]),), label="negative")]  # noqa: E731
    ex = register(Exercise(name, "00", lambda x: x.clone(), cases, mistakes=(
        Mistake("doubles", "doubles"), Mistake("abs", "abs"), Mistake("triples", "triples"), Mistake("triples_too", "triples too"))))
    import sys
    import types
    module = types.ModuleType("utils.reference.lesson00_mistakes")
    module.__dict__.update({f"{name}__doubles": lambda x: 2 * x, f"{name}__abs": lambda x: x.abs(),
                            f"{name}__triples": lambda x: 3 * x, f"{name}__triples_too": lambda x: x + x + x})
    sys.modules["utils.reference.lesson00_mistakes"] = module
    yield ex
    REGISTRY.pop(name, None)
    sys.modules.pop("utils.reference.lesson00_mistakes", None)


def test_named_only_when_every_failing_case_is_reproduced(toy):
    # abs(x) is right on the positive case and wrong on the negative one: "abs" reproduces both
    assert diagnosis_lines(rejects(toy.name, lambda x: x.abs())) == [f"{LIKELY} abs"]
    # wrong on both cases, doubled on the first only: no mistake reproduces both, so none is named
    not_diagnosed(toy.name, lambda x: 2 * x if bool((x > 0).all()) else 5 * x)
    # right on the first case, doubled on the second: "doubles" disagrees with it on the passing case
    not_diagnosed(toy.name, lambda x: x if bool((x > 0).all()) else 2 * x)


def test_two_mistakes_with_the_same_outputs_are_both_named(toy):
    lines = diagnosis_lines(rejects(toy.name, lambda x: x * 3))
    assert lines == [f"{LIKELY} triples", f"{ALSO} triples too"]


def test_grader_call_still_works(toy):
    """utils.grading.scoring calls diagnose(exercise, case, value) one case at a time."""
    case = toy.cases(0)[1]
    assert diagnose(toy.name, case, torch.tensor([1.0, 3.0])) == f"{LIKELY} abs"
    results = run_cases(toy, lambda x: x.abs(), 0)
    assert results[0].passed and results[1].diagnosis == f"{LIKELY} abs"


# --- issue 22, item 6: frictions ------------------------------------------------------------------------------------


def test_unsolved_exercise_shows_only_its_message():
    """In a notebook (IPython), an unsolved exercise and a failed check show their message, not core.py's frames."""
    from utils.checks.core import ExerciseNotDone, make_test

    test = make_test("rotate_text")

    def unsolved(text, shift):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotDone) as info:
        test(unsolved)
    rendered = info.value._render_traceback_()
    assert rendered == [f"ExerciseNotDone: {info.value}"] and "core.py" not in "".join(rendered)
    frames = []
    tb = info.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert sum("core.py" in f for f in frames) <= 1  # raised afresh from test_<name>, not four frames deep
    with pytest.raises(CheckFailed) as info:
        test(lambda text, shift: text)
    assert info.value._render_traceback_()[0].startswith("CheckFailed: `rotate_text` failed")


def test_unsolved_exercise_in_ipython():
    from IPython.testing.globalipapp import start_ipython
    import contextlib
    import io

    ip = start_ipython()
    ip.run_cell("from utils.checks import test_rotate_text\ndef rotate_text(t, s):\n    raise NotImplementedError()")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        ip.run_cell("test_rotate_text(rotate_text)")
    text = out.getvalue()
    assert "is not implemented yet" in text and "core.py" not in text, text


def test_compare_prediction_returns_none():
    from utils.predictions import PREDICTIONS, compare_prediction

    assert compare_prediction("x", 0.5, torch.tensor(0.6)) is None
    assert PREDICTIONS[-1].name == "x" and PREDICTIONS[-1].close is False
