"""Reference answers for notebook 04 (direct logit attribution, attention, ablation).

They are the library's own analyses (utils.analysis), which later lessons reuse on every model."""

from ..analysis import (  # noqa: F401
    ablated_logits,
    ablation_loss_change,
    attention_slot_shares,
    dla_correct,
    loss_per_position,
)
