"""utils.claims: a learner's claim is judged on fresh data (not the sequences it was read from), score_part takes the
documented slot names and uses its position, and vague claims are still refused."""

import pytest

from utils import claims
from utils.checks.core import CheckFailed
from utils.claims import Claim, check_claim, measure, validate
from utils.data import CodeBreakingDataset
from utils.model import load_model


@pytest.fixture(scope="module")
def easy():
    return load_model("easy", device="cpu"), CodeBreakingDataset("easy", size=400, seed=0)


def test_fresh_data_is_other_data(easy):
    _, dataset = easy
    fresh = claims.fresh_dataset(dataset)
    assert (fresh.mode, fresh.size, fresh.seq_len) == (dataset.mode, dataset.size, dataset.seq_len)
    assert fresh.seed != dataset.seed and not (fresh.toks == dataset.toks).all()


def test_a_claim_that_fits_only_the_data_it_was_read_from_fails(easy):
    """Read off the learner's data to three decimals, claimed with a tolerance tighter than the sampling noise:
    true on those sequences, refuted on fresh ones."""
    model, dataset = easy
    claim = Claim("dla_margin", "1.0", 1, 1.0, 0.3)
    on_yours = measure(claim, model, dataset.toks, dataset.labels)
    fresh = claims.fresh_dataset(dataset)
    on_fresh = measure(claim, model, fresh.toks, fresh.labels)
    assert abs(on_yours - on_fresh) > 0.05, (on_yours, on_fresh)
    tight = Claim("dla_margin", "1.0", 1, round(on_yours, 3), abs(on_yours - on_fresh) / 2)
    assert abs(on_yours - tight.value) <= tight.tolerance  # it holds where it was read
    with pytest.raises(CheckFailed, match="fresh sequences"):
        check_claim(tight, model, dataset)


def test_supported_claim_returns_the_measurement_on_the_learners_data(easy, capsys):
    model, dataset = easy
    claim = Claim("mean_ablation", "1.1", 1, 5.5, 2.0)
    got = check_claim(claim, model, dataset)
    assert got == pytest.approx(measure(claim, model, dataset.toks, dataset.labels))
    out = capsys.readouterr().out
    assert "Claim supported on fresh data" in out and "±" in out and f"seed {claims.FRESH_SEED_OFFSET}" in out


def test_score_part_takes_the_documented_slot_names(easy):
    model, dataset = easy
    args = dict(quantity="score_part", head="1.1", value=0.4, tolerance=0.15, part="0.1")
    by_name = measure(Claim(position=4, slot="0B", **args), model, dataset.toks, dataset.labels)
    by_long_name = measure(Claim(position=4, slot="2nd letter", **args), model, dataset.toks, dataset.labels)
    assert by_name == pytest.approx(by_long_name)
    assert by_name != pytest.approx(measure(Claim(position=4, slot="0C", **args), model, dataset.toks, dataset.labels))


def test_score_part_uses_its_position(easy):
    """`position` is the first destination averaged over; inside the first word (0-3) it means 4, and the printout
    names the destinations."""
    model, dataset = easy
    args = dict(quantity="score_part", head="1.0", value=0.4, tolerance=0.15, part="0.0", slot="0C")
    at = {p: measure(Claim(position=p, **args), model, dataset.toks, dataset.labels) for p in (0, 4, 20)}
    assert at[0] == pytest.approx(at[4]) and abs(at[20] - at[4]) > 1e-3, at
    assert "destinations 20-31" in claims.describe(Claim(position=20, **args))
    assert "destinations 4-31" in claims.describe(Claim(position=1, **args))


@pytest.mark.parametrize("claim, words", [
    (Claim("attention_on_slot", "1.0", 5, 0.5, 0.1, slot="0B"), "every word"),
    (Claim("score_part", "1.0", 5, 0.5, 0.1, slot="0_", part="0.0"), "0A"),
    (Claim("score_part", "1.0", 5, 0.5, 0.4, slot="0A", part="0.0"), "too wide"),
])
def test_bad_slots_and_vague_claims_are_refused(claim, words):
    with pytest.raises(ValueError, match=words):
        validate(claim)
