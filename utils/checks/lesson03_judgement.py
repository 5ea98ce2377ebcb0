"""Judgement exercises of notebook 03: decisions a researcher makes, judged by their consequences on fresh data.

* `discriminating_openings`: which inputs tell "independent evidence" from "a joint (Bayes-optimal) lookup of letter
  pairs" apart? The check takes the learner's words from a fresh random set of candidates, confirms that the two
  hypotheses predict clearly different outcomes on them, and runs the model there to confirm that the measurement
  picks one (with its error over the chosen words).
* `below_bayes_verdict`: is the model really below the Bayes-optimal observer at position 1? Difference, standard
  error and verdict, on fresh sequences where an unpaired error would reach the opposite verdict.
"""

from __future__ import annotations

import random

import torch

from .core import Case, Exercise, Judged, Mistake, make_test, read_verdict, reference, register, verdict_problem

R = "lesson03_judgement"
MIN_SHARE, MIN_GAP = 0.7, 0.1  # chosen words must separate the hypotheses by 70% of the best possible, >= 0.1


# ---------------------------------------------------------------------------------------------------------------
# discriminating_openings
# ---------------------------------------------------------------------------------------------------------------


def _openings_cases(seed: int) -> list[Case]:
    from ..data import load_word_table

    table = load_word_table()
    total = sum(c for _, c in table)
    words_freq = [(w, c / total) for w, c in table]
    rng = random.Random(seed)
    cases = []
    for n, k in ((40, 6), (25, 4)):
        candidates = rng.sample([w for w, _ in table], n)
        cases.append(Case((candidates, words_freq, k), label=f"{n} random candidate words of the easy table, k={k}"))
    return cases


def _observers(words: list[str], words_freq) -> tuple[torch.Tensor, torch.Tensor]:
    from ..analysis import bayes_word_probs, independent_evidence_probs, letter_freqs_by_position

    return (independent_evidence_probs(words, letter_freqs_by_position(words_freq))[:, 1],
            bayes_word_probs(words, words_freq)[:, 1])


def _closer_to_bayes(words: list[str], indep: torch.Tensor, bayes: torch.Tensor):
    """How much closer the easy model's p(correct) at position 1 is to the Bayes observer's than to the independent
    one's on `words`, with its SE over the words."""
    from .. import load_model
    from ..analysis import word_correct_probs
    from ..stats import mean_se

    model_p = word_correct_probs(load_model("easy"), words)[:, 1].double()
    return mean_se((model_p - indep).abs() - (model_p - bayes).abs())


def _decides(est) -> bool:
    from ..stats import Z

    return abs(est.value) > Z * est.se


def _openings_compare(expected: list, got, case: Case) -> str | None:
    candidates, words_freq, k = case.args
    if not isinstance(got, (list, tuple)) or not all(isinstance(w, str) for w in got):
        return f"return a list of {k} words (strings); got {type(got).__name__}"
    chosen = [w.strip().lower() for w in got]
    if len(set(chosen)) != k or not set(chosen) <= set(candidates):
        return f"choose {k} different words from `candidates`; got {list(got)!r:.120}"
    indep, bayes = _observers(chosen, words_freq)
    best_i, best_b = _observers(list(expected), words_freq)
    gap, best = (bayes - indep).abs().mean().item(), (best_b - best_i).abs().mean().item()
    if gap < MIN_SHARE * best or gap < MIN_GAP:
        return Judged(f"on your words the two hypotheses predict p(correct) at position 1 only {gap:.2f} apart on average "
                      f"(the candidates allow {best:.2f}): whatever the model does there, the measurement can hardly tell "
                      "the hypotheses apart. Where do the two observers disagree most?",
                      "words on which the two observers predict nearly the same p(correct) at position 1, instead of those where they disagree most")
    learner = _closer_to_bayes(chosen, indep, bayes)
    # where even the best k words of these candidates cannot decide at 2 SE, choosing well is all that is asked
    if not _decides(learner) and _decides(_closer_to_bayes(list(expected), best_i, best_b)):
        return (f"the model's p(correct) on your words is as close to one hypothesis as to the other ({learner},"
                " SE over your words): the measurement does not pick one. Choose words where the predictions differ "
                "more.")
    return None


register(Exercise(
    "discriminating_openings", "03", reference(R, "discriminating_openings"), _openings_cases, kind="judgement",
    compare=_openings_compare,
    hint="An experiment tells two hypotheses apart only where they predict different outcomes: compare what each "
         "observer predicts on each candidate before choosing.",
))


# ---------------------------------------------------------------------------------------------------------------
# below_bayes_verdict
# ---------------------------------------------------------------------------------------------------------------


def _position1_p(seed: int, n: int, reshift: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence p(correct) at position 1: the easy model's and the Bayes observer's on fresh sequences; with
    `reshift`, the model's on the same plaintext under another random shift instead of the Bayes observer's."""
    from eindex import eindex

    from .. import load_model
    from ..bayes import bayes_logprobs
    from ..data import CodeBreakingDataset, rotate_tokens

    model = load_model("easy")
    ds = CodeBreakingDataset("easy", size=n, seed=seed)

    def model_p(toks, labels):
        with torch.inference_mode():
            probs = model(toks[:, :2].to(model.cfg.device)).softmax(-1).cpu().double()
        return eindex(probs[:, 1], labels, "batch [batch]")

    first = model_p(ds.toks, ds.labels)
    if reshift:
        shifts = torch.randint(0, 26, (n,), generator=torch.Generator().manual_seed(seed + 1))
        return first, model_p(rotate_tokens(ds.toks_raw, shifts), shifts)
    bayes = bayes_logprobs(ds.toks[:, :2], ds.words_freq).exp()[:, 1]
    return first, eindex(bayes, ds.labels, "batch [batch]")


def _at_z(seed: int, z: float, n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired per-sequence probabilities whose mean difference is exactly z paired standard errors."""
    g = torch.Generator().manual_seed(seed)
    base = 0.2 + 0.6 * torch.rand(n, generator=g, dtype=torch.float64)
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    d = 0.03 * (noise - noise.mean()) / noise.std()
    d = d + z * 0.03 / n**0.5
    return base, base - d


def _verdict_cases(seed: int) -> list[Case]:
    return [
        Case(_at_z(seed, 1.2), label="300 pairs whose mean difference is 1.2 standard errors"),
        Case(_at_z(seed + 1, -2.9), label="300 pairs whose mean difference is -2.9 standard errors"),
        Case(_position1_p(seed, 400, False), label="400 fresh sequences: the model's and the Bayes observer's p(correct) at position 1"),
        Case(_position1_p(seed + 7, 400, True), label="400 fresh sequences: the model's p(correct) at position 1 under the true shift and under another random shift"),
    ]


def _verdict_compare(expected: dict, got, case: Case) -> str | None:
    verdict = read_verdict(got)
    if isinstance(verdict, str):
        return verdict
    diff, se, _ = verdict
    if abs(diff - expected["difference"]) > 1e-6:
        return f"the difference {diff:.5f} is not the mean of model minus Bayes ({expected['difference']:.5f}): check the sign"
    ratio = se / expected["se"]
    if not 0.7 < ratio < 1.4:
        return (f"your standard error {se:.5f} is {ratio:.2f} times the spread of the mean difference over resampled "
                "sequences. Both numbers come from the same sequences: does your error use that?")
    return verdict_problem(got["real"], diff, se, expected)


register(Exercise(
    "below_bayes_verdict", "03", reference(R, "below_bayes_verdict"), _verdict_cases, kind="judgement",
    compare=_verdict_compare,
    hint="Both numbers of a pair come from the same sequence; ask what varies from one sample of sequences to the next.",
    mistakes=(
        Mistake("unpaired", "the standard error treats the two means as independent (their errors combined in "
                "quadrature): both numbers of a pair come from the same sequence, so the error of the mean difference "
                "comes from the per-sequence differences."),
        Mistake("sign_reversed", "the difference is Bayes minus model: the exercise asks for model minus Bayes."),
    ),
))

test_discriminating_openings = make_test("discriminating_openings")
test_below_bayes_verdict = make_test("below_bayes_verdict")

__all__ = ["test_discriminating_openings", "test_below_bayes_verdict"]
