"""Uncertainty for every sampled figure a lesson interprets: a paired bootstrap over sequences, the spread over
source seeds, and the digits each supports.

    est = bootstrap(lambda a, b: a.mean() - b.mean(), loss_scrub, loss_control)  # paired: one resample of sequences
    print(est)                 # "0.047 ± 0.006"  (value ± standard error, at the digits the error supports)
    est.assert_between(0.02, 0.08)    # the claim holds at its uncertainty (the whole 2-SE interval inside)
    est.assert_above(0.0)             # "this difference is real": value - 2 SE > 0

    spread = over_seeds(lambda seed: scrubber(keep, seed=seed).recovered, seeds=range(5))
    print(spread)              # "0.80 ± 0.04 (sd over 5 seeds)"

A figure that depends on both the sequences and a random source (a scrub, a resample) gets `combine`: the two
errors added in quadrature, `Estimate.of_seeds_and_sequences`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

N_BOOT = 1000
Z = 2.0  # asserts test the claim on value ± Z standard errors (about a 95% interval)


def supported_digits(se: float, max_digits: int = 4) -> int:
    """Decimal places that `se` supports: the place of its first significant digit (0.006 -> 3; 0.04 -> 2)."""
    if not math.isfinite(se) or se <= 0:
        return max_digits
    return max(0, min(max_digits, -math.floor(math.log10(se))))


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A sampled figure with its standard error; `kind` says where the error comes from (printed)."""

    value: float
    se: float
    kind: str = "bootstrap over sequences"
    n: int = 0  # sequences, or seeds

    @property
    def digits(self) -> int:
        return supported_digits(self.se)

    @property
    def low(self) -> float:
        return self.value - Z * self.se

    @property
    def high(self) -> float:
        return self.value + Z * self.se

    def __str__(self) -> str:
        d = self.digits
        return f"{self.value:.{d}f} ± {self.se:.{d}f}"

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return f"{format(self.value, spec)} ± {format(self.se, spec)}"

    def describe(self) -> str:
        """'0.047 ± 0.006 (SE, bootstrap over 500 sequences)'."""
        what = f"{self.n} " if self.n else ""
        unit = "seeds" if "seed" in self.kind else "sequences"
        source = self.kind if not self.n else self.kind.replace(unit, f"{what}{unit}")
        return f"{self} (SE, {source})"

    def assert_between(self, low: float, high: float, what: str = "") -> None:
        """The claim 'the figure lies in [low, high]' holds at its uncertainty: value ± Z·SE inside the range."""
        assert low <= self.low and self.high <= high, (
            f"{what or 'figure'} {self.describe()}: its {Z:g}-SE interval [{self.low:.4g}, {self.high:.4g}] "
            f"is not inside [{low}, {high}]")

    def assert_above(self, threshold: float, what: str = "") -> None:
        """The claim 'the figure exceeds threshold' holds at its uncertainty (value - Z·SE > threshold)."""
        assert self.low > threshold, f"{what or 'figure'} {self.describe()} is not above {threshold} at {Z:g} SE"

    def assert_below(self, threshold: float, what: str = "") -> None:
        """The claim 'the figure is below threshold' holds at its uncertainty (value + Z·SE < threshold)."""
        assert self.high < threshold, f"{what or 'figure'} {self.describe()} is not below {threshold} at {Z:g} SE"

    def differs_from(self, other: float) -> bool:
        """True when `other` lies outside value ± Z·SE."""
        return not (self.low <= other <= self.high)

    @staticmethod
    def of_seeds_and_sequences(seeds: "Estimate", sequences: "Estimate") -> "Estimate":
        """One figure whose error has both sources: the mean over seeds, the two errors in quadrature."""
        return Estimate(seeds.value, math.hypot(seeds.se, sequences.se), "seeds and sequences", seeds.n)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(x)


def bootstrap(
    statistic: Callable[..., float | Tensor],
    *per_sequence: Float[Tensor, "batch ..."],
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Estimate:
    """The statistic on the data, with its bootstrap standard error over sequences (dim 0 of every input).

    Paired: each resample draws one set of sequence indices and applies it to every input, so that a difference or
    ratio between conditions measured on the same sequences keeps their correlation (and its small error)."""
    data = [_as_tensor(x) for x in per_sequence]
    n = data[0].shape[0]
    if any(x.shape[0] != n for x in data):
        raise ValueError(f"paired inputs need the same number of sequences on dim 0, got {[x.shape[0] for x in data]}")
    value = float(statistic(*data))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    samples = torch.tensor([float(statistic(*(x[i] for x in data))) for i in idx], dtype=torch.float64)
    return Estimate(value, float(samples.std()), "bootstrap over sequences", n)


def mean_se(per_sequence: Float[Tensor, "batch ..."]) -> Estimate:
    """The mean over sequences (averaging any further axes per sequence first) and its standard error; the
    closed form of `bootstrap(torch.mean, x)`."""
    x = _as_tensor(per_sequence).double()
    x = x.reshape(x.shape[0], -1).mean(1)
    return Estimate(float(x.mean()), float(x.std() / math.sqrt(len(x))), "bootstrap over sequences", len(x))


def over_seeds(measure: Callable[[int], float], seeds: Iterable[int] = range(5)) -> Estimate:
    """The mean of `measure(seed)` over seeds and its standard error (sd / sqrt(n)); `.values` lost: use
    `seed_values` to keep them."""
    values = seed_values(measure, seeds)
    return from_values(values)


def seed_values(measure: Callable[[int], float], seeds: Iterable[int] = range(5)) -> list[float]:
    return [float(measure(s)) for s in seeds]


def from_values(values: Sequence[float], kind: str = "spread over seeds") -> Estimate:
    """Mean and standard error of independent repeats (seeds), which must be at least two."""
    v = torch.tensor(list(values), dtype=torch.float64)
    if len(v) < 2:
        raise ValueError("a spread needs at least two seeds")
    return Estimate(float(v.mean()), float(v.std() / math.sqrt(len(v))), kind, len(v))


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a - b for two independent estimates (errors in quadrature). For paired data use `bootstrap` instead."""
    return Estimate(a.value - b.value, math.hypot(a.se, b.se), f"{a.kind}; independent", min(a.n, b.n))
