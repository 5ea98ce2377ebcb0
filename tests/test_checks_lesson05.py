"""Every lesson-05 check accepts correct answers, rejects plausible wrong ones (naming the catalogued mistakes)
and in-place changes of its inputs."""

import einops
import pytest
import torch

from helpers import accepts, catalogue, catalogued, diagnoses, reference_of, rejects, writes_into
from utils import circuits

NAMES = ["ov_correct_logits", "qk_pattern"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_library_versions_match_the_references():
    """utils.circuits (used by notebooks 05 and 06) computes what the exercises ask for."""
    accepts("ov_correct_logits", circuits.ov_correct_logits)
    accepts("qk_pattern", circuits.qk_pattern)


@pytest.mark.parametrize("name, mistake", catalogue("05"))
def test_catalogued_mistake_is_rejected_and_named(name, mistake):
    diagnoses(name, catalogued(name, mistake), mistake)


# Correct answers written differently


def test_ov_accepts_projecting_on_the_label_column_first():
    def ov(resid, ln_scale, W_OV, W_U, final_scale, labels):
        directions = W_U[:, labels] / final_scale  # [d_model batch]
        moved = einops.einsum(resid / ln_scale, W_OV, "b p d, h d e -> h b p e")
        return einops.einsum(moved, directions, "h b p e, e b -> h b p")

    accepts("ov_correct_logits", ov)


def test_qk_accepts_a_triu_mask_and_scaled_queries():
    def qk(q_resid, k_resid, W_Q, b_Q, W_K, b_K):
        q = (q_resid @ W_Q + b_Q.unsqueeze(1)) / W_Q.shape[-1] ** 0.5  # [head dest d_head]
        k = k_resid @ W_K + b_K.unsqueeze(1)
        scores = q @ k.transpose(-1, -2)
        mask = torch.triu(torch.ones_like(scores[0], dtype=torch.bool), diagonal=1)
        return scores.masked_fill(mask, -1e9).softmax(-1)

    accepts("qk_pattern", qk)


# In-place changes


@pytest.mark.parametrize("name, arg", [
    ("ov_correct_logits", 0), ("ov_correct_logits", 1), ("qk_pattern", 0), ("qk_pattern", 3),
])
def test_in_place_change_of_an_input_is_rejected(name, arg):
    rejects(name, writes_into(reference_of(name), arg), match="in place")


def test_ov_rejects_dividing_resid_in_place():
    def divides_in_place(resid, ln_scale, W_OV, W_U, final_scale, labels):
        resid /= ln_scale
        return reference_of("ov_correct_logits")(resid, torch.ones_like(ln_scale), W_OV, W_U, final_scale, labels)

    rejects("ov_correct_logits", divides_in_place, match="changed its input `resid` in place")
