"""Lesson 04's new checks (margin attribution, issue 9) and the learner's own experiment (utils.claims): each check
accepts correct answers written differently and rejects every catalogued mistake, also when it mutates its inputs."""

import einops
import pytest
import torch

from helpers import accepts, reference_of, rejects
from utils import attribution
from utils.checks.core import REGISTRY, CheckFailed
from utils.claims import Claim, check_claim, validate
from utils.data import CodeBreakingDataset
from utils.model import load_model
from utils.reference import lesson04_mistakes

MISTAKES = [m.name for m in REGISTRY["dla_margin"].mistakes]


def test_accepts_reference_and_library():
    accepts("dla_margin", reference_of("dla_margin"))
    accepts("dla_margin", attribution.dla_margin)


def test_accepts_loop_over_positions():
    """A correct answer written differently: a loop, topk to find the runner-up, gather instead of indexing."""

    def loop(components, scale, W_U, logits, labels):
        out = torch.zeros(components.shape[:3])
        centred = components - components.mean(1, keepdim=True)
        for b in range(logits.shape[0]):
            for p in range(logits.shape[1]):
                top2 = logits[b, p].topk(2).indices
                wrong = top2[1] if top2[0] == labels[b] else top2[0]
                out[:, b, p] = centred[:, b, p] / scale[b, p] @ (W_U[:, labels[b]] - W_U[:, wrong])
        return out

    accepts("dla_margin", loop)


def test_rejects_a_right_answer_that_writes_into_its_inputs():
    """Right values, but the inputs were changed in place: the next cell would inherit the damage, so the check fails
    and says which input changed."""

    def in_place(components, scale, W_U, logits, labels):
        components -= components.mean(1, keepdim=True)
        components /= scale
        logits[torch.arange(len(labels)), :, labels] = float("-inf")
        wrong = logits.argmax(-1)
        return einops.einsum(components, W_U.T[labels].unsqueeze(1) - W_U.T[wrong], "c b s d, b s d -> c b s")

    assert "changed its input `components` in place" in rejects("dla_margin", in_place)


@pytest.mark.parametrize("mistake", MISTAKES)
def test_rejects_each_mistake(mistake):
    rejects("dla_margin", getattr(lesson04_mistakes, f"dla_margin__{mistake}"))


@pytest.mark.parametrize("mistake", MISTAKES)
def test_rejects_each_mistake_when_it_mutates_its_inputs(mistake):
    wrong = getattr(lesson04_mistakes, f"dla_margin__{mistake}")

    def mutating(components, scale, W_U, logits, labels):
        out = wrong(components, scale, W_U, logits, labels)
        components.zero_()
        logits.zero_()
        return out

    rejects("dla_margin", mutating)


def test_every_mistake_has_a_wrong_implementation_and_a_message():
    for m in REGISTRY["dla_margin"].mistakes:
        assert callable(getattr(lesson04_mistakes, f"dla_margin__{m.name}")) and len(m.message) > 20


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
