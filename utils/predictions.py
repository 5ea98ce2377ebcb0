"""Predict, then check: compare a learner's guess, written down before a result is computed, with the result.

    my_guess = 0.7                                   # in the cell under `### Prediction - p after "th"`
    ...                                              # the cell that measures `p_th`
    compare_prediction("p after th", my_guess, p_th, tolerance=0.1, why="the Bayes posterior after 'th' ...")

A prediction is never graded right or wrong and never raises: the helper says how far off the guess was and
why the measured value is what it is. It returns None, so that as a cell's last line it shows only its printed
lines (no `PredictionResult(...)` repr); `PREDICTIONS` keeps what was compared in this kernel (the grader may
record that a prediction was made).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

NO_GUESS = ...  # what the exercise notebooks put in a prediction cell: `my_guess = ...`


@dataclasses.dataclass(frozen=True)
class PredictionResult:
    """One compared prediction: its name, the guess, the measured value and whether the guess was close."""

    name: str
    guess: Any
    measured: Any
    made: bool
    close: bool | None
    message: str


PREDICTIONS: list[PredictionResult] = []


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars become Python numbers (or lists), so guesses compare in one way."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _judge(guess: Any, measured: Any, tolerance: float | None) -> tuple[bool | None, str]:
    if _is_number(guess) and _is_number(measured):
        off = guess - measured
        tol = tolerance if tolerance is not None else 0.1 * max(abs(measured), 1e-12)
        rel = f" ({abs(off) / abs(measured):.0%} of it)" if measured else ""
        close = abs(off) <= tol
        verdict = "close" if close else ("too high" if off > 0 else "too low")
        return close, f"your guess {guess:.4g} vs measured {measured:.4g}: off by {abs(off):.3g}{rel}, {verdict}"
    if isinstance(measured, (set, frozenset)) or isinstance(guess, (set, frozenset)):
        g, m = set(guess), set(measured)
        close = g == m
        return close, f"your guess {sorted(g)} vs measured {sorted(m)}" + ("" if close else f": missed {sorted(m - g)}, extra {sorted(g - m)}")
    close = guess == measured or (isinstance(guess, str) and isinstance(measured, str) and guess.strip().lower() == measured.strip().lower())
    return bool(close), f"your guess {guess!r} vs measured {measured!r}: {'right' if close else 'not what the model does'}"


def compare_prediction(
    name: str, guess: Any, measured: Any, tolerance: float | None = None, why: str = ""
) -> None:
    """Print how a guess compares with the measured value, and why; never raises, returns None (the record is
    `PREDICTIONS[-1]`). `tolerance` (numbers only) is how far off still counts as close (default: 10% of the
    measured value)."""
    guess, measured = _plain(guess), _plain(measured)
    try:
        if guess is NO_GUESS or guess is None or (isinstance(guess, float) and math.isnan(guess)):
            made, close, text = False, None, f"no guess written down (measured: {measured!r}). Next time, commit to one first"
        else:
            made = True
            close, text = _judge(guess, measured, tolerance)
    except Exception as e:  # a guess of an odd type is still a prediction: say so rather than fail the notebook
        made, close, text = True, None, f"could not compare your guess {guess!r} with {measured!r} ({e.__class__.__name__})"
    result = PredictionResult(name, guess, measured, made, close, text)
    PREDICTIONS.append(result)
    print(f"Prediction '{name}': {text}." + (f"\nWhy: {why}" if why else ""))
