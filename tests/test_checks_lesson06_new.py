"""The lesson-06 checks added with the calibration section: `reliability_bins` accepts the reference and correct
alternatives written differently, and rejects every catalogued mistake and an in-place-mutating variant."""

import pytest
import torch

from helpers import accepts, reference_of, rejects
from utils.checks.core import REGISTRY
from utils.reference import lesson06 as reference
from utils.reference import lesson06_mistakes as mistakes

MISTAKES = [m.name for m in REGISTRY["reliability_bins"].mistakes]


def test_accepts_reference():
    accepts("reliability_bins", reference_of("reliability_bins"))


def test_accepts_a_loop_over_bins():
    def loop(probs, targets, n_bins=10):
        confidence = probs.double().max(-1).values
        correct = (probs.argmax(-1) == targets).double()
        out = torch.full((3, n_bins), float("nan"), dtype=torch.float64)
        for i in range(n_bins):
            upper = confidence <= 1.0 if i == n_bins - 1 else confidence < (i + 1) / n_bins
            where = (confidence >= i / n_bins) & upper
            out[2, i] = where.double().mean()
            if where.any():
                out[0, i], out[1, i] = confidence[where].mean(), correct[where].mean()
        return out

    accepts("reliability_bins", loop)


def test_accepts_bucketize_with_exact_edges():
    def with_bucketize(probs, targets, n_bins=10):
        confidence, predicted = probs.double().max(-1)
        edges = torch.arange(1, n_bins, dtype=torch.float64) / n_bins  # inner edges, computed as i / n_bins
        index = torch.bucketize(confidence, edges, right=True)
        one_hot = torch.nn.functional.one_hot(index, n_bins).double()  # [n bin]
        count = one_hot.sum(0)
        stats = torch.stack([confidence, (predicted == targets).double()]) @ one_hot / count
        return torch.cat([stats, (count / len(confidence)).unsqueeze(0)])

    accepts("reliability_bins", with_bucketize)


def test_every_mistake_has_a_wrong_implementation():
    assert len(MISTAKES) >= 5
    for name in MISTAKES:
        assert hasattr(mistakes, f"reliability_bins__{name}"), name


@pytest.mark.parametrize("name", MISTAKES)
def test_rejects_mistake(name):
    rejects("reliability_bins", getattr(mistakes, f"reliability_bins__{name}"))


def test_rejects_float32():
    rejects("reliability_bins", lambda p, t, n_bins=10: reference.reliability_bins(p, t, n_bins).float(), match="dtype")


def test_rejects_in_place_scaling_of_the_input():
    """Scaling the input in place to get bin indices spoils the confidences averaged afterwards."""

    def in_place(probs, targets, n_bins=10):
        predicted = probs.argmax(-1)
        probs = probs.double() if probs.dtype != torch.float64 else probs
        index = probs.mul_(n_bins).max(-1).values.floor().long().clamp(0, n_bins - 1)  # mutates probs
        confidence = probs.max(-1).values  # now n_bins times too large
        zeros = torch.zeros(n_bins, dtype=torch.float64)
        count = zeros.index_add(0, index, torch.ones_like(confidence))
        return torch.stack([zeros.index_add(0, index, confidence) / count,
                            zeros.index_add(0, index, (predicted == targets).double()) / count,
                            count / len(confidence)])

    rejects("reliability_bins", in_place)


def test_expected_calibration_error_of_a_known_table():
    table = torch.tensor([[0.25, float("nan"), 0.9], [0.5, float("nan"), 0.8], [0.5, 0.0, 0.5]], dtype=torch.float64)
    assert reference.expected_calibration_error(table) == pytest.approx(0.5 * 0.25 + 0.5 * 0.1)


# check_experiment's tests: tests/test_judgement_lesson06.py (it now reruns the experiment on a fresh dataset)
