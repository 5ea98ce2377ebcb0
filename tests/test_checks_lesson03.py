"""Every lesson-03 check accepts the reference and rejects plausible wrong answers."""

import einops
import pytest
import torch

from helpers import accepts, reference_of, rejects

NAMES = [
    "first_char_probs",
    "letter_freqs_by_position",
    "implied_first_letter_probs",
    "rotated_word_tokens",
    "rotation_averaged_probs",
    "independent_evidence_probs",
    "bayes_word_probs",
]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_first_char_probs_rejects_logprobs():
    def wrong(model):
        return model(torch.arange(26).unsqueeze(1))[:, 0].log_softmax(-1).detach()

    rejects("first_char_probs", wrong)


def test_first_char_probs_rejects_transposed():
    ref = reference_of("first_char_probs")
    rejects("first_char_probs", lambda model: ref(model).T)


def test_letter_freqs_by_position_rejects_unweighted_counts():
    def wrong(words_freq):
        freqs = torch.zeros(3, 26, dtype=torch.float64)
        for word, _ in words_freq:
            for j, c in enumerate(word):
                freqs[j, ord(c) - 97] += 1
        return freqs / freqs.sum(-1, keepdim=True)

    rejects("letter_freqs_by_position", wrong)


@pytest.mark.parametrize("name", ["letter_freqs_by_position", "independent_evidence_probs", "bayes_word_probs"])
def test_float64_exercises_reject_float32(name):
    ref = reference_of(name)
    rejects(name, lambda *args: ref(*args).float(), match="float64")


def test_implied_first_letter_probs_rejects_wrong_direction():
    def wrong(probs):
        c = torch.arange(26)
        return torch.stack([probs[c, (L - c) % 26].mean() for L in range(26)])

    rejects("implied_first_letter_probs", wrong)


def test_implied_first_letter_probs_rejects_plain_column_mean():
    rejects("implied_first_letter_probs", lambda probs: probs.mean(0))


def test_rotated_word_tokens_rejects_rotation_major_order():
    ref = reference_of("rotated_word_tokens")

    def wrong(word_list):
        toks, shifts = ref(word_list)
        return (
            einops.rearrange(toks, "(word rot) l -> (rot word) l", rot=26),
            einops.rearrange(shifts, "(word rot) -> (rot word)", rot=26),
        )

    rejects("rotated_word_tokens", wrong)


def test_rotated_word_tokens_rejects_rotating_backwards():
    ref = reference_of("rotated_word_tokens")

    def wrong(word_list):
        toks, shifts = ref(word_list)
        base = einops.repeat(toks[::26], "word l -> (word rot) l", rot=26)
        return (base - shifts.unsqueeze(1)) % 26, shifts

    rejects("rotated_word_tokens", wrong)


def test_rotation_averaged_probs_rejects_averaging_logprobs():
    from eindex import eindex

    def wrong(model, toks, shifts):
        logprobs = model(toks).log_softmax(-1).detach()
        correct = eindex(logprobs, shifts, "word_rot seq [word_rot]")
        return einops.reduce(correct, "(word rot) seq -> word seq", "mean", rot=26).exp()

    rejects("rotation_averaged_probs", wrong)


def test_rotation_averaged_probs_rejects_wrong_grouping():
    from eindex import eindex

    def wrong(model, toks, shifts):
        probs = model(toks).softmax(-1).detach()
        correct = eindex(probs, shifts, "word_rot seq [word_rot]")
        return einops.reduce(correct, "(rot word) seq -> word seq", "mean", rot=26)

    rejects("rotation_averaged_probs", wrong)


def test_independent_evidence_probs_rejects_averaging_probabilities():
    def wrong(word_list, letter_freqs):
        out = torch.zeros(len(word_list), 3, dtype=torch.float64)
        shifts = torch.arange(26)
        for w, word in enumerate(word_list):
            posts = []
            for j, c in enumerate(word):
                f = letter_freqs[j, (ord(c) - 97 - shifts) % 26].double()
                posts.append(f / f.sum())
                out[w, j] = torch.stack(posts).mean(0)[0]
        return out

    rejects("independent_evidence_probs", wrong)


def test_independent_evidence_probs_rejects_first_letter_freqs_everywhere():
    ref = reference_of("independent_evidence_probs")
    rejects("independent_evidence_probs", lambda word_list, letter_freqs: ref(word_list, letter_freqs[[0, 0, 0]]))


def test_bayes_word_probs_rejects_independent_evidence():
    from utils.analysis import independent_evidence_probs, letter_freqs_by_position

    rejects(
        "bayes_word_probs",
        lambda word_list, words_freq: independent_evidence_probs(word_list, letter_freqs_by_position(words_freq)),
    )


def test_bayes_word_probs_rejects_ignoring_frequencies():
    ref = reference_of("bayes_word_probs")
    rejects("bayes_word_probs", lambda word_list, words_freq: ref(word_list, [(w, 1.0) for w, _ in words_freq]))


def test_analysis_agrees_with_reference():
    """utils.analysis (used by later lessons on other modes) computes what the lesson-03 references compute: six of
    them are re-exported from it (this guards against a divergent copy coming back), rotation_averaged_probs is not."""
    from utils import analysis
    from utils.data import load_word_table
    from utils.model import create_model

    table = load_word_table()
    words_freq = [(w, c / sum(c for _, c in table)) for w, c in table]
    words = [w for w, _ in words_freq]
    freqs = analysis.letter_freqs_by_position(words_freq)
    torch.testing.assert_close(freqs, reference_of("letter_freqs_by_position")(words_freq))
    torch.testing.assert_close(analysis.independent_evidence_probs(words, freqs),
                               reference_of("independent_evidence_probs")(words, freqs))
    torch.testing.assert_close(analysis.bayes_word_probs(words, words_freq), reference_of("bayes_word_probs")(words, words_freq))
    toks, shifts = analysis.rotated_word_tokens(words)
    ref_toks, ref_shifts = reference_of("rotated_word_tokens")(words)
    assert torch.equal(toks, ref_toks) and torch.equal(shifts, ref_shifts)
    model = create_model("easy", device="cpu").eval()  # any weights will do: the two must agree
    probs = analysis.first_char_probs(model)
    torch.testing.assert_close(probs, reference_of("first_char_probs")(model))
    torch.testing.assert_close(analysis.implied_first_letter_probs(probs), reference_of("implied_first_letter_probs")(probs))
    torch.testing.assert_close(analysis.word_correct_probs(model, words[:10]),
                               reference_of("rotation_averaged_probs")(model, *analysis.rotated_word_tokens(words[:10])))
