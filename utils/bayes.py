"""Ideal observers: the exact Bayes-optimal posterior over shifts (easy/medium) and a letter-frequency baseline.

Easy/medium sequences are independent words of three letters at fixed positions (letters at 4k, 4k+1,
4k+2, a space at 4k+3) and the shift is uniform, so the posterior over the shift X after position j is

    p(X | prefix) ∝ prod over words seen so far of p(that word's visible letters, decoded with X)

where a partly seen word contributes the total frequency of the words that start with its visible letters.
No predictor can have lower expected cross-entropy on this data: it is the task's physical limit.
"""

from __future__ import annotations

from typing import Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .data import encode


def prefix_logprobs(
    words_freq: Sequence[tuple[str, float]],
) -> tuple[Float[Tensor, "26"], Float[Tensor, "26 26"], Float[Tensor, "26 26 26"]]:
    """log p(first letter), log p(first two letters), log p(word), under the word distribution."""
    p3 = torch.zeros(26, 26, 26, dtype=torch.float64)
    for word, freq in words_freq:
        a, b, c = encode(word).tolist()
        p3[a, b, c] += freq
    p3 = p3 / p3.sum()
    p2 = p3.sum(-1)
    p1 = p2.sum(-1)
    return p1.log(), p2.log(), p3.log()


def bayes_logprobs(
    toks: Int[Tensor, "batch seq"], words_freq: Sequence[tuple[str, float]]
) -> Float[Tensor, "batch seq 26"]:
    """Exact log p(shift | tokens up to each position) for easy/medium token sequences."""
    lp1, lp2, lp3 = prefix_logprobs(words_freq)
    batch, seq_len = toks.shape
    n_words = -(-seq_len // 4)
    padded = torch.zeros(batch, n_words * 4, dtype=torch.int64)
    padded[:, :seq_len] = toks.cpu()
    if (padded[:, 3::4][:, : (seq_len // 4)] != 26).any() or (toks[:, [i for i in range(seq_len) if i % 4 != 3]] >= 26).any():
        raise ValueError("bayes_logprobs needs easy/medium sequences: three letters, then a space, repeated.")
    shifts = torch.arange(26)
    # plain[b, x, w, l] = letter l of word w of sequence b, decoded with shift x
    letters = einops.rearrange(padded, "batch (word char) -> batch word char", char=4)[..., :3]
    plain = (letters.unsqueeze(1) - shifts.view(1, 26, 1, 1)) % 26
    a, b, c = plain.unbind(-1)
    whole = lp3[a, b, c]  # [batch shift word]
    # log-lik of the complete words before word w (an exclusive cumulative sum; -inf stays -inf)
    before = torch.nn.functional.pad(torch.cumsum(whole, dim=-1)[..., :-1], (1, 0))
    partial = torch.stack([lp1[a], lp2[a, b], lp3[a, b, c], lp3[a, b, c]], dim=-1)  # by offset in word
    loglik = before.unsqueeze(-1) + partial  # [batch shift word offset]
    loglik = einops.rearrange(loglik, "batch shift word offset -> batch (word offset) shift")[:, :seq_len]
    return loglik.log_softmax(-1)


def letter_frequency_logprobs(
    toks: Int[Tensor, "batch seq"], letter_freqs: Float[Tensor, "26"]
) -> Float[Tensor, "batch seq 26"]:
    """log p(shift | letters so far) if letters were drawn independently from `letter_freqs`.

    The best any predictor can do that ignores the order and position of letters: the hard-mode baseline.
    Non-letter tokens (ids >= 26) carry no evidence.
    """
    logf = letter_freqs.double().clamp_min(1e-12).log()
    shifts = torch.arange(26)
    plain = (toks.cpu().unsqueeze(-1) - shifts) % 26  # [batch seq shift]
    evidence = torch.where((toks.cpu() < 26).unsqueeze(-1), logf[plain], torch.zeros(()).double())
    return torch.cumsum(evidence, dim=1).log_softmax(-1)
