"""Lesson 04's margin helpers (utils.attribution) and the learner's own experiment (utils.claims). (The `dla_margin`
exercise is gone: the lesson gives that code and asks for judgements on it instead, tests/test_judgement_lesson04.py.)"""

import pytest
import torch

from utils import attribution
from utils.checks.core import CheckFailed
from utils.claims import Claim, check_claim, validate
from utils.data import CodeBreakingDataset
from utils.model import load_model


def test_margin_is_positive_exactly_where_the_top_shift_is_right():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(50, 7, 26, generator=g), torch.randint(0, 26, (50,), generator=g)
    right = logits.argmax(-1) == labels.unsqueeze(1)
    assert torch.equal(attribution.margin(logits, labels) > 0, right)


def test_consistent_shifts():
    word_toks = torch.tensor([[19, 7, 4], [0, 13, 3]])  # the, and
    prefixes = torch.tensor([[20, 8], [1, 14]])  # 'th' + 1 and 'an' + 1
    consistent = attribution.consistent_shifts(prefixes, word_toks)
    assert consistent.sum(-1).tolist() == [1, 1] and consistent[:, 1].all()


# --- the learner's own experiment ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def easy():
    return load_model("easy", device="cpu"), CodeBreakingDataset("easy", size=200, seed=3)


def test_claim_supported_and_refuted(easy):
    model, dataset = easy
    measured = check_claim(Claim("mean_ablation", "1.1", 1, 6.0, 2.0), model, dataset)
    assert 4 < measured < 8
    with pytest.raises(CheckFailed, match="Claim not supported"):
        check_claim(Claim("mean_ablation", "1.1", 1, 0.5, 0.2), model, dataset)
    with pytest.raises(CheckFailed):  # the wrong head for the same effect
        check_claim(Claim("mean_ablation", "1.0", 20, 6.0, 2.0), model, dataset)


@pytest.mark.parametrize("claim, words", [
    (Claim("mean_ablation", "1.1", 1, 1.0, 5.0), "too wide"),
    (Claim("volume", "1.1", 1, 1.0, 0.1), "Unknown quantity"),
    (Claim("attention_on_slot", "0.0", 5, 0.5, 0.1, slot="2nd letter"), "cannot be measured"),
    (Claim("attention_on_slot", "1.0", 5, 0.5, 0.1), "needs slot"),
    (Claim("score_part", "1.0", 5, 0.5, 0.1, slot="3rd letter", part="bias"), "needs part"),
    (Claim("dla_correct", "1.0", 40, 0.5, 0.1), "position"),
])
def test_bad_claims_get_a_message_saying_what_to_change(claim, words):
    with pytest.raises(ValueError, match=words):
        validate(claim)
