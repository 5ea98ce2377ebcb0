"""The Bayes-optimal posterior against brute-force enumeration, and the letter-frequency baseline."""

import itertools
import math

import torch

from utils.bayes import bayes_logprobs, letter_frequency_logprobs
from utils.data import encode, rotate


def brute_force_posterior(text: str, words_freq) -> torch.Tensor:
    """p(shift | text[:j+1]) by enumerating every plaintext of two words and every shift."""
    seq_len = len(text)
    post = torch.zeros(seq_len, 26, dtype=torch.float64)
    for (w1, f1), (w2, f2), shift in itertools.product(words_freq, words_freq, range(26)):
        cipher = rotate(f"{w1} {w2} ", shift)[:seq_len]
        for j in range(seq_len):
            if cipher[: j + 1] == text[: j + 1]:
                post[j, shift] += f1 * f2 / 26
    return post / post.sum(-1, keepdim=True)


def test_bayes_matches_brute_force():
    words_freq = [("the", 0.4), ("and", 0.25), ("tho", 0.2), ("ann", 0.1), ("bed", 0.05)]
    for plain, shift in [("the bed", 3), ("and tho", 0), ("bed the", 17), ("ann and", 25)]:
        cipher = rotate(plain, shift)
        got = bayes_logprobs(encode(cipher)[None], words_freq)[0].exp()
        expected = brute_force_posterior(cipher, words_freq)
        assert torch.allclose(got, expected, atol=1e-10), (plain, shift)


def test_bayes_handles_seq_len_not_multiple_of_four():
    words_freq = [("the", 0.5), ("and", 0.5)]
    toks = encode(rotate("the and th", 5))[None]
    assert bayes_logprobs(toks, words_freq).shape == (1, 10, 26)


def test_letter_frequency_baseline_matches_product_of_frequencies():
    freqs = torch.rand(26, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    freqs /= freqs.sum()
    toks = encode("ab, c", "hard")[None]
    got = letter_frequency_logprobs(toks, freqs)[0].exp()
    for shift in range(26):
        likelihood = freqs[(0 - shift) % 26] * freqs[(1 - shift) % 26] * freqs[(2 - shift) % 26]
        total = sum(freqs[(0 - s) % 26] * freqs[(1 - s) % 26] * freqs[(2 - s) % 26] for s in range(26))
        assert math.isclose(got[4, shift].item(), (likelihood / total).item(), rel_tol=1e-9)
    assert torch.allclose(got[2], got[3])  # punctuation and spaces carry no evidence
