"""Code-breaking transformer: the names a learner imports.

    from utils import CodeBreakingDataset, load_model, imshow
"""

import warnings

# eindex-callum indexes with a list, which torch flags as deprecated but still handles as before
# (tests/test_evaluate.py checks its answers against torch.gather). Keep the learner's output clean.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="transformer_lens")

from .bayes import bayes_logprobs, letter_frequency_logprobs  # noqa: E402
from .data import (  # noqa: E402
    MODES,
    VOCAB_EASY,
    VOCAB_HARD,
    VOCAB_OUT,
    CodeBreakingDataset,
    clean_text,
    decode,
    encode,
    letter_frequencies,
    load_corpus,
    load_word_table,
    rotate,
)
from .evaluate import correct_logprobs, evaluate, model_logprobs, summarize  # noqa: E402
from .model import create_model, default_device, load_model  # noqa: E402
from .plotting import bar, hist, imshow, line, scatter, show_attention, to_numpy  # noqa: E402
from .predictions import compare_prediction  # noqa: E402
