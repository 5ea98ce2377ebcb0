"""Checks for notebook 03 (positions 0 and 1)."""

from __future__ import annotations

import random

import torch

from .. import analysis
from ..data import load_word_table
from .core import Case, Exercise, Ref, make_test, reference, register

R = "lesson03"


def _words_freq(rng: random.Random, n: int, mode: str = "easy") -> list[tuple[str, float]]:
    """n words of the table (a random subset, or the top n), with easy (count) or medium (uniform) frequencies."""
    table = load_word_table()
    rows = rng.sample(table, n) if n < len(table) else table
    weights = [c if mode == "easy" else 1 for _, c in rows]
    total = sum(weights)
    return [(w, x / total) for (w, _), x in zip(rows, weights)]


def _model_cases(seed: int) -> list[Case]:
    return [Case((Ref("model", "easy"),), label="the trained easy model")]


def _freq_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [
        Case((_words_freq(rng, 100, "easy"),), label="the 100-word table, easy frequencies"),
        Case((_words_freq(rng, 100, "medium"),), label="the 100-word table, uniform frequencies"),
        Case((_words_freq(rng, 12, "easy"),), label="12 random words"),
        Case(([("the", 0.75), ("abc", 0.25)],), label="[('the', 0.75), ('abc', 0.25)]"),
    ]


def _probs_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = [Case((torch.randn(26, 26, generator=g).mul(2).softmax(-1),), label=f"random probs #{i}") for i in range(3)]
    peaked = torch.full((26, 26), 1e-3)
    peaked[torch.arange(26), (torch.arange(26) - 19) % 26] = 1.0  # every row says "the first letter was t"
    cases.append(Case((peaked / peaked.sum(-1, keepdim=True),), label="rows all pointing at plaintext 't'"))
    return cases


def _word_list_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [
        Case((["the", "and"],)),
        Case(([w for w, _ in _words_freq(rng, 7)],)),
        Case(([w for w, _ in load_word_table()],), label="the 100 words of the table"),
    ]


def _rotation_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for words in (["the", "and", "you"], [w for w, _ in _words_freq(rng, 10)]):
        toks, shifts = analysis.rotated_word_tokens(words)
        cases.append(Case((Ref("model", "easy"), toks, shifts), label=f"all rotations of {words}"))
    return cases


def _evidence_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for n, mode in ((100, "easy"), (100, "medium"), (15, "easy")):
        wf = _words_freq(rng, n, mode)
        words = [w for w, _ in wf]
        cases.append(Case((words, analysis.letter_freqs_by_position(wf)), label=f"{n} words, {mode} frequencies"))
    return cases


def _bayes_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for n, mode in ((100, "easy"), (100, "medium"), (15, "easy")):
        wf = _words_freq(rng, n, mode)
        cases.append(Case(([w for w, _ in wf], wf), label=f"{n} words, {mode} frequencies"))
    wf = [("the", 0.7), ("man", 0.2), ("dry", 0.1)]
    cases.append(Case((["the", "man"], wf), label=f"words_freq={wf}"))
    return cases


register(Exercise("first_char_probs", "03", reference(R, "first_char_probs"), _model_cases,
                  hint="Feed a batch of 26 one-token sequences (torch.arange(26) as a [26, 1] tensor) and softmax "
                       "the logits at position 0 over the 26 shifts."))
register(Exercise("letter_freqs_by_position", "03", reference(R, "letter_freqs_by_position"), _freq_cases,
                  hint="Add each word's frequency (not 1) to freqs[j, index of its j-th letter]; each row sums to 1."))
register(Exercise("implied_first_letter_probs", "03", reference(R, "implied_first_letter_probs"), _probs_cases,
                  hint="Plaintext letter L encoded with shift s gives character c = L + s, so the model's weight on "
                       "L when it sees c is probs[c, (c - L) % 26]; average that over c."))
register(Exercise("rotated_word_tokens", "03", reference(R, "rotated_word_tokens"), _word_list_cases,
                  hint="Row w * 26 + s is word w rotated by s (word-major order: all 26 rotations of the first word "
                       "come first). Return (toks, shifts), both int64."))
register(Exercise("rotation_averaged_probs", "03", reference(R, "rotation_averaged_probs"), _rotation_cases,
                  hint="Softmax the logits, pick each row's correct shift with eindex(probs, shifts, "
                       "'word_rot seq [word_rot]'), then average over the 26 rotations: '(word rot) seq -> word seq'."))
register(Exercise("independent_evidence_probs", "03", reference(R, "independent_evidence_probs"), _evidence_cases,
                  points=2,
                  hint="Read each word unrotated (correct shift 0). Shift s decodes letter j as (letter - s) % 26; "
                       "add log letter_freqs[j, that letter] over the letters seen so far (a cumsum), then softmax "
                       "over the 26 shifts and keep shift 0."))
register(Exercise("bayes_word_probs", "03", reference(R, "bayes_word_probs"), _bayes_cases, points=2,
                  hint="p(prefix) is the total frequency of the words starting with it. For each shift s, decode the "
                       "prefix with s and look up its p; normalise over the 26 shifts and keep s = 0. "
                       "utils.bayes.prefix_logprobs gives the log p of every 1-, 2- and 3-letter prefix."))

test_first_char_probs = make_test("first_char_probs")
test_letter_freqs_by_position = make_test("letter_freqs_by_position")
test_implied_first_letter_probs = make_test("implied_first_letter_probs")
test_rotated_word_tokens = make_test("rotated_word_tokens")
test_rotation_averaged_probs = make_test("rotation_averaged_probs")
test_independent_evidence_probs = make_test("independent_evidence_probs")
test_bayes_word_probs = make_test("bayes_word_probs")
