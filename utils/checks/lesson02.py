"""Checks for notebook 02 (loading the model and measuring how well it breaks the code)."""

from __future__ import annotations

import random

import torch

from ..data import LETTERS, load_word_table
from .core import Case, Exercise, make_test, reference, register

R = "lesson02"

CONFIG_FIELDS = (
    "n_layers", "n_heads", "d_model", "d_head", "attn_only", "normalization_type", "positional_embedding_type",
    "n_ctx", "d_vocab", "d_vocab_out", "attention_dir",
)


def _config_fields(cfg):
    """The fields of a HookedTransformerConfig that define the architecture (anything else is returned as is)."""
    if not all(hasattr(cfg, f) for f in CONFIG_FIELDS):
        return cfg
    return {f: getattr(cfg, f) for f in CONFIG_FIELDS}


def _config_cases(seed: int) -> list[Case]:
    return [Case((mode,)) for mode in ("easy", "medium", "hard")]


# Fixed token ids (0-26 exist in every mode's vocabulary) on which two loaded models are compared.
_PROBE_TOKS = torch.randint(0, 27, (4, 32), generator=torch.Generator().manual_seed(0))


def _model_outputs(model):
    """Logits on fixed tokens, the normalization type (which says whether LayerNorm was folded), and whether the
    writing weights were centred and the value biases folded (neither changes the logits, so they are checked on
    the weights)."""
    if not hasattr(model, "cfg") or not callable(model):
        return model
    with torch.inference_mode():
        logits = model(_PROBE_TOKS.to(model.cfg.device)).detach().float().cpu()
        writing = [model.W_E, model.W_pos, model.W_O]
        centred = all(w.mean(-1).abs().max().item() < 1e-5 for w in writing)
        folded = model.b_V.abs().max().item() == 0
    return {
        "logits": logits,
        "normalization_type": model.cfg.normalization_type,
        "writing_weights_centred": bool(centred),
        "value_biases_folded": bool(folded),
    }


def _load_cases(seed: int) -> list[Case]:
    return [Case((mode,)) for mode in ("easy", "medium", "hard")]


def _correct_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq in [(8, 8), (10, 32), (3, 5)]:
        logprobs = torch.randn(batch, seq, 26, generator=g).log_softmax(-1)
        labels = torch.randint(0, 26, (batch,), generator=g)
        cases.append(Case((logprobs, labels), label=f"logprobs [{batch} {seq} 26], labels [{batch}]"))
    return cases


def _stats_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    # An odd number of values, so that every convention for the median agrees.
    for batch, seq in [(25, 31), (7, 9), (1, 1)]:
        probs = torch.rand(batch, seq, generator=g) ** 0.3 * 0.999 + 0.0005
        cases.append(Case((probs.log(),), label=f"logprobs_correct [{batch} {seq}]"))
    return cases


def _posterior_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    table = load_word_table()
    total = sum(c for _, c in table)
    easy = [(w, c / total) for w, c in table]
    medium = [(w, 1 / len(table)) for w, _ in table]
    # A tiny table in which "th" is the start of a rotated "the", "man" and "may"
    tiny = [("the", 0.6), ("man", 0.2), ("may", 0.1), ("dry", 0.05), ("and", 0.05)]

    def encoded(word: str, shift: int) -> torch.Tensor:
        return torch.tensor([(LETTERS.index(c) + shift) % 26 for c in word])

    cases = []
    for name, words_freq in (("easy", easy), ("medium", medium), ("tiny", tiny)):
        picks = [("the", 0)] + [(rng.choice(words_freq)[0], rng.randrange(26)) for _ in range(3)]
        for word, shift in picks:
            cases.append(Case((encoded(word, shift), words_freq), label=f"{word!r} + {shift}, {name} words_freq"))
    return cases


def _exp(x):
    # exp keeps the dtype, so that a float32 answer is still told apart from the float64 reference
    return x.exp() if isinstance(x, torch.Tensor) else x


register(Exercise("make_config", "02", reference(R, "make_config"), _config_cases, normalize=_config_fields,
                  hint="Easy/medium read 27 tokens (26 letters + space), hard reads 36; the output is always the 26 "
                       "shifts. Attention only (no MLPs), LayerNorm ('LN'), learned ('standard') positions, causal."))
register(Exercise("load_trained_model", "02", reference(R, "load_trained_model"), _load_cases,
                  normalize=_model_outputs, atol=1e-3, rtol=1e-3,
                  hint="Create the model from make_config(mode), torch.load(utils.model.weights_path(mode), "
                       "weights_only=True), then model.load_and_process_state_dict(state_dict, fold_ln=True, "
                       "center_writing_weights=True, center_unembed=True, fold_value_biases=True): all four steps."))
register(Exercise("correct_logprobs", "02", reference(R, "correct_logprobs"), _correct_cases,
                  hint='The label depends on the sequence (batch index), not the position: eindex(logprobs, labels, '
                       '"batch seq [batch]").'))
register(Exercise("summary_stats", "02", reference(R, "summary_stats"), _stats_cases,
                  hint="Cross-entropy is minus the mean log-prob of the true shift; the p's are exp(log-prob)."))
register(Exercise("first_word_posterior", "02", reference(R, "first_word_posterior"), _posterior_cases,
                  normalize=_exp, points=2,
                  hint="Decode the letters with each shift; p(shift | first j letters) is proportional to the total "
                       "frequency of the words that START with those j decoded letters (not a product of "
                       "per-letter frequencies). Return float64 log-probs."))

test_make_config = make_test("make_config")
test_load_trained_model = make_test("load_trained_model")
test_correct_logprobs = make_test("correct_logprobs")
test_summary_stats = make_test("summary_stats")
test_first_word_posterior = make_test("first_word_posterior")
