"""Checks for notebook 02 (loading the model and measuring how well it breaks the code)."""

from __future__ import annotations

import functools
import random

import torch

from ..data import LETTERS, load_word_table
from ..model import weights_path
from .core import Case, Exercise, Mistake, Ref, _build_ref, make_test, reference, register

R = "lesson02"

CONFIG_FIELDS = (
    "n_layers", "n_heads", "d_model", "d_head", "attn_only", "normalization_type", "positional_embedding_type",
    "n_ctx", "d_vocab", "d_vocab_out", "attention_dir", "seed", "device",  # seed=42 and device="cpu": the text asks for both
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
    device = str(next(model.parameters()).device.type)
    if device == "meta":  # the case that asks for another device: only where the model ended up can be compared
        return {"normalization_type (LayerNorm folded?)": model.cfg.normalization_type,
                "in_training_mode": bool(model.training), "device": device}
    with torch.inference_mode():
        logits = model(_PROBE_TOKS.to(model.cfg.device)).detach().float().cpu()
        writing = [model.W_E, model.W_pos, model.W_O]
        centred = all(w.mean(-1).abs().max().item() < 1e-5 for w in writing)
        unembed_centred = model.W_U.mean(-1).abs().max().item() < 1e-5
        folded = model.b_V.abs().max().item() == 0
    # in the order of the processing steps, so that a failure names the first step that differs
    return {
        "normalization_type (LayerNorm folded?)": model.cfg.normalization_type,
        "writing_weights_centred": bool(centred),
        "unembed_centred": bool(unembed_centred),
        "value_biases_folded": bool(folded),
        "in_training_mode": bool(model.training),
        "device": str(next(model.parameters()).device.type),
        "logits": logits,
    }


def _load_cases(seed: int) -> list[Case]:
    # the text promises a `device` argument: pass it, and leave it out once
    # "meta" is a device every machine has (tensors without data): a loader that ignores `device` stays on the CPU
    return [Case(("easy",)), Case(("medium", "cpu")), Case(("hard",), {"device": "cpu"}),
            Case(("easy", "meta"), label="('easy', device='meta'): the model must end up on the device asked for",
                 allow_error=("meta",))]  # a loader that maps the checkpoint onto `device` cannot load meta tensors


@functools.lru_cache(maxsize=4)
def _state_dict(mode: str) -> dict[str, torch.Tensor]:
    return torch.load(weights_path(mode), map_location="cpu", weights_only=True)


def _b_O_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    random_sd = {k: torch.randn(v.shape, generator=g) for k, v in _state_dict("easy").items() if v.dim() > 0}
    cases = [Case((_state_dict(mode), layer), label=f"the trained {mode} state dict, layer {layer}")
             for mode in ("easy", "medium", "hard") for layer in (0, 1)]
    return cases + [Case((random_sd, 1), label="a state dict of random weights, layer 1")]


def _course_logprobs(mode: str = "medium", size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Built as notebook 02 builds `logprobs[mode]` and the labels it reads them at: a trained model's log-probs on a
    dataset's tokens. A stand-in (48 sequences, seed 0, the medium model): notebook 02 predicts numbers of the easy
    and hard models on its 1,000 sequences of seed 42, which a failure message must not show."""
    model, dataset = _build_ref(Ref("model", mode)), _build_ref(Ref("dataset", mode, size, 0))
    with torch.no_grad():
        return model(dataset.toks).log_softmax(-1).clone(), dataset.labels.clone()


def _correct_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = [Case(_course_logprobs(), label="the medium model's log-probs on 48 sequences and their labels (as "
                                            "notebook 02 calls it)")]
    for batch, seq, dtype in [(8, 8, torch.float32), (10, 32, torch.float64), (3, 5, torch.float32), (1, 1, torch.float64)]:
        logprobs = torch.randn(batch, seq, 26, generator=g).log_softmax(-1).to(dtype)
        labels = torch.randint(0, 26, (batch,), generator=g)
        cases.append(Case((logprobs, labels), label=f"logprobs [{batch} {seq} 26] {dtype}, labels [{batch}]"))
    return cases


def _stats_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    logprobs, labels = _course_logprobs()
    course = logprobs.gather(-1, labels[:, None, None].expand(-1, logprobs.shape[1], 1))[..., 0]  # [48 32]
    cases = [Case((course,), label="the medium model's correct log-probs on 48 sequences (as notebook 02 calls it)")]
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


register(Exercise(
    "make_config", "02", reference(R, "make_config"), _config_cases, normalize=_config_fields,
    hint="The failing field is named above: compare it with the description of the architecture at the top of "
         "section 1 (and check that your value depends on `mode` where it should).",
    mistakes=(
        Mistake("hard_vocab_always", "`d_vocab` is the hard-mode size in every mode: the input vocabulary depends on "
                "`mode`."),
        Mistake("output_is_input_vocab", "`d_vocab_out` was set to the input vocabulary: the model outputs one logit "
                "per shift."),
        Mistake("d_head_is_d_model", "`d_head` equals `d_model`: each head works in a smaller space (see section 1)."),
        Mistake("bidirectional", "attention is not causal: each position may only look at itself and earlier ones."),
        Mistake("no_seed", "`seed` is not 42: the text asks for seed=42, which fixes the initial weights of the "
                "untrained model."),
        Mistake("other_normalization", "normalization_type is not 'LN': the model has LayerNorm (with weights and biases) before each layer and at the end."),
        Mistake("rotary", "positional_embedding_type is not 'standard': the model learns one embedding per position "
                "(W_pos), added to the token embedding."),
    ),
))
register(Exercise(
    "load_trained_model", "02", reference(R, "load_trained_model"), _load_cases,
    normalize=_model_outputs, atol=1e-3, rtol=1e-3,
    hint="The first property that differs is named above: it points at the loading or processing step to look at.",
    mistakes=(
        Mistake("no_center_unembed", "the unembedding was not centred: one of the four processing flags is off."),
        Mistake("no_fold_ln", "LayerNorm was not folded into the weights: one of the four processing flags is off."),
        Mistake("no_fold_value_biases", "the value biases were not folded into `b_O`: one of the four processing "
                "flags is off."),
        Mistake("unprocessed", "the weights were loaded as trained, without TransformerLens's processing."),
        Mistake("only_fold_ln", "only LayerNorm was folded: the other three processing steps (centring the writing "
                "weights and the unembedding, folding the value biases) are off."),
        Mistake("no_eval", "the model was returned in training mode."),
        Mistake("ignores_device", "the model stays on the CPU whatever `device` asks for: the `device` argument is "
                "not used."),
        Mistake("easy_weights_always", "the medium model came back with the easy model's weights: the checkpoint "
                "path depends on `mode`."),
    ),
))
register(Exercise(
    "rebuild_b_O", "02", reference(R, "rebuild_b_O"), _b_O_cases, points=2, atol=1e-5,
    hint="Find which contribution to the output bias your answer is missing or has extra: the one from LayerNorm's "
         "bias, from the value biases, or the centring over d_model.",
    mistakes=(
        Mistake("no_ln_bias", "LayerNorm's bias is missing: folding LayerNorm adds what its bias contributes through "
                "W_V to the value bias."),
        Mistake("not_centred", "your b_O is not centred over d_model: centring the writing weights applies to b_O too."),
        Mistake("without_trained_b_O", "the trained b_O itself is missing: the folded value biases are added to it."),
        Mistake("ln_weight_not_bias", "you pushed LayerNorm's scale (w), not its bias (b), into the value bias."),
        Mistake("centred_before_adding", "the trained b_O was centred before the folded value bias was added: centre "
                "the sum (the folded bias has a mean over d_model too)."),
    ),
))
register(Exercise(
    "correct_logprobs", "02", reference(R, "correct_logprobs"), _correct_cases,
    hint="Check the shape and the sign of what you return, and that each sequence uses its own label at every "
         "position.",
    mistakes=(
        Mistake("probabilities", "you returned probabilities: the exercise asks for the log-probs themselves."),
        Mistake("whole_label_table", "the output has an extra dimension: every label was picked for every sequence, "
                "not each sequence's own label."),
        Mistake("loss", "the values have the wrong sign: return the log-probs, not the loss."),
        Mistake("to_float64", "the dtype changed: return the log-probs in the dtype they came in."),
        Mistake("first_label_for_all", "every sequence was read at the first sequence's label: each sequence b has its own labels[b]."),
        Mistake("transposed", "the result is [seq batch]: the dimensions are swapped; it keeps the input's [batch seq] order."),
        Mistake("max_logprob", "you took the largest log-prob at each position (the model's favourite shift), not the "
                "log-prob of the sequence's label."),
    ),
))
register(Exercise(
    "summary_stats", "02", reference(R, "summary_stats"), _stats_cases, strict_types=True,
    hint="The key that differs is named above: check its definition in the exercise text (sign, and whether it is "
         "taken over probabilities or log-probs).",
    mistakes=(
        Mistake("tensors", "the values are torch tensors: the exercise asks for Python floats."),
        Mistake("ce_sign", "`ce` has the wrong sign: a cross-entropy is never negative."),
        Mistake("mean_p_from_ce", "`mean_p` is exp(-ce), a geometric mean: the mean of the probabilities is "
                "larger."),
        Mistake("max_not_min", "`min_p` is the largest probability, not the smallest."),
        Mistake("ce_from_mean_p", "'ce' is minus the log of the mean probability: cross-entropy is the mean of minus the log-probs (mean first, log second differ)."),
        Mistake("min_of_logprobs", "'min_p' is the smallest log-prob, not the smallest probability: it is taken before exponentiating."),
        Mistake("median_is_mean", "'median_p' is the mean probability: the median is the middle value of the sorted "
                "probabilities."),
        Mistake("mean_p_of_logprobs", "'mean_p' is the mean of the log-probs: the probabilities are exp of the "
                "log-probs, taken before averaging."),
        Mistake("ce_in_bits", "'ce' is in bits (log base 2): the log-probs are natural logs, so the cross-entropy "
                "is in nats; use them as they are."),
    ),
))
register(Exercise(
    "first_word_posterior", "02", reference(R, "first_word_posterior"), _posterior_cases, points=2,
    hint="Look at the row (number of letters seen) and shift named above: which words should explain those decoded "
         "letters, and with how much weight? Return float64 log-probs, normalised per row.",
    mistakes=(
        Mistake("independent_letters", "you multiplied per-letter frequencies: the letters of a word are not "
                "independent, so a prefix's probability is the total frequency of the words that start with it."),
        Mistake("probabilities", "you returned probabilities: the exercise asks for log-probabilities."),
        Mistake("float32", "the log-probs are float32: the exercise asks for float64."),
        Mistake("unnormalised", "the rows are not normalised: each row must sum to 1 over the 26 shifts (in "
                "probability)."),
        Mistake("last_letter_only", "a word counted when its j-th letter matched, whatever the letters before it: "
                "all of the first j + 1 letters must match."),
        Mistake("ignores_frequencies", "every matching word counts the same: the words' frequencies in words_freq are not used as weights."),
        Mistake("prefix_off_by_one", "row j matched the first j letters, not the first j + 1: row 0 already uses the "
                "first letter (your row 0 uses none)."),
        Mistake("decoded_forwards", "the letters were decoded by adding the shift: under shift X an encoded letter "
                "is the plaintext letter (letter - X) mod 26, so column X of your answer holds shift -X's posterior."),
    ),
))

test_make_config = make_test("make_config")
test_rebuild_b_O = make_test("rebuild_b_O")
test_load_trained_model = make_test("load_trained_model")
test_correct_logprobs = make_test("correct_logprobs")
test_summary_stats = make_test("summary_stats")
test_first_word_posterior = make_test("first_word_posterior")
