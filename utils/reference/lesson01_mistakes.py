"""Plausible wrong answers to the exercises of notebook 01, one function per catalogued mistake
(`<exercise>__<mistake>`, see `utils.checks.core.Mistake`). The checks' diagnosis and `tests/` use the same ones."""

from __future__ import annotations

import string

import torch

from ..data import VOCAB_EASY, VOCAB_HARD
from . import lesson01 as ref

LOW, UP = string.ascii_lowercase, string.ascii_uppercase


# rotate_text ------------------------------------------------------------------------------------------------------
def rotate_text__no_wrap(text, shift):
    return "".join(chr(ord(c) + shift) if c in LOW + UP else c for c in text)


def rotate_text__rotates_everything(text, shift):
    return "".join(chr((ord(c.lower()) - 97 + shift) % 26 + 97) for c in text)


def rotate_text__capitals_lowered(text, shift):
    return ref.rotate_text(text.lower(), shift)


def rotate_text__capitals_left_alone(text, shift):
    return "".join(LOW[(LOW.index(c) + shift) % 26] if c in LOW else c for c in text)


def rotate_text__backwards(text, shift):
    return ref.rotate_text(text, -shift)


def rotate_text__abs_shift(text, shift):
    return ref.rotate_text(text, abs(shift))


def rotate_text__isalpha(text, shift):  # str.isalpha is true for é, ß, ...: they are not a-z
    return "".join(chr((ord(c.lower()) - 97 + shift) % 26 + 97) if c.isalpha() else c for c in text)


# tokenize ---------------------------------------------------------------------------------------------------------
def tokenize__int32(text, mode):
    return ref.tokenize(text, mode).int()


def tokenize__capitals_dropped(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text if c in vocab], dtype=torch.int64)


def tokenize__no_dtype(text, mode):
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab])


def tokenize__casefold(text, mode):
    return ref.tokenize(text.casefold(), mode)


def tokenize__hard_vocab_always(text, mode):
    return ref.tokenize(text, "hard")


def tokenize__easy_vocab_always(text, mode):
    return ref.tokenize(text, "easy")


# encode_tokens ----------------------------------------------------------------------------------------------------
def encode_tokens__rotates_non_letters(plain_toks, shifts):
    return (plain_toks + shifts[:, None]) % 26


def encode_tokens__no_modulo(plain_toks, shifts):
    return torch.where(plain_toks < 26, plain_toks + shifts[:, None], plain_toks)


def encode_tokens__first_shift_for_all(plain_toks, shifts):
    return torch.where(plain_toks < 26, (plain_toks + shifts[0]) % 26, plain_toks)


def encode_tokens__shift_per_position(plain_toks, shifts):
    return torch.where(plain_toks < 26, (plain_toks + shifts[None, :]) % 26, plain_toks)


def encode_tokens__in_place(plain_toks, shifts):  # right values, but the learner's input tensor is overwritten
    letters = plain_toks < 26
    plain_toks[letters] = ((plain_toks + shifts[:, None]) % 26)[letters]
    return plain_toks


# word_probabilities -----------------------------------------------------------------------------------------------
def word_probabilities__counts_in_medium(counts, mode):
    return counts.double() / counts.double().sum()


def word_probabilities__uniform_in_easy(counts, mode):
    return ref.word_probabilities(counts, "medium" if mode == "easy" else "easy")


def word_probabilities__float32(counts, mode):
    return ref.word_probabilities(counts, mode).float()


def word_probabilities__unnormalised(counts, mode):
    return counts.double() if mode == "easy" else torch.ones(len(counts), dtype=torch.float64)


def word_probabilities__in_place(counts, mode):  # right values, but the counts are divided in place
    if mode != "easy":
        counts.fill_(1)
    counts = counts.double() if not counts.is_floating_point() else counts
    counts /= counts.sum()
    return counts.double()


# rotation_twins ---------------------------------------------------------------------------------------------------
def rotation_twins__first_two_letters(words):
    groups: dict[tuple, list[str]] = {}
    for w in words:
        groups.setdefault(((LOW.index(w[1]) - LOW.index(w[0])) % 26, len(w)), []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def rotation_twins__keeps_singletons(words):
    groups: dict[tuple, list[str]] = {}
    for w in words:
        groups.setdefault(tuple((LOW.index(c) - LOW.index(w[0])) % 26 for c in w), []).append(w)
    return sorted(sorted(g) for g in groups.values())


def rotation_twins__no_modulo(words):
    groups: dict[tuple, list[str]] = {}
    for w in words:
        groups.setdefault(tuple(LOW.index(c) - LOW.index(w[0]) for c in w), []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def rotation_twins__pairs_only(words):
    out = []
    for i, a in enumerate(words):
        for b in words[i + 1 :]:
            if len(a) == len(b) and any(ref.rotate_text(a, s) == b for s in range(1, 26)):
                out.append(sorted([a, b]))
    return sorted(out)


def rotation_twins__unsorted(words):
    groups: dict[tuple, list[str]] = {}
    for w in words:
        groups.setdefault(tuple((LOW.index(c) - LOW.index(w[0])) % 26 for c in w), []).append(w)
    return [g for g in groups.values() if len(g) > 1]


def rotate_text__wraps_at_25(text, shift):
    return ''.join(LOW[(LOW.index(c) + shift) % 25] if c in LOW else UP[(UP.index(c) + shift) % 25] if c in UP else c for c in text)


def rotate_text__shift_clamped(text, shift):
    return ref.rotate_text(text, max(0, min(25, shift)))


def tokenize__unknown_as_space(text, mode):
    vocab = VOCAB_HARD if mode == 'hard' else VOCAB_EASY
    return torch.tensor([vocab.index(c if c in vocab else ' ') for c in text.lower()], dtype=torch.int64)


def encode_tokens__space_rotated(plain_toks, shifts):
    return torch.where(plain_toks <= 26, (plain_toks + shifts[:, None]) % 26, plain_toks)


def word_probabilities__softmax_of_counts(counts, mode):
    c = counts.double()
    return c.softmax(-1) if mode == 'easy' else torch.ones_like(c) / len(c)


def word_probabilities__medium_unnormalised(counts, mode):
    c = counts.double()
    return c / c.sum() if mode == 'easy' else torch.ones_like(c)


def rotation_twins__tuples(words):
    return [tuple(g) for g in ref.rotation_twins(words)]


def encode_tokens__backwards(plain_toks, shifts):
    return torch.where(plain_toks < 26, (plain_toks - shifts[:, None]) % 26, plain_toks)


def tokenize__stripped(text, mode):  # spaces at the ends of the text are tokens too
    return ref.tokenize(text.strip(), mode)


def tokenize__letters_only(text, mode):  # a filter on the 26 letters drops the space (and hard mode's punctuation)
    return ref.tokenize("".join(c for c in text.lower() if c in LOW), mode)


def _twin_groups(words):
    groups: dict[tuple, list[str]] = {}
    for w in words:
        groups.setdefault(tuple((LOW.index(c) - LOW.index(w[0])) % 26 for c in w), []).append(w)
    return [g for g in groups.values() if len(g) > 1]


def rotation_twins__words_unsorted(words):  # the list of groups is sorted, the words inside each group are not
    return sorted(_twin_groups(words))


def rotation_twins__groups_unsorted(words):  # each group is sorted, the list of groups is not
    return [sorted(g) for g in _twin_groups(words)]


def rotate_text__capitals_rotated_as_lower(text, shift):  # A-Z looked up in the lower-case alphabet
    return "".join(LOW[(LOW.index(c.lower()) + shift) % 26] if c.lower() in LOW and c.isascii() else c for c in text)


def tokenize__medium_is_hard(text, mode):  # `VOCAB_EASY if mode == "easy" else VOCAB_HARD`
    return ref.tokenize(text, "easy" if mode == "easy" else "hard")


def rotation_twins__signature_sign(words):  # each word rotated forward by its first letter's index, not back
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(ref.rotate_text(w, LOW.index(w[0])), []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def encode_tokens__shift_reduced_not_sum(plain_toks, shifts):  # shifts taken mod 26, the sum left unwrapped
    return torch.where(plain_toks < 26, plain_toks + (shifts % 26)[:, None], plain_toks)


def rotate_text__one_alphabet_52(text, shift):  # a-z then A-Z as one alphabet: z + 1 is A
    abc = LOW + UP
    return "".join(abc[(abc.index(c) + shift) % 52] if c in abc else c for c in text)


def rotate_text__capitals_no_wrap(text, shift):  # lower case wraps, capitals move by their code point
    return "".join(LOW[(LOW.index(c) + shift) % 26] if c in LOW else chr(ord(c) + shift) if c in UP else c for c in text)


def word_probabilities__floor_division(counts, mode):  # integer counts // their total: 0 (or 1) everywhere
    weights = counts if mode == "easy" else torch.ones_like(counts)
    return (weights / weights.sum() if weights.is_floating_point() else weights // weights.sum()).double()
