"""Every lesson-06 check accepts correct answers, rejects plausible wrong ones (naming the catalogued mistakes),
in-place changes of its inputs and a model left changed."""

import math

import pytest
import torch
from eindex import eindex

from helpers import accepts, catalogue, catalogued, diagnoses, not_diagnosed, reference_of, rejects, writes_into
from utils import analysis, bayes, circuits

NAMES = [
    "observer_table",
    "frequency_baseline_logprobs",
    "baseline_loss_gap",
    "shift_entropy",
    "loss_by_letters_seen",
    "nonletter_attention_share",
]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_library_versions_match_the_references():
    accepts("shift_entropy", circuits.shift_entropy)
    accepts("loss_by_letters_seen", circuits.loss_by_letters_seen)
    accepts("frequency_baseline_logprobs", bayes.letter_frequency_logprobs)


@pytest.mark.parametrize("name, mistake", catalogue("06"))
def test_catalogued_mistake_is_rejected_and_named(name, mistake):
    diagnoses(name, catalogued(name, mistake), mistake)


# Correct answers written differently


def test_entropy_accepts_xlogy():
    accepts("shift_entropy", lambda lp: -torch.special.xlogy(lp.exp(), lp.exp()).sum(-1) / math.log(2))


def test_gap_accepts_gather():
    def gap(m, b, labels):
        index = labels.view(-1, 1, 1).expand(-1, m.shape[1], 1)
        return (m.double().gather(-1, index) - b.double().gather(-1, index)).squeeze(-1).mean(0)

    accepts("baseline_loss_gap", gap)


def test_nonletter_accepts_masked_sum():
    accepts("nonletter_attention_share",
            lambda pattern, toks: pattern.masked_fill((toks < 26)[:, None, None, :], 0).sum(-1).mean((0, 2)))


# Wrong answers outside the catalogue: rejected, not named


def test_observer_table_rejects_rows_in_another_order():
    def wrong(model, dataset):
        return reference_of("observer_table")(model, dataset)[[2, 1, 0]]

    not_diagnosed("observer_table", wrong)


def test_entropy_rejects_log10():
    not_diagnosed("shift_entropy", lambda lp: circuits.shift_entropy(lp) * math.log10(2))


# In-place changes and a model left changed


@pytest.mark.parametrize("name, arg", [
    ("observer_table", 1), ("frequency_baseline_logprobs", 0), ("frequency_baseline_logprobs", 1),
    ("baseline_loss_gap", 0), ("shift_entropy", 0), ("loss_by_letters_seen", 0), ("loss_by_letters_seen", 1),
    ("nonletter_attention_share", 0),
])
def test_in_place_change_of_an_input_is_rejected(name, arg):
    rejects(name, writes_into(reference_of(name), arg), match="in place")


def test_entropy_rejects_nan_to_num_in_place():
    def replaces_inf_in_place(lp):
        lp[lp == float("-inf")] = 0.0  # right entropy (0 * 0), but the caller's log-probs are changed
        return circuits.shift_entropy(lp)

    rejects("shift_entropy", replaces_inf_in_place, match="in place")


def test_observer_table_rejects_a_model_left_with_a_hook():
    def leaves_hook(model, dataset):
        model.add_hook("hook_embed", lambda x, hook: x)
        return reference_of("observer_table")(model, dataset)

    rejects("observer_table", leaves_hook, match="hook(s) on `model`")


def test_observer_table_rejects_a_changed_word_table():
    def sorts_words(model, dataset):
        out = reference_of("observer_table")(model, dataset)
        dataset.words_freq.sort()  # alphabetical: the rows of the word table no longer follow dataset.word_list
        return out

    rejects("observer_table", sorts_words, match="changed the list `dataset.words_freq`")


# Messages


def test_observer_table_message_names_the_model():
    def wrong(model, dataset):
        comparison = analysis.position_comparison(model, dataset)
        return torch.stack([comparison[k].double().mean(0) for k in ("model", "independent", "bayes")])

    rejects("observer_table", wrong, match="easy")


def test_baseline_float32_message_says_dtype():
    ref = reference_of("frequency_baseline_logprobs")
    rejects("frequency_baseline_logprobs", lambda toks, letter_freqs: ref(toks, letter_freqs).float(), match="dtype")


def test_entropy_nan_message():
    rejects("shift_entropy", lambda lp: -(lp.exp() * lp).sum(-1) / math.log(2), match="NaN")
