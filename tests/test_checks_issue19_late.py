"""Issue 19 for lessons 04-07, class by class: the course's own calls are cases (so no wrong answer the course's
asserts would reject passes), the judgement exercises name the plausible wrong decisions, and a "Likely mistake:"
line names only a mistake that reproduces every output of the learner's."""

from __future__ import annotations

import pytest
import torch

from helpers import accepts, catalogued, diagnoses, reference_of, rejects
from utils.checks.core import REGISTRY, CheckFailed, check, run_case
from utils.stats import bootstrap


def course_case(name: str, fragment: str):
    cases = [c for c in REGISTRY[name].cases(0) if fragment in c.describe()]
    assert len(cases) == 1, [c.describe() for c in REGISTRY[name].cases(0)]
    return cases[0]


def fails_on(name: str, fn, case) -> bool:
    return not run_case(REGISTRY[name], fn, case, diagnose_it=False).passed


# --- 1. the course's own inputs are cases (GAPS of lessons 04 and 06 closed) ------------------------------------


def test_dla_course_case_holds_the_course_assert():
    """Notebook 04 asserts dla.sum(0) == correct logit - baseline logit on its cached run; the case is that run."""
    from utils.checks.core import Ref, _build_ref
    from utils.data import CodeBreakingDataset
    from utils.checks.lesson04 import COURSE_DLA_SIZE

    case = course_case("dla_correct", "the easy model's components")
    components, scale, W_U, labels = case.args
    model = _build_ref(Ref("model", "easy"))
    toks = CodeBreakingDataset("easy", size=COURSE_DLA_SIZE, seed=0).toks
    with torch.inference_mode():
        logits, cache = model.run_with_cache(toks)
        resid = cache["resid_post", 1]
        baseline = resid.mean(0, keepdim=True) / cache["scale"] @ model.W_U + model.b_U
        diff = (logits - baseline).gather(-1, labels.view(-1, 1, 1).expand(-1, toks.shape[1], 1)).squeeze(-1)
    torch.testing.assert_close(reference_of("dla_correct")(*case.args).sum(0), diff, atol=1e-3, rtol=1e-3)
    # a wrong answer that breaks this sum fails on the course's inputs too
    assert fails_on("dla_correct", catalogued("dla_correct", "mean_over_positions"), case)


def test_frequency_baseline_course_case_is_the_library_baseline():
    from utils.bayes import letter_frequency_logprobs

    case = course_case("frequency_baseline_logprobs", "notebook 06's hard dataset")
    toks, freqs = case.args
    assert toks.shape == (1000, 32) and freqs.dtype == torch.float64
    torch.testing.assert_close(reference_of("frequency_baseline_logprobs")(toks, freqs), letter_frequency_logprobs(toks, freqs))
    assert fails_on("frequency_baseline_logprobs", catalogued("frequency_baseline_logprobs", "punctuation_as_letters"), case)


def test_nonletter_course_cases_hold_the_chance_assert():
    """Notebook 06 asserts 0.20 < chance < 0.26 for uniform causal attention on its windows; a share over letters or
    over destinations fails that case."""
    case = course_case("nonletter_attention_share", "uniform causal attention")
    chance = reference_of("nonletter_attention_share")(*case.args).item()
    assert 0.20 < chance < 0.26
    assert fails_on("nonletter_attention_share", catalogued("nonletter_attention_share", "letters"), case)
    labels = [c.describe() for c in REGISTRY["nonletter_attention_share"].cases(0)]
    assert sum("the hard model's layer-" in label for label in labels) == 2


def test_ece_course_case_asserts_not_real():
    """Notebook 06 asserts the verdict 'not real' on its 1,000 windows: a verdict of 'real' fails that case."""
    case = course_case("ece_difference_verdict", "notebook 06's hard model")
    expected = REGISTRY["ece_difference_verdict"].expected(case)
    assert expected["real"] is False and abs(expected["difference"]) / expected["se"] < 1.5
    ref = reference_of("ece_difference_verdict")
    assert fails_on("ece_difference_verdict", lambda *a: {**ref(*a), "real": True}, case)


def test_ece_accepts_another_bootstrap_seed():
    from utils.calibration import ece_of_sums, per_sequence_bins

    def verdict(model_probs, baseline_probs, labels):
        a, b = per_sequence_bins(model_probs, labels), per_sequence_bins(baseline_probs, labels)
        est = bootstrap(lambda x, y: ece_of_sums(x.sum(0)) - ece_of_sums(y.sum(0)), a, b, n_boot=500, seed=7)
        return {"difference": est.value, "se": est.se, "real": bool(abs(est.value) > 2 * est.se)}

    accepts("ece_difference_verdict", verdict, seeds=(0,))


# --- 2. judgement exercises: the wrong error and the wrong verdict are named ------------------------------------


JUDGEMENT_MISTAKES = [
    ("shares_differ", "independent_errors"),
    ("shares_differ", "b_minus_a"),
    ("shares_differ", "se_of_group_a"),
    ("shares_differ", "per_sequence_se"),
    ("ece_difference_verdict", "predictions_resampled"),
    ("ece_difference_verdict", "unpaired"),
    ("ece_difference_verdict", "baseline_minus_model"),
    ("ece_difference_verdict", "signed_verdict"),
    ("difference_is_real", "tokens_as_independent"),
    ("difference_is_real", "unpaired"),
    ("difference_is_real", "b_minus_a"),
    ("difference_is_real", "signed_verdict"),
    ("difference_is_real", "one_se"),
    ("difference_is_real", "sd_not_se"),
    ("difference_is_real", "positions_as_units"),
]


@pytest.mark.parametrize("name, mistake", JUDGEMENT_MISTAKES)
def test_judgement_mistake_is_named(name, mistake):
    diagnoses(name, catalogued(name, mistake), mistake)


def test_difference_is_real_bootstrap_se_is_accepted():
    """A correct answer written differently: the bootstrap SE of the per-sequence differences."""

    def real(loss_a, loss_b):
        est = bootstrap(torch.mean, (loss_a - loss_b).double().mean(-1), n_boot=2000, seed=3)
        return {"difference": est.value, "se": est.se, "real": abs(est.value) > 2 * est.se}

    accepts("difference_is_real", real)


def test_a_verdict_rule_off_by_a_little_is_not_misnamed():
    """A threshold of 3 SE is wrong only where the difference lies between 2 and 3 SE: no catalogued mistake makes
    that decision, so none is named (a threshold of about 1 SE is named one_se)."""
    from utils.reference.lesson07_judgement import difference_is_real

    def three_se(loss_a, loss_b):
        out = difference_is_real(loss_a, loss_b)
        return {**out, "real": abs(out["difference"]) > 3 * out["se"]}

    for seed in (0, 1):
        try:
            check("difference_is_real", three_se, seed=seed)
        except CheckFailed as e:
            assert "Likely mistake" not in str(e)


# --- 3. code exercises: the classes of the exercise text (axis, sign, off-by-one, missing term, type) -------------


CODE_MISTAKES = [
    ("dla_correct", "scaled_before_centring"),
    ("dla_correct", "centred_after_projecting"),
    ("dla_correct", "mean_over_batch_and_positions"),
    ("attention_slot_shares", "destination_excluded"),
    ("loss_per_position", "log_softmax_over_batch"),
    ("loss_per_position", "log_softmax_over_positions"),
    ("ablated_logits", "ablates_values"),
    ("ablated_logits", "methods_swapped"),
    ("ablated_logits", "mean_over_positions"),
    ("ablated_logits", "head_on_seq_axis"),
    ("qk_pattern", "mask_transposed"),
    ("qk_pattern", "divides_by_sqrt_d_model"),
    ("loss_by_letters_seen", "one_bucket_short"),
    ("prefix_match_weights", "excludes_itself_nan"),
    ("prefix_match_weights", "only_last_kept_letter"),
    ("frequency_baseline_logprobs", "freqs_not_logged"),
    ("run_with_patched_kv", "queries_patched"),
    ("ablation_loss_change", "layers_and_heads_swapped"),
    ("ablation_loss_change", "summed_over_batch"),
    ("ov_correct_logits", "multiplies_ln_scale"),
    ("qk_pattern", "diagonal_masked"),
    ("qk_pattern", "masked_after_softmax"),
    ("qk_pattern", "masked_with_zero"),
    ("qk_pattern", "scores_transposed"),
    ("ov_correct_logits", "no_scales"),
    ("frequency_baseline_logprobs", "excludes_current_token"),
    ("frequency_baseline_logprobs", "probabilities"),
    ("frequency_baseline_logprobs", "normalised_over_positions"),
    ("nonletter_attention_share", "space_not_counted"),
    ("nonletter_attention_share", "newline_not_counted"),
    ("nonletter_attention_share", "summed_over_destinations"),
    ("loss_by_letters_seen", "float32"),
    ("loss_by_letters_seen", "ignores_max_letters"),
    ("loss_by_letters_seen", "summed_not_averaged"),
    ("reliability_bins", "float32"),
    ("reliability_bins", "ignores_n_bins"),
    ("reliability_bins", "accuracy_is_target_prob"),
    ("prefix_match_weights", "one_letter_too_many"),
    ("prefix_match_weights", "any_letter_matches"),
    ("prefix_match_weights", "float32"),
    ("run_with_patched_kv", "mask_inverted"),
    ("run_with_patched_kv", "keys_and_values_swapped"),
    ("word_rotation_probs", "second_letter"),
    ("word_rotation_probs", "raw_logits"),
    ("word_rotation_probs", "top_shift_prob"),
    ("word_rotation_probs", "float64"),
    ("word_rotation_probs", "reads_shift_0"),
]


@pytest.mark.parametrize("name, mistake", CODE_MISTAKES)
def test_code_mistake_is_named(name, mistake):
    diagnoses(name, catalogued(name, mistake), mistake)


# --- 4. each message names the cause every code that produces that output has --------------------------------


def test_query_bias_alone_is_named_without_claiming_the_key_bias_is_missing():
    """The key bias adds the same score to every source of a destination: a pattern without b_Q (b_K kept) is the
    pattern without both, so the message may only say that b_Q is missing."""
    from utils.reference import lesson05 as r5

    message = diagnoses("qk_pattern", lambda q, k, WQ, bQ, WK, bK: r5.qk_pattern(q, k, WQ, 0 * bQ, WK, bK), "no_biases")
    assert "b_Q is missing" in message and "b_Q and b_K are missing" not in message
    accepts("qk_pattern", lambda q, k, WQ, bQ, WK, bK: r5.qk_pattern(q, k, WQ, bQ, WK, 0 * bK))  # b_K cannot matter


def test_nonletter_messages_name_the_right_ids():
    """In the hard vocabulary id 26 is the newline and id 27 the space."""
    from utils.data import VOCAB_HARD

    assert VOCAB_HARD[26] == "\n" and VOCAB_HARD[27] == " "
    newline_only = diagnoses("nonletter_attention_share", lambda p, t: (p * (t == 26)[:, None, None, :]).sum(-1).mean((0, 2)),
                             "spaces_only")
    assert "only id 26 counts" in newline_only and "id 26 is the newline" in newline_only
    space_only = diagnoses("nonletter_attention_share", lambda p, t: (p * (t == 27)[:, None, None, :]).sum(-1).mean((0, 2)),
                           "space_only")
    assert "only spaces (id 27)" in space_only


def test_log_probs_are_named_log_probs_and_logits_logits():
    from utils.reference import lesson07 as r7

    message = diagnoses("word_rotation_probs", lambda m, w: r7.word_rotation_probs(m, w).log(), "logits_not_probs")
    assert "raw logits" not in message


def test_letters_seen_by_position_is_named_as_counting_every_token():
    """A bucket of position + 1 (every token counted as a letter) is named for that cause, not "one bucket"."""
    from utils.circuits import loss_by_letters_seen

    def by_position(logprobs_correct, toks, max_letters=26):
        return loss_by_letters_seen(logprobs_correct, torch.zeros_like(toks), max_letters)

    message = diagnoses("loss_by_letters_seen", by_position, "position_instead_of_letters")
    assert "every token is counted as a letter" in message


def test_loss_by_letters_seen_default_max_letters_is_a_case():
    """The text names the default max_letters=26: a function whose default differs fails the case that omits it."""
    from utils.circuits import loss_by_letters_seen

    labels = [c.describe() for c in REGISTRY["loss_by_letters_seen"].cases(0)]
    assert any("default (26)" in label for label in labels)
    rejects("loss_by_letters_seen", lambda lp, toks, max_letters=32: loss_by_letters_seen(lp, toks, max_letters))
    accepts("loss_by_letters_seen", lambda lp, toks, max_letters=26: loss_by_letters_seen(lp, toks, max_letters))
