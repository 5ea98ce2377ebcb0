"""Reference answers to notebook 05's judgement exercises (one correct decision each; the checks accept any
decision with the right consequences)."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor


def key_input_control(resid: Float[Tensor, "batch seq d_model"]) -> Float[Tensor, "batch seq d_model"]:
    """0A's key input replaced by the real stream at its own word's 3rd letter (0C): a key the head meets in every
    sequence, after LayerNorm as long as every real key input, and about half as far from 0A's own as the
    "0A lowered" blow-up moves it."""
    out = resid.clone()
    out[:, 0] = resid[:, 2]
    return out


def discriminating_swap() -> dict[str, str]:
    """Move the positional part alone (which only the positional hypothesis says matters) from the 2nd letters
    into the 3rd letters; the share falls, as the positional hypothesis predicts."""
    return {"part": "position", "donor": "2nd letter", "verdict": "position"}
