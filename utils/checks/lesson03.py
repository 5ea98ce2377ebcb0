"""Checks for notebook 03 (positions 0 and 1)."""

from __future__ import annotations

import random

import torch

from .. import analysis
from ..data import load_word_table
from .core import Case, Exercise, Mistake, Ref, _build_ref, make_test, reference, register

R = "lesson03"


def _words_freq(rng: random.Random, n: int, mode: str = "easy") -> list[tuple[str, float]]:
    """n words of the table (a random subset, or the top n), with easy (count) or medium (uniform) frequencies."""
    table = load_word_table()
    rows = rng.sample(table, n) if n < len(table) else table
    weights = [c if mode == "easy" else 1 for _, c in rows]
    total = sum(weights)
    return [(w, x / total) for (w, _), x in zip(rows, weights)]


def _model_cases(seed: int) -> list[Case]:
    # several models, so that a function that ignores its `model` argument fails
    return [Case((Ref("model", mode),), label=f"the trained {mode} model") for mode in ("easy", "medium", "hard")]


def _freq_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [
        Case((_words_freq(rng, 100, "easy"),), label="the 100-word table, easy frequencies"),
        Case((_words_freq(rng, 100, "medium"),), label="the 100-word table, uniform frequencies"),
        Case((_words_freq(rng, 12, "easy"),), label="12 random words"),
        Case(([("the", 0.75), ("abc", 0.25)],), label="[('the', 0.75), ('abc', 0.25)]"),
        Case((_words_freq(rng, 100, "easy")[:10],), label="the 10 most frequent words, frequencies not summing to 1"),
    ]


def _probs_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    # built as notebook 03 builds probs0 (first_char_probs of a trained model), from the medium and hard models: the
    # easy model's table would show, in a failure message, the answer to the prediction "p(shift 0) after t"
    cases = [Case((analysis.first_char_probs(_build_ref(Ref("model", mode))).detach().clone(),),
                  label=f"the trained {mode} model's first_char_probs (as notebook 03 builds probs0)")
             for mode in ("medium", "hard")]
    cases += [Case((torch.randn(26, 26, generator=g).mul(2).softmax(-1),), label=f"random probs #{i}") for i in range(3)]
    peaked = torch.full((26, 26), 1e-3)
    peaked[torch.arange(26), (torch.arange(26) - 19) % 26] = 1.0  # every row says "the first letter was t"
    cases.append(Case((peaked / peaked.sum(-1, keepdim=True),), label="rows all pointing at plaintext 't'"))
    cases.append(Case((torch.randn(26, 26, generator=g, dtype=torch.float64).softmax(-1),), label="float64 probs"))
    return cases


def _word_list_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [
        Case((["the"],), label="a single word ['the']"),
        Case((["the", "and"],)),
        Case(([w for w, _ in _words_freq(rng, 7)],)),
        Case(([w for w, _ in load_word_table()],), label="the 100 words of the table"),
    ]


def _rotation_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for words, mode in ((["the", "and", "you"], "easy"), ([w for w, _ in _words_freq(rng, 10)], "easy"),
                        ([w for w, _ in _words_freq(rng, 6)], "medium")):
        toks, shifts = analysis.rotated_word_tokens(words)
        cases.append(Case((Ref("model", mode), toks, shifts), label=f"the {mode} model, all rotations of {words}"))
    return cases


def _evidence_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for n, mode in ((100, "easy"), (100, "medium"), (15, "easy")):
        wf = _words_freq(rng, n, mode)
        if mode == "easy":
            # counts jittered by up to +-30%: with the course's exact frequencies the failure message ("expected
            # ..., got ...") could show the answer to the prediction "independent evidence after th"
            wf = [(w, f * rng.uniform(0.7, 1.3)) for w, f in wf]
            total = sum(f for _, f in wf)
            wf = [(w, f / total) for w, f in wf]
        words = [w for w, _ in wf]
        cases.append(Case((words, analysis.letter_freqs_by_position(wf)), label=f"{n} words, {mode} frequencies" + (" (jittered)" if mode == "easy" else "")))
    return cases


register(Exercise(
    "first_char_probs", "03", reference(R, "first_char_probs"), _model_cases,
    hint="Check that each row is a probability distribution over the shifts (rows sum to 1), that row c is the "
         "first character c, and that you used the model you were given.",
    mistakes=(
        Mistake("logits", "you returned logits: the exercise asks for probabilities over the shifts."),
        Mistake("log_probs", "you returned log-probabilities: the exercise asks for probabilities."),
        Mistake("softmax_over_characters", "the softmax ran over the 26 characters (the batch), not over the shifts."),
        Mistake("transposed", "rows and columns are swapped: row c should be the first character, column s the shift."),
        Mistake("one_sequence", "the 26 letters were read as one sequence of length 26, so position j saw letters "
                "0..j: each letter must be its own one-token sequence."),
    ),
))
register(Exercise(
    "letter_freqs_by_position", "03", reference(R, "letter_freqs_by_position"), _freq_cases,
    hint="Check the shape ([3, 26]), the dtype, whether each row sums to 1, and how much each word contributes.",
    mistakes=(
        Mistake("counts_words", "every word counted once: a word contributes its probability, not 1."),
        Mistake("unnormalised", "the rows do not sum to 1 when the frequencies given do not: normalise each row."),
        Mistake("float32", "the frequencies are float32: the exercise asks for float64."),
        Mistake("transposed", "the table is [26, 3]: rows are the positions in the word."),
    ),
))
register(Exercise(
    "implied_first_letter_probs", "03", reference(R, "implied_first_letter_probs"), _probs_cases,
    hint="For one first character c, check which column of probs you read for plaintext letter L, and that you "
         "average (not sum) over c, keeping the dtype you were given.",
    mistakes=(
        Mistake("wrong_sign", "the column is L - c instead of c - L: the shift that turns L into c is c - L."),
        Mistake("no_realignment", "the rows were averaged as they are, without re-indexing each by plaintext letter."),
        Mistake("sum_not_mean", "the result sums to 26: average over the first characters, do not add them up."),
        Mistake("float32_always", "float64 input came back as float32: keep the dtype of `probs`."),
        Mistake("c_plus_L", "the column is c + L: the shift that turns plaintext letter L into character c is "
                "c - L (mod 26)."),
        Mistake("mean_over_letters", "each re-indexed row was averaged over its 26 plaintext letters: average over "
                "the 26 first characters c (the rows), one mean per letter L."),
    ),
))
register(Exercise(
    "rotated_word_tokens", "03", reference(R, "rotated_word_tokens"), _word_list_cases,
    hint="Check the order of the rows (which rows hold word 0?), the direction of the rotation, the shifts that go "
         "with the rows, and the dtypes.",
    mistakes=(
        Mistake("shift_major", "the rows are shift-major (all words with shift 0 first): the text asks for "
                "word-major order."),
        Mistake("shifts_in_word_order", "the tokens are word-major but the `shifts` tensor is not: shifts[w * 26 + s] "
                "must be s."),
        Mistake("backwards", "the words were rotated backwards: encoding adds the shift."),
        Mistake("int32", "the tensors are not int64."),
        Mistake("shifts_negated", "the shifts listed are the negatives (mod 26) of the ones used: each row's shift is the one that encoded it."),
        Mistake("no_modulo", "some letter ids came out above 25: adding the shift must wrap around the alphabet (mod "
                "26)."),
        Mistake("shifts_from_1", "the shifts run 1..26: row w * 26 + s is word w with shift s, for s = 0..25."),
    ),
))
register(Exercise(
    "rotation_averaged_probs", "03", reference(R, "rotation_averaged_probs"), _rotation_cases,
    hint="Check that you average probabilities (not log-probs) of each row's own shift, that the 26 rows you average "
         "together are the rotations of one word, and that you used the model you were given.",
    mistakes=(
        Mistake("log_probs", "you averaged log-probabilities: the exercise asks for probabilities."),
        Mistake("rot_word_grouping", "the rows were grouped as if they were shift-major: the 26 rotations of a word "
                "are consecutive rows."),
        Mistake("top_prob", "you took the model's highest probability, not the probability of the correct shift."),
        Mistake("shift_zero", "you took the probability of shift 0 in every row: each row's correct shift is in "
                "`shifts`."),
        Mistake("softmax_over_positions", "the softmax ran over the positions (dim 1), not over the 26 shifts (the "
                "last dim)."),
    ),
))
register(Exercise(
    "independent_evidence_probs", "03", reference(R, "independent_evidence_probs"), _evidence_cases, points=2,
    atol=1e-7, rtol=1e-7,  # notebook 03 compares the answer with the library's by assert_close (float64: 1e-7)
    hint="Check, for the position named above, which letters' evidence you combined, how you combined it, and which "
         "row of letter_freqs each letter reads from.",
    mistakes=(
        Mistake("no_cumsum", "each position used only its own letter: the evidence of all the letters seen so far "
                "adds up."),
        Mistake("first_letter_freqs", "every letter read the first-letter frequencies: letter j has its own row of "
                "letter_freqs."),
        Mistake("sum_of_freqs", "you added frequencies: independent evidence multiplies likelihoods (adds "
                "log-probabilities)."),
        Mistake("softmax_over_positions", "the softmax ran over the 3 positions, not over the 26 shifts: the "
                "posterior after j letters is normalised over the shifts."),
        Mistake("mean_of_evidence", "the log-likelihoods of the letters seen were averaged: independent evidence adds "
                "them (a running sum, not a running mean)."),
        Mistake("unnormalised", "the likelihood of shift 0 was returned as it is: the posterior divides it by the "
                "total over the 26 shifts (softmax over the shifts)."),
    ),
))

test_first_char_probs = make_test("first_char_probs")
test_letter_freqs_by_position = make_test("letter_freqs_by_position")
test_implied_first_letter_probs = make_test("implied_first_letter_probs")
test_rotated_word_tokens = make_test("rotated_word_tokens")
test_rotation_averaged_probs = make_test("rotation_averaged_probs")
test_independent_evidence_probs = make_test("independent_evidence_probs")
