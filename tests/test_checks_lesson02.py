"""Every lesson-02 check accepts correct answers written in several ways, rejects each catalogued mistake (and names
it once the framework diagnoses), reports the first differing step of model loading, and rejects a function that
writes into its inputs."""

import statistics
import warnings

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

import utils
from catalogue_lesson01_03 import (
    DETECTS_MUTATION, DIAGNOSES, NO_DIAGNOSIS, NO_MUTATION, assert_catalogue_complete, assert_named,
    assert_rejected, assert_side_effect_rejected, mistake_params, wrong_fn,
)
from helpers import accepts, reference_of, rejects
from utils.checks.core import REGISTRY
from utils.data import LETTERS

NAMES = ["make_config", "load_trained_model", "rebuild_b_O", "correct_logprobs", "summary_stats", "first_word_posterior"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_catalogue_is_complete():
    assert_catalogue_complete("02", NAMES)


@pytest.mark.parametrize("name,mistake", mistake_params(NAMES))
def test_mistake_rejected(name, mistake):
    assert_rejected("02", name, mistake)


@pytest.mark.skipif(not DIAGNOSES, reason=NO_DIAGNOSIS)
@pytest.mark.parametrize("name,mistake", mistake_params(NAMES))
def test_mistake_named(name, mistake):
    assert_named("02", name, mistake)


# ---- correct alternatives, written differently --------------------------------------------------------------------
def make_config_kwargs(mode):
    fields = dict(n_layers=2, n_heads=2, d_model=48, d_head=24, n_ctx=32, d_vocab_out=26, attn_only=True,
                  normalization_type="LN", positional_embedding_type="standard", attention_dir="causal")
    return HookedTransformerConfig(**fields, d_vocab=36 if mode == "hard" else 27, act_fn=None, seed=42, device="cpu")


def load_trained_model_other_order(mode, device="cpu"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(make_config_kwargs(mode)).eval()
    sd = torch.load(str(utils.model.weights_path(mode)), weights_only=True, map_location=device)
    model.load_and_process_state_dict(sd, fold_value_biases=True, center_unembed=True, center_writing_weights=True,
                                      fold_ln=True)
    return model.to(device, print_details=False)


def rebuild_b_O_loops(state_dict, layer):
    p = f"blocks.{layer}"
    b_O = state_dict[f"{p}.attn.b_O"].clone()
    for h in range(state_dict[f"{p}.attn.W_O"].shape[0]):
        b_V = state_dict[f"{p}.attn.b_V"][h] + state_dict[f"{p}.ln1.b"] @ state_dict[f"{p}.attn.W_V"][h]
        b_O = b_O + b_V @ state_dict[f"{p}.attn.W_O"][h]
    return b_O - b_O.mean(-1, keepdim=True)


def correct_logprobs_gather(logprobs, labels):
    index = labels.view(-1, 1, 1).expand(-1, logprobs.shape[1], 1)
    return logprobs.gather(-1, index).squeeze(-1)


def correct_logprobs_indexing(logprobs, labels):
    return logprobs[torch.arange(len(labels)), :, labels]


def summary_stats_python(logprobs_correct):
    lps = logprobs_correct.flatten().tolist()
    ps = [2.718281828459045 ** x for x in lps]
    return {"ce": -sum(lps) / len(lps), "mean_p": sum(ps) / len(ps), "median_p": statistics.median(ps),
            "min_p": min(ps)}


def first_word_posterior_prefixes(toks, words_freq):
    prefix = {}
    for word, f in words_freq:
        for k in (1, 2, 3):
            prefix[word[:k]] = prefix.get(word[:k], 0.0) + f
    out = torch.zeros(3, 26, dtype=torch.float64)
    for k in (1, 2, 3):
        for s in range(26):
            out[k - 1, s] = prefix.get("".join(LETTERS[(t - s) % 26] for t in toks[:k].tolist()), 0.0)
    return (out / out.sum(-1, keepdim=True)).log()


@pytest.mark.parametrize("name,fn", [
    ("make_config", make_config_kwargs), ("load_trained_model", load_trained_model_other_order),
    ("rebuild_b_O", rebuild_b_O_loops), ("correct_logprobs", correct_logprobs_gather),
    ("correct_logprobs", correct_logprobs_indexing), ("summary_stats", summary_stats_python),
    ("first_word_posterior", first_word_posterior_prefixes),
])
def test_accepts_alternative(name, fn):
    accepts(name, fn)


def test_reference_b_O_is_the_processed_models():
    for mode in ("easy", "medium", "hard"):
        sd = torch.load(utils.model.weights_path(mode), weights_only=True)
        for layer in (0, 1):
            torch.testing.assert_close(reference_of("rebuild_b_O")(sd, layer), utils.load_model(mode).b_O[layer],
                                       atol=1e-5, rtol=1e-4)


# ---- promises of the text are covered by the cases -----------------------------------------------------------------
def test_load_cases_pass_device_and_cover_every_mode():
    cases = REGISTRY["load_trained_model"].cases(0)
    assert {c.args[0] for c in cases} == {"easy", "medium", "hard"}
    assert any(len(c.args) > 1 or "device" in c.kwargs for c in cases)


def test_correct_logprobs_cases_vary_dtype():
    assert {c.args[0].dtype for c in REGISTRY["correct_logprobs"].cases(0)} == {torch.float32, torch.float64}


def test_load_trained_model_names_the_first_step_that_differs():
    message = rejects("load_trained_model", wrong_fn("02", "load_trained_model", "no_center_unembed"))
    assert "unembed_centred" in message and "logits" not in message.split("Problem:")[1].split("\n")[0]


def test_summary_stats_rejects_0d_tensors_by_type():
    message = rejects("summary_stats", wrong_fn("02", "summary_stats", "tensors"))
    assert "Python floats" in message


def test_posterior_message_shows_what_was_returned():
    """The values in the message are the learner's own (probabilities here), not a transformed version of them."""
    message = rejects("first_word_posterior", wrong_fn("02", "first_word_posterior", "probabilities"))
    got = float(message.split("got ")[1].split()[0])
    assert 0 <= got <= 1


# ---- side effects ----------------------------------------------------------------------------------------------------
def correct_logprobs__in_place(logprobs, labels):
    out = correct_logprobs_gather(logprobs, labels).clone()
    logprobs.zero_()
    return out


@pytest.mark.parametrize("name,fn", [
    ("rebuild_b_O", wrong_fn("02", "rebuild_b_O", "in_place")), ("correct_logprobs", correct_logprobs__in_place),
])
def test_in_place_variant_rejected(name, fn):
    assert_side_effect_rejected(name, fn, DETECTS_MUTATION, NO_MUTATION,
                                ("input", "argument", "modif", "changed", "in place", "in-place"))


def test_course_cases_are_a_trained_models_log_probs():
    """The cases 'as notebook 02 calls it' are built as the notebook builds its inputs (a trained model's log-probs on
    a dataset's tokens, then the correct shift's): a model that breaks the code, not random numbers."""
    (logprobs, labels), = [c.args for c in REGISTRY["correct_logprobs"].cases(0) if "notebook 02" in c.describe()]
    assert logprobs.shape == (48, 32, 26) and labels.shape == (48,)
    torch.testing.assert_close(logprobs.exp().sum(-1), torch.ones(48, 32))
    (lp_correct,), = [c.args for c in REGISTRY["summary_stats"].cases(0) if "notebook 02" in c.describe()]
    torch.testing.assert_close(lp_correct, reference_of("correct_logprobs")(logprobs, labels))
    stats = reference_of("summary_stats")(lp_correct)
    assert 0.05 < stats["ce"] < 0.5 and stats["median_p"] > 0.99
    probs = lp_correct.exp().flatten().sort().values  # an even count: both middle values agree, so any median does
    assert abs(probs[probs.numel() // 2 - 1] - probs[probs.numel() // 2]) < 1e-6
