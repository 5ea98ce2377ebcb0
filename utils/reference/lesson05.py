"""Reference answers for notebook 05 (the OV and QK circuits of layer 1)."""

from __future__ import annotations

from ..circuits import (  # noqa: F401  (the library's versions, which lesson 06 reuses on the medium model)
    ov_correct_logits,
    qk_pattern,
)
