"""Reference answers for notebook 07 (causal tests of the account).

Most are the library's own functions (utils.causal), which the notebook then runs at scale; the loss-recovered
exercise works from logits, so it has its own reference here."""

from __future__ import annotations

from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor

from ..causal import (  # noqa: F401
    ablated_query_logits,
    loss_recovered,
    prefix_match_weights,
    run_with_patched_kv,
    source_tokens,
    word_rotation_probs,
)


def scrub_loss_recovered(
    logits_clean: Float[Tensor, "batch seq 26"],
    logits_scrub: Float[Tensor, "batch seq 26"],
    logits_control: Float[Tensor, "batch seq 26"],
    labels: Int[Tensor, "batch"],
) -> float:
    """(L_control - L_scrub) / (L_control - L_clean), each L the mean cross-entropy of the true shift over every
    sequence and position."""
    losses = [float(-eindex(x.log_softmax(-1), labels, "batch seq [batch]").mean()) for x in
              (logits_clean, logits_scrub, logits_control)]
    return loss_recovered(*losses)
