"""Reference answers for notebook 01 (the dataset)."""

from __future__ import annotations

import string

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..data import VOCAB_EASY, VOCAB_HARD


def rotate_text(text: str, shift: int) -> str:
    """Caesar-encode any text: a-z and A-Z move forward by `shift` (any integer) within their own case, wrapping
    around; every other character (spaces, punctuation, digits, accented letters) is left alone."""
    out = []
    for c in text:
        for alphabet in (string.ascii_lowercase, string.ascii_uppercase):
            if c in alphabet:
                c = alphabet[(alphabet.index(c) + shift) % 26]
                break
        out.append(c)
    return "".join(out)


def tokenize(text: str, mode: str) -> Int[Tensor, "seq"]:
    """Token ids (int64) of any text in the vocabulary of `mode`: lower-case it, drop every character the
    vocabulary lacks, and return the index of each remaining character."""
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text.lower() if c in vocab], dtype=torch.int64)


def encode_tokens(plain_toks: Int[Tensor, "batch seq"], shifts: Int[Tensor, "batch"]) -> Int[Tensor, "batch seq"]:
    """Caesar-encode a batch of token ids: letters (ids 0-25) move by their row's shift, other ids stay."""
    shifts = einops.rearrange(shifts, "batch -> batch 1")
    return torch.where(plain_toks < 26, (plain_toks + shifts) % 26, plain_toks)


def word_probabilities(counts: Tensor, mode: str) -> Float[Tensor, "n_words"]:
    """Probability (float64) of drawing each word: proportional to its count in easy mode, uniform in medium."""
    counts = counts.double()
    weights = counts if mode == "easy" else torch.ones_like(counts)
    return weights / weights.sum()


def rotation_twins(words: list[str]) -> list[list[str]]:
    """The groups (two or more words) of `words` that are rotations of each other, each group sorted, the list of
    groups sorted."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for w in words:
        key = tuple((string.ascii_lowercase.index(c) - string.ascii_lowercase.index(w[0])) % 26 for c in w)
        groups.setdefault(key, []).append(w)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)
