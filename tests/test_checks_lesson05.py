"""Every lesson-05 check accepts the reference and rejects plausible wrong answers."""

import einops
import pytest
import torch

from helpers import accepts, reference_of, rejects
from utils import circuits

NAMES = ["ov_correct_logits", "qk_pattern", "kcomp_positional_output", "qk_pattern_key_scale", "words_shift_posterior"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_library_versions_match_the_references():
    """utils.circuits (used by notebooks 05 and 06) computes what the exercises ask for."""
    accepts("ov_correct_logits", circuits.ov_correct_logits)
    accepts("qk_pattern", circuits.qk_pattern)
    accepts("kcomp_positional_output", circuits.kcomp_positional_output)
    accepts("qk_pattern_key_scale", circuits.qk_pattern_key_scale)


def test_ov_rejects_no_ln_scale():
    ref = reference_of("ov_correct_logits")
    rejects("ov_correct_logits", lambda r, s, W_OV, W_U, f, y: ref(r, torch.ones_like(s), W_OV, W_U, f, y))


def test_ov_rejects_no_final_scale():
    ref = reference_of("ov_correct_logits")
    rejects("ov_correct_logits", lambda r, s, W_OV, W_U, f, y: ref(r, s, W_OV, W_U, 1.0, y))


def test_ov_rejects_max_logit_instead_of_correct():
    def wrong(r, s, W_OV, W_U, f, y):
        out = einops.einsum(r / s, W_OV, "b p d, h d e -> h b p e") / f @ W_U
        return out.max(-1).values

    rejects("ov_correct_logits", wrong)


def test_ov_rejects_transposed_W_OV():
    ref = reference_of("ov_correct_logits")
    rejects("ov_correct_logits", lambda r, s, W_OV, W_U, f, y: ref(r, s, W_OV.transpose(-1, -2), W_U, f, y))


def test_qk_rejects_no_mask():
    def wrong(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
        q = einops.einsum(q_resid, W_Q, "q d, h d e -> h q e") + b_Q[:, None]
        k = einops.einsum(k_resid, W_K, "k d, h d e -> h k e") + b_K[:, None]
        return (einops.einsum(q, k, "h q e, h k e -> h q k") / W_Q.shape[-1] ** 0.5).softmax(-1)

    rejects("qk_pattern", wrong)


def test_qk_rejects_no_sqrt_d_head():
    ref = reference_of("qk_pattern")
    rejects("qk_pattern", lambda q, k, W_Q, b_Q, W_K, b_K: ref(q * 24**0.5, k, W_Q, b_Q * 24**0.5, W_K, b_K))


def test_qk_rejects_no_biases():
    ref = reference_of("qk_pattern")
    rejects("qk_pattern", lambda q, k, W_Q, b_Q, W_K, b_K: ref(q, k, W_Q, 0 * b_Q, W_K, 0 * b_K))


def test_kcomp_rejects_no_scale():
    ref = reference_of("kcomp_positional_output")
    rejects("kcomp_positional_output", lambda W_pos, s, W_OV, A: ref(W_pos, torch.ones_like(s), W_OV, A))


def test_kcomp_rejects_transposed_pattern():
    ref = reference_of("kcomp_positional_output")
    rejects("kcomp_positional_output", lambda W_pos, s, W_OV, A: ref(W_pos, s, W_OV, A.transpose(-1, -2)))


def test_kcomp_rejects_ignoring_the_pattern():
    """The write-up's shortcut (every position attends fully to itself) is not what the exercise asks."""
    ref = reference_of("kcomp_positional_output")
    eye = lambda A: torch.eye(A.shape[-1]).expand_as(A)  # noqa: E731
    rejects("kcomp_positional_output", lambda W_pos, s, W_OV, A: ref(W_pos, s, W_OV, eye(A)))


def test_key_scale_rejects_scaling_queries_too():
    ref = reference_of("qk_pattern_key_scale")
    rejects("qk_pattern_key_scale", lambda r, s, ks, *w: ref(r, ks, ks, *w))


def test_key_scale_rejects_ignoring_key_scale():
    ref = reference_of("qk_pattern_key_scale")
    rejects("qk_pattern_key_scale", lambda r, s, ks, *w: ref(r, s, s, *w))


def _word_likelihoods(encoded, word_toks, word_probs, sign=-1):
    """[shift n_words]: probability of each encoded word rotated by sign * shift."""
    plain = (encoded.unsqueeze(0) + sign * torch.arange(26).view(26, 1, 1)) % 26
    match = (plain.unsqueeze(2) == word_toks.view(1, 1, *word_toks.shape)).all(-1)
    return match.to(word_probs.dtype) @ word_probs


def test_posterior_rejects_summing_over_words():
    """Adding the words' likelihoods (a vote count) instead of multiplying them."""

    def wrong(encoded, word_toks, word_probs):
        total = _word_likelihoods(encoded, word_toks, word_probs).sum(-1)
        return total / total.sum()

    rejects("words_shift_posterior", wrong)


def test_posterior_rejects_rotating_forward():
    def wrong(encoded, word_toks, word_probs):
        joint = _word_likelihoods(encoded, word_toks, word_probs, sign=+1).prod(-1)
        return joint / joint.sum()

    rejects("words_shift_posterior", wrong)


def test_posterior_rejects_ignoring_word_frequencies():
    def wrong(encoded, word_toks, word_probs):
        joint = _word_likelihoods(encoded, word_toks, torch.ones_like(word_probs)).prod(-1)
        return joint / joint.sum()

    rejects("words_shift_posterior", wrong)


def test_posterior_rejects_unnormalised():
    rejects("words_shift_posterior", lambda e, w, p: _word_likelihoods(e, w, p).prod(-1))
