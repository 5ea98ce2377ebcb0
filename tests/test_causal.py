"""utils.causal, the library behind lesson 07: paired and leak-free sources, scrubs, estimates, learners' claims and
the rotation nulls."""

import pytest
import torch

from utils import causal
from utils.causal import Scrub, Scrubber
from utils.data import CodeBreakingDataset, rotate_tokens
from utils.model import load_model


@pytest.fixture(scope="module")
def scrubber():
    return Scrubber(load_model("easy", device="cpu"), CodeBreakingDataset("easy", size=40, seed=5), seeds=range(2))


def test_sources_keep_the_word_and_shift_share_the_context_and_redraw_the_rest(scrubber):
    toks = scrubber.toks
    for w in (0, 3, 7):
        span = slice(4 * w, 4 * w + 4)
        keep3, keep0, keep1 = (scrubber.sources(0, n)[w] for n in (3, 0, 1))
        assert torch.equal(keep3[:, span], toks[:, span])  # the word and its space, under the true shift
        assert torch.equal(keep1[:, 4 * w], toks[:, 4 * w])  # the first letter kept
        outside = torch.ones(32, dtype=torch.bool)
        outside[span] = False
        assert torch.equal(keep3[:, outside], keep0[:, outside])  # paired: the same context for scrub and control
        assert (keep3[:, outside] != toks[:, outside]).any(-1).float().mean() > 0.9  # context redrawn
    assert not torch.equal(scrubber.sources(0, 3)[2], scrubber.sources(1, 3)[2])  # seeds differ


def test_leak_free_sources_put_only_the_kept_word_under_the_true_shift(scrubber):
    w = 4
    ordinary, leak_free = scrubber.sources(0, 3)[w], scrubber.sources(0, 3, leak_free=True)[w]
    span = slice(4 * w, 4 * w + 4)
    assert torch.equal(leak_free[:, span], ordinary[:, span])
    plain = rotate_tokens(ordinary, -scrubber.labels)
    context = leak_free[:, :4 * w]
    letters = context < 26
    assert not (context == ordinary[:, :4 * w])[letters].all()  # other shifts in the context
    # the context is a rotation of the same plaintext by one other shift per sequence
    delta = (context - plain[:, :4 * w]) % 26
    assert ((delta == delta[:, :1]) | ~letters).all() and (delta[:, 0] != scrubber.labels % 26).all()


def test_identity_finer_hypothesis_equals_whole_word_with_paired_sources(scrubber):
    assert torch.equal(scrubber.losses((1, 2, 3, 3)), scrubber.losses((3, 3, 3, 3)))


def test_estimates_carry_seed_and_sequence_errors(scrubber):
    est = scrubber.recovered((1, 1, 1, 1))
    assert est.se > 0 and est.kind == "seeds and sequences"
    values = scrubber.recovered_by_seed((1, 1, 1, 1))
    assert len(values) == 2 and abs(sum(values) / 2 - est.value) < 1e-6
    assert scrubber.recovered((0, 0, 0, 0)).value == pytest.approx(0.0)
    diff = scrubber.recovered_difference((1, 1, 1, 1), (1, 1, 1, 1))
    assert diff.value == pytest.approx(0.0) and diff.se == pytest.approx(0.0, abs=1e-12)
    assert len(scrubber.denominator_by_position()) == 32
    assert scrubber.changed_share(3).value == 0.0 and scrubber.changed_share(0).value > 0.5


def test_scrub_validation():
    with pytest.raises(ValueError, match="keep must be 4 integers"):
        causal.check_keep((1, 2, 3))
    with pytest.raises(ValueError, match="resamples something"):
        Scrub()
    assert str(Scrub(kv=(1, 1, 3, 1), q=(0, 0, 0, 0))) == "K/V 1131 + Q 0000"
    assert Scrub(kv=(1, 2, 3, 3), leak_free=True).control() == Scrub(kv=(0, 0, 0, 0), leak_free=True)


def test_layer_acts_match_the_hooks_and_fast_forward_puts_the_setting_back():
    model = load_model("easy", device="cpu")
    toks = CodeBreakingDataset("easy", size=10, seed=1).toks
    _, cache = model.run_with_cache(toks)
    for hook, x in causal.layer_acts(model, toks).items():
        torch.testing.assert_close(x, cache[hook], atol=1e-4, rtol=1e-4)
    assert model.cfg.use_attn_result


def test_check_scrub_claim_refuses_vague_ranges_and_uses_fresh_data(scrubber, capsys):
    with pytest.raises(ValueError, match="too wide"):
        causal.check_scrub_claim(scrubber, (1, 1, 1, 1), 0.0, 1.2)
    with pytest.raises(ValueError, match="low <= high"):
        causal.check_scrub_claim(scrubber, (1, 1, 1, 1), 0.9, 0.8)
    assert causal.check_scrub_claim(scrubber, (3, 3, 3, 3), 0.95, 1.05, size=60)
    out = capsys.readouterr().out
    assert f"dataset seed {5 + causal.FRESH_SEED_OFFSET}" in out and "5 source seeds" in out
    assert not causal.check_scrub_claim(scrubber, (1, 1, 3, 1), 0.95, 1.05, size=60)  # refuted, not raised


def test_rotation_nulls():
    g = torch.Generator().manual_seed(0)
    common = torch.randn(200, generator=g, dtype=torch.float64)
    a = common + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    b = common + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    assert causal.rank_correlation(a, b) > 0.9
    assert abs(causal.partial_rank_correlation(a, b, common)) < 0.2  # nothing beyond the shared cause
    flat = torch.rand(50, 1, generator=g).expand(50, 26)
    assert causal.variance_shares(flat)[1] < 1e-6  # the same for every encoding: all variance between words
    assert (causal.logit_spread(flat) < 1e-6).all()
