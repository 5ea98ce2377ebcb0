"""Judgement exercises of notebook 07, graded by their consequences.

- `falsify_monotone`: the learner picks a keep pattern that should, by the claim "keeping more of the true word never
  recovers less", do at least as well as (1, 1, 1, 1); the check runs it on a fresh dataset over five source seeds and
  accepts it only if it recovers less than (1, 1, 1, 1) by more than two standard errors (a falsification that holds
  up on data the learner never saw).
- `difference_is_real`: the learner computes a difference between two conditions measured on the same sequences, its
  standard error, and says whether it is real; the check feeds fresh data built so that the usual slips (treating the
  two conditions as independent, or positions as independent samples, or ignoring the sign) reach the wrong verdict.

Answers are plain values (a list of four ints; a dict of two floats and a bool), so the grader can ship them between
processes; `compare` runs in the grader's own process.
"""

from __future__ import annotations

import functools
import math

import torch

from .core import Case, Exercise, Judged, Mistake, Ref, SeededCase, _build_ref, make_test, read_verdict, reference, register

R = "lesson07_judgement"
BASELINE = (1, 1, 1, 1)
TAKEN = (1, 1, 3, 1)  # the lesson's own example of a falsifying pattern: the exercise asks for another
CHECK_SIZE = 400  # fresh sequences per check: enough that a real falsification stands at several standard errors
SEQ_LEN = 16  # the first four words: loss recovered lives at the first word (lesson 07, section 3)



# ---------------------------------------------------------------------------------------------------------
# falsify_monotone
# ---------------------------------------------------------------------------------------------------------


def _as_keep(got) -> tuple[int, ...] | str:
    if isinstance(got, torch.Tensor):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) or len(got) != 4:
        return f"return four keep levels (slots A, B, C, space) as a tuple or list, got {got!r}"
    try:
        keep = tuple(int(k) for k in got)
    except (TypeError, ValueError):
        return f"return four integers from 0 to 3, got {got!r}"
    if any(k != g for k, g in zip(keep, got)) or not all(0 <= k <= 3 for k in keep):
        return f"return four integers from 0 to 3, got {got!r}"
    return keep


@functools.lru_cache(maxsize=4)
def _fresh_scrubber(seed: int):
    from ..causal import Scrubber
    from ..data import CodeBreakingDataset

    data = CodeBreakingDataset("easy", size=CHECK_SIZE, seed=10_000 + seed, seq_len=SEQ_LEN)
    return Scrubber(_build_ref(Ref("model", "easy")), data, seeds=range(5))


def judge_falsification(expected, got, case: SeededCase) -> str | None:
    keep = _as_keep(got)
    if isinstance(keep, str):
        return keep
    if any(k < b for k, b in zip(keep, BASELINE)) or keep == BASELINE:
        return Judged(f"{keep} does not keep at least as much of the true word as {BASELINE} in every slot (and more in "
                      "one), so the claim makes no prediction about it: it cannot falsify the claim",
                      'a pattern that keeps less than (1, 1, 1, 1) in some slot, or no more in any: the claim predicts nothing about it')
    if keep == TAKEN:
        return Judged(f"{TAKEN} is the lesson's own example (the exercise says it is taken): find another pattern",
                      "the lesson's own example (1, 1, 3, 1), which the exercise rules out")
    scrubber = _fresh_scrubber(case.seed)
    diff = scrubber.recovered_difference(BASELINE, keep)
    ours, base = scrubber.recovered(keep), scrubber.recovered(BASELINE)
    if diff.low > 0:
        return None
    return (f"on a fresh dataset (seed {scrubber.dataset.seed}), {keep} recovers {ours} and {BASELINE} {base}: "
            f"the shortfall {diff} (SE over 5 source seeds and sequences) is not above 0 at 2 SE, so this scrub does "
            "not falsify the claim. Look at which slots read more than one letter, and what a slot that keeps more "
            "than its neighbour does to the word the neighbour holds")


def _falsify_cases(seed: int) -> list[SeededCase]:
    return [SeededCase(label=f"your pattern, run on a fresh easy dataset ({CHECK_SIZE} sequences of {SEQ_LEN} positions, 5 source seeds)",
                       seed=seed % 1000)]


register(Exercise(
    "falsify_monotone", "07", reference(R, "falsify_monotone"), _falsify_cases, kind="judgement",
    compare=judge_falsification,
    hint="The claim predicts that any pattern keeping at least as much as (1, 1, 1, 1) in every slot recovers at "
         "least as much. Which slots does the model read, and what does it see when they hold different words?",
))


# ---------------------------------------------------------------------------------------------------------
# difference_is_real
# ---------------------------------------------------------------------------------------------------------


def _paired(g: torch.Generator, batch: int, seq: int, z: float, seq_sd: float, shared_sd: float, token_sd: float):
    """Losses of two conditions on the same sequences, whose per-sequence difference has mean exactly z standard
    errors: a shared per-sequence level (paired), a per-sequence offset of the difference common to all positions
    (positions are not independent), and per-token noise."""
    level = torch.rand(batch, 1, generator=g, dtype=torch.float64) * shared_sd + 0.1
    offset = torch.randn(batch, 1, generator=g, dtype=torch.float64) * seq_sd
    noise_a, noise_b = (torch.randn(batch, seq, generator=g, dtype=torch.float64) * token_sd for _ in range(2))
    delta = (offset + noise_a - noise_b).mean(-1)
    se = delta.std() / math.sqrt(batch)
    shift = z * se - delta.mean()
    a = level + offset + noise_a + shift
    b = level + noise_b
    return a.float(), b.float()


def _difference_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for z, seq_sd, shared_sd, token_sd, label in (
        (5.0, 0.01, 1.0, 0.02, "a small difference under a large level shared by both conditions"),
        (0.8, 0.05, 0.3, 0.02, "a difference whose size varies from sequence to sequence, not from position to position"),
        (-4.0, 0.01, 0.5, 0.02, "condition a below condition b"),
        (1.2, 0.002, 0.2, 0.05, "noisy positions, a small difference"),
    ):
        batch = int(torch.randint(300, 600, (), generator=g))
        a, b = _paired(g, batch, 32, z, seq_sd, shared_sd, token_sd)
        cases.append(Case((a, b), label=f"{label} ({batch} sequences x 32 positions)"))
    return cases


def judge_difference(expected: dict, got, case: Case) -> str | None:
    verdict = read_verdict(got, tensor_verdict=True)
    if isinstance(verdict, str):
        return verdict
    d, se, _ = verdict
    if not math.isclose(d, expected["difference"], rel_tol=1e-3, abs_tol=1e-6):
        return (f"'difference' is {d:.6g}, the mean loss of a minus b is {expected['difference']:.6g}: check the "
                "order (a minus b) and that you average over every sequence and position")
    ratio = se / expected["se"] if expected["se"] else math.inf
    if not 0.75 <= ratio <= 1.33:
        return (f"'se' is {se:.3g}, about {ratio:.2g} times what the data support ({expected['se']:.3g}): ask what "
                "the independent units are (sequences or tokens?) and whether the two conditions share them")
    if bool(got["real"]) != expected["real"]:
        return (f"'real' is {bool(got['real'])}, but the difference is {abs(d) / expected['se']:.1f} standard errors "
                "from zero: look at how your verdict treats the size and the sign of the difference")
    return None


register(Exercise(
    "difference_is_real", "07", reference(R, "difference_is_real"), _difference_cases, kind="judgement",
    compare=judge_difference,
    mistakes=(
        Mistake("tokens_as_independent", "your standard error treats every token as an independent observation; "
                "the positions of a sequence move together, so the independent unit is the sequence (average each "
                "sequence's difference over its positions first)."),
        Mistake("unpaired", "your standard error combines the two conditions' errors as if they came from different "
                "sequences; both were measured on the same sequences, so take the error of the per-sequence "
                "difference."),
        Mistake("positions_as_units", "your standard error treats the 32 positions as the independent units (the "
                "spread of the per-position mean differences); the sequences are drawn independently, so take the "
                "spread over sequences."),
        Mistake("b_minus_a", "the difference is b minus a; the exercise asks for a minus b."),
        Mistake("signed_verdict", "your verdict compares the signed difference with 2 SE, so a difference far below "
                "zero is called not real; compare its size (the absolute value)."),
        Mistake("one_se", "your verdict's threshold is too low (about 1 standard error): a difference 1.2 standard "
                "errors from zero is called real; the text's rule is more than 2 standard errors from zero."),
        Mistake("sd_not_se", "your 'se' is the standard deviation of the per-sequence differences; the standard "
                "error of their mean divides it by the square root of the number of sequences."),
    ),
    hint="Both conditions were measured on the same sequences. What is one independent observation here, and what "
         "is the spread of the quantity you average?",
))

test_falsify_monotone = make_test("falsify_monotone")
test_difference_is_real = make_test("difference_is_real")

__all__ = ["test_falsify_monotone", "test_difference_is_real"]
