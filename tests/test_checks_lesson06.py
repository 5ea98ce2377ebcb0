"""Every lesson-06 check accepts the reference and rejects plausible wrong answers."""

import math

import pytest
import torch
from eindex import eindex

from helpers import accepts, reference_of, rejects
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


# observer_table


def test_observer_table_rejects_unweighted_mean():
    def wrong(model, dataset):
        comparison = analysis.position_comparison(model, dataset)
        return torch.stack([comparison[k].double().mean(0) for k in ("model", "independent", "bayes")])

    rejects("observer_table", wrong, match="easy")


def test_observer_table_rejects_transposed():
    rejects("observer_table", lambda model, dataset: reference_of("observer_table")(model, dataset).T)


# frequency_baseline_logprobs


def test_baseline_rejects_punctuation_as_letters():
    def wrong(toks, letter_freqs):
        plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
        return torch.cumsum(letter_freqs.double().log()[plain], dim=1).log_softmax(-1)

    rejects("frequency_baseline_logprobs", wrong)


def test_baseline_rejects_shifting_the_wrong_way():
    def wrong(toks, letter_freqs):
        plain = (toks.unsqueeze(-1) + torch.arange(26)) % 26
        evidence = torch.where((toks < 26).unsqueeze(-1), letter_freqs.double().log()[plain], 0.0)
        return torch.cumsum(evidence, dim=1).log_softmax(-1)

    rejects("frequency_baseline_logprobs", wrong)


def test_baseline_rejects_only_the_current_letter():
    def wrong(toks, letter_freqs):
        plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
        evidence = torch.where((toks < 26).unsqueeze(-1), letter_freqs.double().log()[plain], 0.0)
        return evidence.log_softmax(-1)

    rejects("frequency_baseline_logprobs", wrong)


def test_baseline_rejects_float32():
    ref = reference_of("frequency_baseline_logprobs")
    rejects("frequency_baseline_logprobs", lambda toks, letter_freqs: ref(toks, letter_freqs).float(), match="dtype")


# baseline_loss_gap


def test_gap_rejects_float32():
    ref = reference_of("baseline_loss_gap")
    rejects("baseline_loss_gap", lambda m, b, labels: ref(m, b, labels).float(), match="dtype")

def test_gap_rejects_model_minus_baseline():
    rejects("baseline_loss_gap", lambda m, b, labels: -reference_of("baseline_loss_gap")(m, b, labels))


def test_gap_rejects_probabilities():
    def wrong(model_logprobs, baseline_logprobs, labels):
        m = eindex(model_logprobs.exp(), labels, "batch seq [batch]")
        b = eindex(baseline_logprobs.exp(), labels, "batch seq [batch]")
        return (m - b).mean(0)

    rejects("baseline_loss_gap", wrong)


# shift_entropy


def test_entropy_rejects_nats():
    rejects("shift_entropy", lambda lp: -(lp.exp() * lp).nan_to_num().sum(-1))


def test_entropy_rejects_nan_on_certain_shift():
    rejects("shift_entropy", lambda lp: -(lp.exp() * lp).sum(-1) / math.log(2), match="NaN")


# loss_by_letters_seen


def test_letters_rejects_counting_before_the_position():
    def wrong(lpc, toks, max_letters=26):
        shifted = torch.cat([torch.full_like(toks[:, :1], 26), toks[:, :-1]], dim=1)
        return reference_of("loss_by_letters_seen")(lpc, shifted, max_letters)

    rejects("loss_by_letters_seen", wrong)


def test_letters_rejects_position_instead_of_letters():
    def wrong(lpc, toks, max_letters=26):
        return reference_of("loss_by_letters_seen")(lpc, torch.zeros_like(toks), max_letters)

    rejects("loss_by_letters_seen", wrong)


def test_letters_rejects_mean_logprob_sign():
    def wrong(lpc, toks, max_letters=26):
        return -reference_of("loss_by_letters_seen")(lpc, toks, max_letters)

    rejects("loss_by_letters_seen", wrong)


# nonletter_attention_share


def test_nonletter_rejects_destination_mask():
    def wrong(pattern, toks):
        on_dest = pattern.sum(-1) * (toks >= 26).unsqueeze(1)  # [batch head dest]
        return on_dest.mean((0, 2))

    rejects("nonletter_attention_share", wrong)


def test_nonletter_rejects_mean_over_sources():
    def wrong(pattern, toks):
        return (pattern * (toks >= 26)[:, None, None, :]).mean(-1).mean((0, 2))

    rejects("nonletter_attention_share", wrong)


def test_nonletter_rejects_space_only():
    def wrong(pattern, toks):
        return (pattern * (toks == 27)[:, None, None, :]).sum(-1).mean((0, 2))

    rejects("nonletter_attention_share", wrong)
