"""Every lesson-03 check accepts correct answers written in several ways, rejects each catalogued mistake (and names
it once the framework diagnoses), and rejects functions that write into their inputs or leave the model changed."""

import math

import pytest
import torch

from catalogue_lesson01_03 import (
    DETECTS_MODEL_STATE, DETECTS_MUTATION, DIAGNOSES, NO_DIAGNOSIS, NO_MUTATION, NO_STATE, assert_catalogue_complete,
    assert_named, assert_rejected, assert_side_effect_rejected, fresh_models, mistake_params, wrong_fn,
)
from helpers import accepts, diagnoses, reference_of
from utils.checks.core import REGISTRY, Ref
from utils.data import LETTERS

NAMES = [
    "first_char_probs",
    "letter_freqs_by_position",
    "implied_first_letter_probs",
    "rotated_word_tokens",
    "rotation_averaged_probs",
    "independent_evidence_probs",
]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_catalogue_is_complete():
    assert_catalogue_complete("03", NAMES + ["below_bayes_verdict"])


@pytest.mark.parametrize("mistake", ["unpaired", "sign_reversed"])
def test_below_bayes_verdict_mistakes_named(mistake):
    diagnoses("below_bayes_verdict", wrong_fn("03", "below_bayes_verdict", mistake), mistake)


@pytest.mark.parametrize("name,mistake", mistake_params(NAMES))
def test_mistake_rejected(name, mistake):
    assert_rejected("03", name, mistake)


@pytest.mark.skipif(not DIAGNOSES, reason=NO_DIAGNOSIS)
@pytest.mark.parametrize("name,mistake", mistake_params(NAMES))
def test_mistake_named(name, mistake):
    assert_named("03", name, mistake)


# ---- correct alternatives, written differently --------------------------------------------------------------------
@torch.inference_mode()
def first_char_probs_loop(model):
    rows = [model(torch.tensor([[c]], device=model.cfg.device))[0, 0].softmax(-1) for c in range(26)]
    return torch.stack(rows).cpu()


def letter_freqs_loops(words_freq):
    freqs = torch.zeros(3, 26, dtype=torch.float64)
    for word, f in words_freq:
        for j, c in enumerate(word):
            freqs[j, LETTERS.index(c)] += f
    return freqs / freqs.sum(-1, keepdim=True)


def implied_loop(probs):
    return torch.stack([torch.stack([probs[c, (c - L) % 26] for c in range(26)]).mean() for L in range(26)])


def rotated_loops(word_list):
    rows, shifts = [], []
    for w in word_list:
        for s in range(26):
            rows.append([(LETTERS.index(c) + s) % 26 for c in w])
            shifts.append(s)
    return torch.tensor(rows), torch.tensor(shifts)


@torch.inference_mode()
def rotation_averaged_gather(model, toks, shifts):
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()
    correct = probs.gather(-1, shifts.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(-1)
    return correct.view(-1, 26, 3).mean(1)


def independent_loops(word_list, letter_freqs):
    out = torch.zeros(len(word_list), 3, dtype=torch.float64)
    for w, word in enumerate(word_list):
        for j in range(3):
            loglik = torch.tensor([sum(math.log(letter_freqs[i, (LETTERS.index(word[i]) - s) % 26].item() or 1e-300)
                                       if letter_freqs[i, (LETTERS.index(word[i]) - s) % 26] > 0 else -math.inf
                                       for i in range(j + 1)) for s in range(26)], dtype=torch.float64)
            out[w, j] = loglik.softmax(0)[0]
    return out


@pytest.mark.parametrize("name,fn", [
    ("first_char_probs", first_char_probs_loop), ("letter_freqs_by_position", letter_freqs_loops),
    ("implied_first_letter_probs", implied_loop), ("rotated_word_tokens", rotated_loops),
    ("rotation_averaged_probs", rotation_averaged_gather), ("independent_evidence_probs", independent_loops),
])
def test_accepts_alternative(name, fn):
    accepts(name, fn)


# ---- promises of the text are covered by the cases -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["first_char_probs", "rotation_averaged_probs"])
def test_model_cases_use_more_than_the_easy_model(name):
    models = {c.args[0] for c in REGISTRY[name].cases(0) if isinstance(c.args[0], Ref)}
    assert Ref("model", "medium") in models and Ref("model", "easy") in models


def test_a_function_ignoring_its_model_is_rejected():
    from utils.checks.core import _build_ref, check
    from utils.checks import CheckFailed

    easy = _build_ref(Ref("model", "easy"))
    with pytest.raises(CheckFailed):
        check("first_char_probs", lambda model: reference_of("first_char_probs")(easy), seed=0)


def test_implied_cases_vary_dtype():
    assert {c.args[0].dtype for c in REGISTRY["implied_first_letter_probs"].cases(0)} == {torch.float32, torch.float64}


# ---- side effects ----------------------------------------------------------------------------------------------------
def test_in_place_variant_rejected():
    assert_side_effect_rejected("implied_first_letter_probs", wrong_fn("03", "implied_first_letter_probs", "in_place"),
                                DETECTS_MUTATION, NO_MUTATION,
                                ("input", "argument", "modif", "changed", "in place", "in-place"))


@torch.inference_mode()
def first_char_probs__leaves_hook(model):
    model.blocks[0].attn.hook_pattern.add_hook(lambda pattern, hook: None)  # harmless, but never removed
    return reference_of("first_char_probs")(model)


@torch.inference_mode()
def first_char_probs__writes_weights(model):
    out = reference_of("first_char_probs")(model)
    with torch.no_grad():  # a "zero ablation" done on the shared model itself
        model.blocks[0].attn.W_O[0] = 0.0
    return out


def first_char_probs__train_mode(model):
    out = reference_of("first_char_probs")(model)
    model.train()
    return out


@torch.inference_mode()
def rotation_averaged_probs__leaves_hook(model, toks, shifts):
    model.add_hook("blocks.1.hook_resid_pre", lambda resid, hook: None)
    return reference_of("rotation_averaged_probs")(model, toks, shifts)


@pytest.mark.parametrize("name,fn", [
    ("first_char_probs", first_char_probs__leaves_hook), ("first_char_probs", first_char_probs__writes_weights),
    ("first_char_probs", first_char_probs__train_mode), ("rotation_averaged_probs", rotation_averaged_probs__leaves_hook),
])
def test_state_leaving_variant_rejected(name, fn, fresh_models):
    assert_side_effect_rejected(name, fn, DETECTS_MODEL_STATE, NO_STATE,
                                ("hook", "weight", "train", "model", "changed", "left"))


# ---- independent_evidence_probs: no case on the course's exact inputs (tests/test_checks_course_asserts.GAPS) -------
def _course_evidence_inputs():
    """Notebook 03's inputs: the 100 words of the table and their easy letter frequencies by position."""
    from utils import analysis
    from utils.data import load_word_table

    table = load_word_table()
    total = sum(c for _, c in table)
    words_freq = [(w, c / total) for w, c in table]
    return [w for w, _ in words_freq], analysis.letter_freqs_by_position(words_freq)


def _fails_course_asserts(out, words, letter_freqs) -> bool:
    """Notebook 03's asserts on the output: p(correct) after 'th' within 0.001 of 0.745, and assert_close with the
    library's observer."""
    from utils import analysis

    try:
        torch.testing.assert_close(analysis.independent_evidence_probs(words, letter_freqs), out)
    except (AssertionError, TypeError, ValueError):
        return True
    return abs(out[words.index("the"), 1].item() - 0.745) >= 0.001


def independent_float32(word_list, letter_freqs):  # the right steps in float32, converted back at the end
    toks = torch.tensor([[LETTERS.index(c) for c in w[:3]] for w in word_list])
    ev = letter_freqs.float().log()[torch.arange(3).view(1, 3, 1), (toks[:, :, None] - torch.arange(26)) % 26]
    return ev.cumsum(1).softmax(-1)[..., 0].double()


def independent_nudged(word_list, letter_freqs):  # off by a little more than assert_close's float64 tolerance
    out = reference_of("independent_evidence_probs")(word_list, letter_freqs)
    return out + 5e-7 * (out > 0.5)


def independent_forwards(word_list, letter_freqs):  # decoded as letter + s: p(shift 0) is the same (a permutation)
    toks = torch.tensor([[LETTERS.index(c) for c in w[:3]] for w in word_list])
    decoded = (toks[:, :, None] + torch.arange(26)) % 26
    ev = letter_freqs.double().log()[torch.arange(3).view(1, 3, 1), decoded]
    return ev.cumsum(1).softmax(-1)[..., 0]


def test_decoding_in_either_direction_is_accepted():
    accepts("independent_evidence_probs", independent_forwards)


@pytest.mark.parametrize("fn", [wrong_fn("03", "independent_evidence_probs", m.name)
                                for m in REGISTRY["independent_evidence_probs"].mistakes]
                         + [independent_float32, independent_nudged], ids=lambda fn: fn.__name__)
def test_independent_evidence_check_is_as_strong_as_the_course_asserts(fn):
    """Every answer that fails one of notebook 03's asserts on the course's inputs is rejected by the check (which
    compares the whole [word 3] output, at the assert_close tolerance, on jittered and uniform frequencies)."""
    from utils.checks.core import CheckFailed, check

    words, letter_freqs = _course_evidence_inputs()
    assert _fails_course_asserts(fn(words, letter_freqs), words, letter_freqs)
    with pytest.raises(CheckFailed):
        check("independent_evidence_probs", fn, seed=0)
    assert not _fails_course_asserts(reference_of("independent_evidence_probs")(words, letter_freqs), words, letter_freqs)


def test_rotated_word_tokens_takes_a_single_word():
    labels = [c.describe() for c in REGISTRY["rotated_word_tokens"].cases(0)]
    assert any("single word" in label for label in labels)
