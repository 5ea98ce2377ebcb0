"""Every lesson-02 check accepts the reference and rejects plausible wrong answers."""

import warnings

import pytest
import torch
from eindex import eindex
from transformer_lens import HookedTransformer

from helpers import accepts, reference_of, rejects
from utils.bayes import bayes_logprobs
from utils.data import LETTERS, load_word_table
from utils.model import weights_path

NAMES = ["make_config", "correct_logprobs", "summary_stats", "first_word_posterior"]
needs_weights = pytest.mark.skipif(
    not all(weights_path(m).exists() for m in ("easy", "medium", "hard")), reason="trained weights not in data/ yet"
)


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


# make_config ----------------------------------------------------------------------------------------------


def test_make_config_rejects_hard_vocab_everywhere():
    ref = reference_of("make_config")

    def wrong(mode):
        cfg = ref(mode)
        cfg.d_vocab = 36
        return cfg

    rejects("make_config", wrong, match="d_vocab")


def test_make_config_rejects_27_outputs():
    ref = reference_of("make_config")

    def wrong(mode):
        cfg = ref(mode)
        cfg.d_vocab_out = 27
        return cfg

    rejects("make_config", wrong, match="d_vocab_out")


def test_make_config_rejects_mlps():
    ref = reference_of("make_config")

    def wrong(mode):
        cfg = ref(mode)
        cfg.attn_only = False
        return cfg

    rejects("make_config", wrong, match="attn_only")


# load_trained_model -------------------------------------------------------------------------------------


@needs_weights
def test_load_trained_model_accepts_reference():
    accepts("load_trained_model", reference_of("load_trained_model"), seeds=(0,))


@needs_weights
def test_load_trained_model_rejects_unprocessed_weights():
    make_config = reference_of("make_config")

    def wrong(mode):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = HookedTransformer(make_config(mode))
        model.load_state_dict(torch.load(weights_path(mode), weights_only=True))
        return model.eval()

    rejects("load_trained_model", wrong)


def _partly_processed(**skip):
    """A learner's load_trained_model that leaves out some of the four processing steps."""
    make_config = reference_of("make_config")
    steps = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
    steps.update(skip)

    def wrong(mode):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = HookedTransformer(make_config(mode))
        model.load_and_process_state_dict(torch.load(weights_path(mode), map_location="cpu", weights_only=True), **steps)
        return model.eval()

    return wrong


@needs_weights
def test_load_trained_model_rejects_uncentred_writing_weights():
    """Centring the writing weights changes no logit (LayerNorm removes the mean): the check reads the weights."""
    rejects("load_trained_model", _partly_processed(center_writing_weights=False), match="writing_weights_centred")


@needs_weights
def test_load_trained_model_rejects_unfolded_value_biases():
    rejects("load_trained_model", _partly_processed(fold_value_biases=False), match="value_biases_folded")


@needs_weights
def test_unprocessed_logits_differ_by_a_constant_only():
    """Why the check above rejects it: the log-probs agree, the raw logits do not."""
    make_config, load = reference_of("make_config"), reference_of("load_trained_model")
    processed = load("easy")
    raw = HookedTransformer(make_config("easy"))
    raw.load_state_dict(torch.load(weights_path("easy"), weights_only=True))
    toks = torch.randint(0, 27, (8, 32), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = processed(toks), raw(toks)
    torch.testing.assert_close(a.log_softmax(-1), b.log_softmax(-1), atol=1e-4, rtol=1e-4)
    assert (a - b).abs().max() > 1e-2


@needs_weights
def test_load_trained_model_rejects_random_weights():
    make_config = reference_of("make_config")

    def wrong(mode):
        return HookedTransformer(make_config(mode)).eval()

    rejects("load_trained_model", wrong, match="logits")


# correct_logprobs ---------------------------------------------------------------------------------------


def test_correct_logprobs_rejects_indexing_by_position():
    def wrong(logprobs, labels):
        seq = logprobs.shape[1]
        return logprobs[:, torch.arange(seq), labels[:seq]]

    rejects("correct_logprobs", wrong)


def test_correct_logprobs_rejects_seq_index_pattern():
    rejects("correct_logprobs", lambda logprobs, labels: eindex(logprobs, labels[: logprobs.shape[1]], "batch seq [seq]"))


def test_correct_logprobs_rejects_max():
    rejects("correct_logprobs", lambda logprobs, labels: logprobs.max(-1).values)


# summary_stats ------------------------------------------------------------------------------------------


def test_summary_stats_rejects_mean_prob_as_ce():
    ref = reference_of("summary_stats")

    def wrong(lp):
        stats = ref(lp)
        stats["ce"] = lp.exp().mean().item()
        return stats

    rejects("summary_stats", wrong, match="'ce'")


def test_summary_stats_rejects_mean_logprob_without_minus():
    ref = reference_of("summary_stats")
    rejects("summary_stats", lambda lp: {**ref(lp), "ce": lp.mean().item()}, match="'ce'")


def test_summary_stats_rejects_missing_key():
    ref = reference_of("summary_stats")
    rejects("summary_stats", lambda lp: {k: v for k, v in ref(lp).items() if k != "min_p"}, match="missing")


# first_word_posterior -----------------------------------------------------------------------------------


def _easy_words_freq():
    table = load_word_table()
    total = sum(c for _, c in table)
    return [(w, c / total) for w, c in table]


def test_reference_posterior_matches_utils_bayes():
    ref = reference_of("first_word_posterior")
    words_freq = _easy_words_freq()
    for word, shift in [("the", 0), ("the", 7), ("and", 20), ("man", 3), ("zoo", 25)]:
        if word not in dict(words_freq):
            continue
        toks = torch.tensor([(LETTERS.index(c) + shift) % 26 for c in word])
        expected = bayes_logprobs(toks.unsqueeze(0), words_freq)[0]
        torch.testing.assert_close(ref(toks, words_freq).exp(), expected.exp(), atol=1e-7, rtol=1e-6)


def test_first_word_posterior_rejects_independent_evidence():
    def independent(toks, words_freq):
        freqs = torch.zeros(3, 26, dtype=torch.float64)  # [position letter]
        for word, f in words_freq:
            for i, c in enumerate(word):
                freqs[i, LETTERS.index(c)] += f
        shifts = torch.arange(26)
        plain = (toks.unsqueeze(1) - shifts) % 26  # [position shift]
        evidence = freqs.gather(1, plain).log()  # log f_position(letter decoded with each shift)
        return evidence.cumsum(0).log_softmax(-1)

    rejects("first_word_posterior", independent)


def test_first_word_posterior_rejects_wrong_direction_of_shift():
    ref = reference_of("first_word_posterior")
    rejects("first_word_posterior", lambda toks, wf: ref(toks, wf)[:, (-torch.arange(26)) % 26])


def test_first_word_posterior_rejects_float32():
    ref = reference_of("first_word_posterior")
    rejects("first_word_posterior", lambda toks, wf: ref(toks, wf).float(), match="float64")
