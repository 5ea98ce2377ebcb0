"""Every lesson-06 check accepts correct answers, rejects plausible wrong ones (naming the catalogued mistakes) and
in-place changes of its inputs. (observer_table, baseline_loss_gap and shift_entropy are no longer exercises: lesson
06 gives their code and asks for judgement instead.)"""


import pytest

from helpers import accepts, catalogue, catalogued, diagnoses, reference_of, rejects, writes_into
from utils import bayes, circuits

NAMES = [
    "frequency_baseline_logprobs",
    "loss_by_letters_seen",
    "nonletter_attention_share",
]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_library_versions_match_the_references():
    accepts("loss_by_letters_seen", circuits.loss_by_letters_seen)
    accepts("frequency_baseline_logprobs", bayes.letter_frequency_logprobs)


@pytest.mark.parametrize("name, mistake", catalogue("06"))
def test_catalogued_mistake_is_rejected_and_named(name, mistake):
    diagnoses(name, catalogued(name, mistake), mistake)


# Correct answers written differently


def test_nonletter_accepts_masked_sum():
    accepts("nonletter_attention_share",
            lambda pattern, toks: pattern.masked_fill((toks < 26)[:, None, None, :], 0).sum(-1).mean((0, 2)))


# In-place changes and a model left changed


@pytest.mark.parametrize("name, arg", [
    ("frequency_baseline_logprobs", 0), ("frequency_baseline_logprobs", 1),
    ("loss_by_letters_seen", 0), ("loss_by_letters_seen", 1),
    ("nonletter_attention_share", 0),
])
def test_in_place_change_of_an_input_is_rejected(name, arg):
    rejects(name, writes_into(reference_of(name), arg), match="in place")


# Messages


def test_baseline_float32_message_says_dtype():
    ref = reference_of("frequency_baseline_logprobs")
    rejects("frequency_baseline_logprobs", lambda toks, letter_freqs: ref(toks, letter_freqs).float(), match="dtype")
