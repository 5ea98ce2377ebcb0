"""Lesson 05's judgement exercises: plausible wrong decisions fail (with the reason), correct decisions written
differently pass. The checks run each decision on fresh sequences, as the grader does."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import accepts, rejects
from utils.checks.core import REGISTRY


def _at_0A(resid: torch.Tensor, new_0A: torch.Tensor) -> torch.Tensor:
    return torch.cat([new_0A[:, None], resid[:, 1:]], 1)


# --- key_input_control ----------------------------------------------------------------------------------------

def test_control_is_registered_as_judgement():
    assert REGISTRY["key_input_control"].kind == "judgement" and REGISTRY["discriminating_swap"].kind == "judgement"


@pytest.mark.parametrize("control", [
    lambda r: _at_0A(r, r[:, 2]),                           # its own word's 0C (the reference)
    lambda r: _at_0A(r, r[:, 1] * 2.0),                     # 0B, rescaled: LayerNorm makes it a real key input
    lambda r: _at_0A(r, r[:, 6]),                           # the next word's 3rd letter
    lambda r: _at_0A(r, r.roll(1, 0)[:, 10]),               # another sequence's 2nd-word 3rd letter
], ids=["own_0C", "own_0B_rescaled", "1C", "other_sequence_2C"])
def test_control_accepts_in_distribution_controls_of_comparable_size(control):
    accepts("key_input_control", control, seeds=(0,))


def test_control_rejects_the_identity():
    rejects("key_input_control", lambda r: r.clone(), match="cannot fail")


def test_control_rejects_the_old_norm_kept_control():
    """Rescaling 0A's stream (the old 'norm kept' control) is undone by LayerNorm: the clean model."""
    rejects("key_input_control", lambda r: _at_0A(r, r[:, 0] * 3.5), match="cannot fail")


def test_control_rejects_out_of_distribution_keys():
    rejects("key_input_control", lambda r: _at_0A(r, -r[:, 0]), match="out of distribution")
    noise = lambda r: _at_0A(r, r[:, 0] + torch.randn(r[:, 0].shape, generator=torch.Generator().manual_seed(0)) * 2)  # noqa: E731
    rejects("key_input_control", noise, match="out of distribution")


def test_control_rejects_a_change_too_small_to_fail():
    """0A of another sequence is in distribution, but moves 0A's key input far less than the blow-up does."""
    rejects("key_input_control", lambda r: _at_0A(r, r.roll(1, 0)[:, 0]), match="could hardly come out")


def test_control_rejects_changes_elsewhere_and_wrong_shapes():
    rejects("key_input_control", lambda r: torch.cat([r[:, 2:3], r[:, 2:3], r[:, 2:]], 1), match="other than 0A")
    rejects("key_input_control", lambda r: r[:, 2], match="shape")


# --- discriminating_swap ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    {"part": "position", "donor": "2nd letter", "verdict": "position"},
    {"part": "position", "donor": "space", "verdict": "position"},
    {"part": "layer 0", "donor": "2nd letter", "verdict": "position"},   # H_l0 predicts a fall that does not come
    {"part": "0.1", "donor": "space", "verdict": "position"},
], ids=["pos_from_2nd", "pos_from_space", "layer0_from_2nd", "h01_from_space"])
def test_swap_accepts_discriminating_swaps_read_right(answer):
    accepts("discriminating_swap", lambda: dict(answer), seeds=(0,))


@pytest.mark.parametrize("answer, match", [
    ({"part": "whole stream", "donor": "2nd letter", "verdict": "position"}, "cannot tell them apart"),
    ({"part": "position", "donor": "3rd letter", "verdict": "position"}, "cannot tell them apart"),
    ({"part": "token", "donor": "space", "verdict": "position"}, "cannot tell them apart"),
    ({"part": "position", "donor": "2nd letter", "verdict": "layer 0"}, "does not support 'layer 0'"),
    ({"part": "layer 0", "donor": "1st letter", "verdict": "layer 0"}, "does not support 'layer 0'"),
    ({"part": "positional", "donor": "2nd letter", "verdict": "position"}, '"part" must be one of'),
    ({"part": "position", "donor": "2nd letter"}, "keys"),
], ids=["whole_stream", "same_slot_donor", "token", "misread", "small_drop_read_as_fall", "bad_name", "no_verdict"])
def test_swap_rejects_wrong_decisions(answer, match):
    rejects("discriminating_swap", lambda: dict(answer), match=match)
