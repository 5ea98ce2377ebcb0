"""Every lesson-01 check accepts correct answers written in several ways, rejects each catalogued mistake (and
names it once the framework diagnoses), and rejects a function that writes into its inputs."""

import string

import pytest
import torch

from catalogue_lesson01_03 import (
    DETECTS_MUTATION, DIAGNOSES, NO_DIAGNOSIS, NO_MUTATION, assert_catalogue_complete, assert_named,
    assert_rejected, assert_side_effect_rejected, mistake_params, wrong_fn,
)
from helpers import accepts, reference_of, rejects
from utils.checks import ExerciseNotDone, check
from utils.checks.core import REGISTRY
from utils.data import VOCAB_EASY, VOCAB_HARD

NAMES = ["rotate_text", "tokenize", "encode_tokens", "word_probabilities", "rotation_twins"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_catalogue_is_complete():
    assert_catalogue_complete("01", NAMES)


@pytest.mark.parametrize("name,mistake", mistake_params(NAMES))
def test_mistake_rejected(name, mistake):
    assert_rejected("01", name, mistake)


@pytest.mark.skipif(not DIAGNOSES, reason=NO_DIAGNOSIS)
@pytest.mark.parametrize("name,mistake", mistake_params(NAMES))
def test_mistake_named(name, mistake):
    assert_named("01", name, mistake)


# ---- correct alternatives, written differently --------------------------------------------------------------------
def rotate_text_ord(text, shift):
    out = ""
    for c in text:
        if "a" <= c <= "z":
            out += chr((ord(c) - ord("a") + shift) % 26 + ord("a"))
        elif "A" <= c <= "Z":
            out += chr((ord(c) - ord("A") + shift) % 26 + ord("A"))
        else:
            out += c
    return out


def rotate_text_translate(text, shift):
    s = shift % 26
    low, up = string.ascii_lowercase, string.ascii_uppercase
    return text.translate(str.maketrans(low + up, low[s:] + low[:s] + up[s:] + up[:s]))


def tokenize_dict(text, mode):
    ids = {c: i for i, c in enumerate(VOCAB_HARD if mode == "hard" else VOCAB_EASY)}
    return torch.tensor([ids[c] for c in text.lower() if c in ids]).long()


def encode_tokens_loop_free_mask(plain_toks, shifts):
    out = plain_toks.clone()
    letters = plain_toks < 26
    out[letters] = ((plain_toks + shifts.view(-1, 1)) % 26)[letters]
    return out


def word_probabilities_softmax(counts, mode):
    weights = counts.to(torch.float64) if mode == "easy" else torch.ones(len(counts), dtype=torch.float64)
    return torch.softmax(weights.log(), dim=0)


def rotation_twins_pairs(words):
    out = []
    for w in sorted(set(words)):
        group = sorted(v for v in words if len(v) == len(w) and any(rotate_text_ord(w, s) == v for s in range(26)))
        if len(group) > 1 and group not in out:
            out.append(group)
    return sorted(out)


@pytest.mark.parametrize("name,fn", [
    ("rotate_text", rotate_text_ord), ("rotate_text", rotate_text_translate), ("tokenize", tokenize_dict),
    ("encode_tokens", encode_tokens_loop_free_mask), ("word_probabilities", word_probabilities_softmax),
    ("rotation_twins", rotation_twins_pairs),
])
def test_accepts_alternative(name, fn):
    accepts(name, fn)


# ---- promises of the text are covered by the cases -----------------------------------------------------------------
def test_rotate_text_cases_cover_negative_large_shifts_capitals_and_non_ascii():
    cases = REGISTRY["rotate_text"].cases(0)
    shifts = {c.args[1] for c in cases}
    texts = "".join(c.args[0] for c in cases)
    assert min(shifts) < 0 and max(shifts) > 25
    assert any(ch.isupper() for ch in texts) and any(ord(ch) > 127 for ch in texts)


def test_tokenize_cases_cover_every_mode_capitals_and_non_ascii():
    cases = REGISTRY["tokenize"].cases(0)
    assert {c.args[1] for c in cases} == {"easy", "medium", "hard"}
    texts = "".join(c.args[0] for c in cases)
    assert any(ch.isupper() for ch in texts) and any(ord(ch) > 127 for ch in texts)


def test_word_probabilities_cases_vary_dtype():
    dtypes = {c.args[0].dtype for c in REGISTRY["word_probabilities"].cases(0)}
    assert {torch.int64, torch.int32, torch.float32, torch.float64} <= dtypes


def test_encode_tokens_cases_cover_shifts_outside_0_25():
    shifts = torch.cat([c.args[1] for c in REGISTRY["encode_tokens"].cases(0)])
    assert shifts.min() < 0 and shifts.max() > 25


# ---- side effects ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["encode_tokens", "word_probabilities"])
def test_in_place_variant_rejected(name):
    assert_side_effect_rejected(name, wrong_fn("01", name, "in_place"), DETECTS_MUTATION, NO_MUTATION,
                                ("input", "argument", "modif", "changed", "in place", "in-place"))


def test_in_place_variants_give_right_values():
    """The in-place variants differ from the reference only by their side effect (so only detection can catch them)."""
    toks, shifts = torch.randint(0, 36, (4, 9)), torch.randint(-30, 30, (4,))
    expected = reference_of("encode_tokens")(toks.clone(), shifts)
    assert torch.equal(wrong_fn("01", "encode_tokens", "in_place")(toks.clone(), shifts), expected)
    counts = torch.randint(1, 9, (5,))
    for mode in ("easy", "medium"):
        torch.testing.assert_close(wrong_fn("01", "word_probabilities", "in_place")(counts.clone(), mode),
                                   reference_of("word_probabilities")(counts, mode))


# ---- messages ----------------------------------------------------------------------------------------------------
def test_failure_message_shows_what_was_returned_and_no_recipe():
    message = rejects("rotate_text", wrong_fn("01", "rotate_text", "capitals_lowered"))
    assert "got" in message and "Hint:" in message
    hint = REGISTRY["rotate_text"].hint
    assert "%" not in hint and "index" not in hint  # says where to look, not how to write it


def test_stub_says_not_done():
    def stub(text, shift):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotDone, match="not implemented yet"):
        check("rotate_text", stub, seed=0)


def test_learner_exception_is_reported_readably():
    def crash(text, shift):
        return text[1000]

    message = rejects("rotate_text", crash)
    assert "IndexError" in message and "crash" in message


def test_rotation_twins_takes_words_of_any_length():
    """The text promises "non-empty words of any length": a signature built for three-letter words fails."""
    def three_letters(words):  # only the first three letters make the signature: 'abcd' and 'bcdf' are grouped
        groups = {}
        for w in words:
            groups.setdefault((len(w), *((ord(c) - ord(w[0])) % 26 for c in w[:3])), []).append(w)
        return sorted(sorted(g) for g in groups.values() if len(g) > 1)

    rejects("rotation_twins", three_letters, match="lengths 1, 2, 3, 4 and 5")


def test_rotate_text_leaves_digits_and_newlines_alone():
    """The text names digits and newlines among the characters left unchanged: a case holds them."""
    def digits_too(text, shift):
        rotated = reference_of("rotate_text")(text, shift)
        return "".join(str((int(c) + shift) % 10) if c.isdigit() else c for c in rotated)

    rejects("rotate_text", digits_too, match="digits 0-9 stay")
