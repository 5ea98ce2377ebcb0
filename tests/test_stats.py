"""utils.stats: the bootstrap and seed-spread errors every lesson quotes, and asserts that fail when the claim does."""

import math

import pytest
import torch

from utils import stats


def test_mean_se_matches_the_bootstrap():
    x = torch.randn(400, generator=torch.Generator().manual_seed(0)) * 2 + 1
    closed, boot = stats.mean_se(x), stats.bootstrap(torch.mean, x)
    assert closed.value == pytest.approx(boot.value)
    assert closed.se == pytest.approx(2 / math.sqrt(400), rel=0.15)
    assert boot.se == pytest.approx(closed.se, rel=0.15)


def test_paired_bootstrap_keeps_the_correlation():
    """Two conditions measured on the same sequences: the paired error of their difference is far smaller than
    the errors of each added as if independent."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(300, generator=g)
    a, b = base + 0.05 * torch.randn(300, generator=g), base + 0.1 + 0.05 * torch.randn(300, generator=g)
    paired = stats.bootstrap(lambda a, b: (b - a).mean(), a, b)
    unpaired = stats.difference(stats.mean_se(b), stats.mean_se(a))
    assert paired.se < unpaired.se / 5
    paired.assert_above(0.0, "difference")
    with pytest.raises(AssertionError):
        unpaired.assert_above(0.0, "difference")  # the same data read as independent cannot tell


def test_asserts_fail_when_the_claim_is_false():
    est = stats.Estimate(0.80, 0.05)
    est.assert_between(0.65, 0.95)
    with pytest.raises(AssertionError):
        est.assert_between(0.75, 0.95)  # the value is inside, the interval is not: the claim is not supported
    with pytest.raises(AssertionError):
        est.assert_above(0.75)
    est.assert_below(0.95)
    assert est.differs_from(1.0) and not est.differs_from(0.85)


def test_digits_follow_the_error():
    assert str(stats.Estimate(0.83214, 0.061)) == "0.83 ± 0.06"
    assert str(stats.Estimate(1.01623, 0.0042)) == "1.016 ± 0.004"
    assert stats.supported_digits(0.3) == 1


def test_over_seeds_and_combined():
    spread = stats.over_seeds(lambda s: [0.7, 0.8, 0.9, 0.75, 0.85][s], seeds=range(5))
    assert spread.value == pytest.approx(0.8) and spread.n == 5 and "seed" in spread.describe()
    both = stats.Estimate.of_seeds_and_sequences(spread, stats.Estimate(0.8, 0.03))
    assert both.se == pytest.approx(math.hypot(spread.se, 0.03))
    with pytest.raises(ValueError):
        stats.from_values([1.0])
    with pytest.raises(ValueError, match="same number of sequences"):
        stats.bootstrap(lambda a, b: 0.0, torch.zeros(3), torch.zeros(4))
