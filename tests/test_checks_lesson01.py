"""Every lesson-01 check accepts the reference and rejects plausible wrong answers."""

import string

import pytest
import torch

from helpers import accepts, reference_of, rejects
from utils.checks import ExerciseNotDone, check

NAMES = ["char_diff", "rotate_text", "tokenize", "clean_text", "word_probabilities", "make_plaintext", "encode_tokens"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_char_diff_rejects_no_modulo():
    rejects("char_diff", lambda x, y: ord(x) - ord(y), match="expected 25, got -1")


def test_char_diff_rejects_reversed():
    rejects("char_diff", lambda x, y: (ord(y) - ord(x)) % 26)


def test_rotate_text_rejects_rotating_punctuation():
    def wrong(text, shift):
        return "".join(chr((ord(c) - 97 + shift) % 26 + 97) for c in text)

    rejects("rotate_text", wrong)


def test_rotate_text_rejects_no_wrap():
    rejects("rotate_text", lambda text, shift: "".join(chr(ord(c) + shift) if c.isalpha() else c for c in text))


def test_tokenize_rejects_int32():
    ref = reference_of("tokenize")
    rejects("tokenize", lambda text, mode: ref(text, mode).int(), match="dtype")


def test_tokenize_rejects_easy_vocab_in_hard_mode():
    def wrong(text, mode):
        vocab = list(string.ascii_lowercase) + [" "] + ["\n", ".", ",", ":", ";", "?", "!", "'", '"']
        return torch.tensor([vocab.index(c) for c in text])

    rejects("tokenize", wrong)


def test_clean_text_rejects_dropping_capitals():
    allowed = set(string.ascii_lowercase + "\n .,:;?!'\"")
    rejects("clean_text", lambda text: "".join(c for c in text if c in allowed))


def test_word_probabilities_rejects_counts_in_medium():
    rejects("word_probabilities", lambda counts, mode: counts.double() / counts.sum())


def test_word_probabilities_rejects_unnormalised():
    rejects("word_probabilities", lambda counts, mode: counts.double() if mode == "easy" else torch.ones(len(counts)))


def test_word_probabilities_rejects_float32():
    ref = reference_of("word_probabilities")
    rejects("word_probabilities", lambda counts, mode: ref(counts, mode).float(), match="float64")


def test_make_plaintext_rejects_trailing_space_join():
    rejects("make_plaintext", lambda words, seq_len: "".join(w + " " for w in words)[: seq_len + 1])


def test_encode_tokens_rejects_rotating_spaces():
    rejects("encode_tokens", lambda toks, shifts: (toks + shifts[:, None]) % 26)


def test_encode_tokens_rejects_one_shift_for_all():
    ref = reference_of("encode_tokens")
    rejects("encode_tokens", lambda toks, shifts: ref(toks, shifts[:1].expand(len(shifts))))


def test_stub_says_not_done():
    def stub(x, y):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotDone, match="not implemented yet"):
        check("char_diff", stub, seed=0)


def test_learner_exception_is_reported_readably():
    def crash(text, shift):
        return text[1000]

    message = rejects("rotate_text", crash)
    assert "IndexError" in message and "crash" in message
