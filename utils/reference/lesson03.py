"""Reference answers for notebook 03 (positions 0 and 1).

Five of the six answers are the shared analyses of `utils.analysis` (later lessons rerun them on other modes), so
they are re-exported from there rather than written twice. Only `rotation_averaged_probs` is defined here: it takes
the rotated tokens as input, where `analysis.word_correct_probs` builds them from the word list itself.
"""

from __future__ import annotations

import einops
import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from ..analysis import (
    first_char_probs,
    implied_first_letter_probs,
    independent_evidence_probs,
    letter_freqs_by_position,
    rotated_word_tokens,
)

__all__ = [
    "first_char_probs",
    "implied_first_letter_probs",
    "independent_evidence_probs",
    "letter_freqs_by_position",
    "rotated_word_tokens",
    "rotation_averaged_probs",
]


@torch.inference_mode()
def rotation_averaged_probs(
    model: HookedTransformer, toks: Int[Tensor, "word_rot 3"], shifts: Int[Tensor, "word_rot"]
) -> Float[Tensor, "word 3"]:
    """The model's p(correct shift) at each position, averaged over the 26 rotations of each word
    (toks and shifts as returned by rotated_word_tokens)."""
    probs = model(toks.to(model.cfg.device)).softmax(-1).cpu()  # [word_rot seq 26]
    correct = eindex(probs, shifts.cpu(), "word_rot seq [word_rot]")
    return einops.reduce(correct, "(word rot) seq -> word seq", "mean", rot=26)
