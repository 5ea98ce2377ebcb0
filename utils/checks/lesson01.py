"""Checks for notebook 01 (the dataset)."""

from __future__ import annotations

import random
import string

import torch

from ..data import VOCAB_HARD
from .core import Case, Exercise, make_test, reference, register

R = "lesson01"


def _letters_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    pairs = [("b", "a"), ("a", "b"), ("z", "a"), ("a", "z"), ("q", "q")]
    pairs += [(rng.choice(string.ascii_lowercase), rng.choice(string.ascii_lowercase)) for _ in range(20)]
    return [Case((x, y)) for x, y in pairs]


def _rotate_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    texts = ["the cat sat", "xyz abc", "hello, world!", ""]
    texts += ["".join(rng.choice(string.ascii_lowercase + " .,'") for _ in range(20)) for _ in range(5)]
    return [Case((t, s)) for t in texts for s in (0, 1, 13, 25, rng.randrange(26))]


def _tokenize_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    easy = ["the and was", "zzz", " a "] + ["".join(rng.choice(string.ascii_lowercase + " ") for _ in range(12))]
    hard = ["to be, or not to be: that is\nthe question.", "'what?' said he; \"no!\""]
    hard += ["".join(rng.choice(VOCAB_HARD) for _ in range(30))]
    return [Case((t, "easy")) for t in easy] + [Case((t, "medium")) for t in easy[:2]] + [Case((t, "hard")) for t in hard]


def _clean_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    texts = [
        "To be, or not to be: that is the Question.",
        "Tab\there; digits 123 & symbols #@% (gone)\n\"Kept?\" 'yes!'",
        "ÀÉÎ accents — dashes – and “curly” quotes",
    ]
    pool = string.ascii_letters + string.digits + string.punctuation + " \n\t"
    texts += ["".join(rng.choice(pool) for _ in range(40)) for _ in range(4)]
    return [Case((t,)) for t in texts]


def _word_prob_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    counts = [torch.tensor([1985, 963, 523, 385]), torch.randint(1, 500, (100,), generator=g)]
    return [Case((c, mode)) for c in counts for mode in ("easy", "medium")]


def _plaintext_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    words = ["the", "and", "was", "you", "but", "his", "had", "for", "not"]
    cases = [Case((["the", "cat"], 32)), Case((["the", "cat", "sat"], 5)), Case((words, 32))]
    for _ in range(5):
        cases.append(Case(([rng.choice(words) for _ in range(9)], rng.randint(1, 32))))
    return cases


def _encode_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    easy = torch.randint(0, 27, (8, 32), generator=g)
    hard = torch.randint(0, 36, (5, 16), generator=g)
    return [
        Case((easy, torch.randint(0, 26, (8,), generator=g)), label="8 easy sequences, random shifts"),
        Case((hard, torch.randint(0, 26, (5,), generator=g)), label="5 hard sequences (punctuation ids 26-35)"),
        Case((easy[:2], torch.tensor([0, 25])), label="shifts 0 and 25"),
    ]


register(Exercise("char_diff", "01", reference(R, "char_diff"), _letters_cases,
                  hint="Work with indices 0-25 and take the difference modulo 26 (Python's % is never negative)."))
register(Exercise("rotate_text", "01", reference(R, "rotate_text"), _rotate_cases,
                  hint="Rotate letters a-z only; spaces and punctuation are left unchanged. z + 1 wraps to a."))
register(Exercise("tokenize", "01", reference(R, "tokenize"), _tokenize_cases,
                  hint="Return torch.int64 (long) ids; hard mode uses the 36-token vocabulary."))
register(Exercise("clean_text", "01", reference(R, "clean_text"), _clean_cases,
                  hint="Lower-case first (so capitals are kept as letters), then drop characters not in VOCAB_HARD."))
register(Exercise("word_probabilities", "01", reference(R, "word_probabilities"), _word_prob_cases,
                  hint="Easy mode draws words by count; medium mode draws them uniformly. Probabilities sum to 1."))
register(Exercise("make_plaintext", "01", reference(R, "make_plaintext"), _plaintext_cases,
                  hint="Single spaces between words, then crop the string to seq_len characters."))
register(Exercise("encode_tokens", "01", reference(R, "encode_tokens"), _encode_cases, points=2,
                  hint="Only ids 0-25 are letters; rotate those by their row's shift modulo 26 (torch.where helps)."))

test_char_diff = make_test("char_diff")
test_rotate_text = make_test("rotate_text")
test_tokenize = make_test("tokenize")
test_clean_text = make_test("clean_text")
test_word_probabilities = make_test("word_probabilities")
test_make_plaintext = make_test("make_plaintext")
test_encode_tokens = make_test("encode_tokens")
