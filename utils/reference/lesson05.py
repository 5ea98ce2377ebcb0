"""Reference answers for notebook 05 (the OV and QK circuits of layer 1)."""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..circuits import (  # noqa: F401  (the library's versions, which lesson 06 reuses on the medium model)
    kcomp_positional_output,
    ov_correct_logits,
    qk_pattern,
    qk_pattern_key_scale,
)


def words_shift_posterior(
    encoded_words: Int[Tensor, "n_words 3"],
    word_toks: Int[Tensor, "vocab_words 3"],
    word_probs: Float[Tensor, "vocab_words"],
) -> Float[Tensor, "26"]:
    """Posterior over the shift s given whole encoded words, each drawn independently with word_probs (uniform
    prior over shifts): p(s) is proportional to the product over words of the probability of the word encoded - s
    (0 if that is not in the table)."""
    shifts = torch.arange(26, device=encoded_words.device)
    plain = (einops.rearrange(encoded_words, "n letter -> 1 n letter") - shifts.view(26, 1, 1)) % 26
    match = (plain.unsqueeze(2) == word_toks.view(1, 1, *word_toks.shape)).all(-1)  # [shift n vocab_words]
    likelihood = einops.einsum(match.to(word_probs.dtype), word_probs, "shift n vocab, vocab -> shift n")
    return likelihood.log().sum(-1).softmax(-1)


# --- a layer-1 head's keys and output split into the parts of its input (issue 9/10) --------------------------
from ..attribution import head_output_parts, key_score_components  # noqa: E402,F401
