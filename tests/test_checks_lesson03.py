"""Every lesson-03 check accepts correct answers written in several ways, rejects each catalogued mistake (and names
it once the framework diagnoses), and rejects functions that write into their inputs or leave the model changed."""

import math

import pytest
import torch

from catalogue_lesson01_03 import (
    DETECTS_MODEL_STATE, DETECTS_MUTATION, DIAGNOSES, NO_DIAGNOSIS, NO_MUTATION, NO_STATE, assert_catalogue_complete,
    assert_named, assert_rejected, assert_side_effect_rejected, fresh_models, mistake_params, wrong_fn,
)
from helpers import accepts, reference_of
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
    assert_catalogue_complete("03", NAMES)


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
