"""Reference answers to lesson 03's judgement exercises (decisions, checked by their consequences)."""

from __future__ import annotations

from typing import Sequence

from jaxtyping import Float
from torch import Tensor

from ..analysis import bayes_word_probs, independent_evidence_probs, letter_freqs_by_position
from ..stats import Z, mean_se


def discriminating_openings(candidates: Sequence[str], words_freq: Sequence[tuple[str, float]], k: int) -> list[str]:
    """The k candidate words on whose first two letters the two hypotheses (independent evidence; joint, Bayes-optimal
    use of the pair) predict the most different p(correct) at position 1."""
    indep = independent_evidence_probs(candidates, letter_freqs_by_position(words_freq))[:, 1]
    bayes = bayes_word_probs(candidates, words_freq)[:, 1]
    order = (bayes - indep).abs().argsort(descending=True)
    return [candidates[i] for i in order[:k].tolist()]


def below_bayes_verdict(model_p: Float[Tensor, "batch"], bayes_p: Float[Tensor, "batch"]) -> dict:
    """mean(model - Bayes) over the sequences, its paired standard error, and whether it is real (beyond 2 SE)."""
    est = mean_se(model_p.double() - bayes_p.double())
    return {"difference": est.value, "se": est.se, "real": abs(est.value) > Z * est.se}
