"""Reference answers for notebook 07 (causal tests of the account).

They are the library's own functions (utils.causal), which the notebook then runs at scale."""

from __future__ import annotations

from ..causal import (  # noqa: F401
    prefix_match_weights,
    run_with_patched_kv,
    word_rotation_probs,
)

