"""Reference answers for notebook 01 (the dataset)."""

from __future__ import annotations

import string

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..data import VOCAB_EASY, VOCAB_HARD


def char_diff(x: str, y: str) -> int:
    """The shift that takes letter y to letter x: char_diff("b", "a") == 1, char_diff("a", "b") == 25."""
    return (string.ascii_lowercase.index(x) - string.ascii_lowercase.index(y)) % 26


def rotate_text(text: str, shift: int) -> str:
    """Move every letter a-z forward by `shift` (wrapping z -> a); leave every other character alone."""
    letters = string.ascii_lowercase
    return "".join(letters[(letters.index(c) + shift) % 26] if c in letters else c for c in text)


def tokenize(text: str, mode: str) -> Int[Tensor, "seq"]:
    """Token ids (int64) of `text`: the index of each character in the mode's vocabulary."""
    vocab = VOCAB_HARD if mode == "hard" else VOCAB_EASY
    return torch.tensor([vocab.index(c) for c in text], dtype=torch.int64)


def clean_text(text: str) -> str:
    """Lower-case, then keep only the 36 hard-mode characters (a-z, newline, space, . , : ; ? ! ' ")."""
    allowed = set(VOCAB_HARD)
    return "".join(c for c in text.lower() if c in allowed)


def word_probabilities(counts: Int[Tensor, "n_words"], mode: str) -> Float[Tensor, "n_words"]:
    """Probability (float64) of drawing each word: proportional to its count in easy mode, uniform in medium."""
    counts = counts.double()
    weights = counts if mode == "easy" else torch.ones_like(counts)
    return weights / weights.sum()


def make_plaintext(words: list[str], seq_len: int) -> str:
    """Join words with single spaces and crop to seq_len characters."""
    return " ".join(words)[:seq_len]


def encode_tokens(plain_toks: Int[Tensor, "batch seq"], shifts: Int[Tensor, "batch"]) -> Int[Tensor, "batch seq"]:
    """Caesar-encode a batch of token ids: letters (ids 0-25) move by their row's shift, other ids stay."""
    shifts = einops.rearrange(shifts, "batch -> batch 1")
    return torch.where(plain_toks < 26, (plain_toks + shifts) % 26, plain_toks)
