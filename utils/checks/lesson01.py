"""Checks for notebook 01 (the dataset)."""

from __future__ import annotations

import random
import string

import torch

from ..data import VOCAB_HARD, load_word_table
from .core import Case, Exercise, Mistake, make_test, reference, register

R = "lesson01"


def _rotate_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    texts = ["the cat sat", "xyz abc", "Hello, World!", "", "Ünïcödé: café, naïve — ß", "Room 101,\n\tdigits 0-9 stay!"]
    texts += ["".join(rng.choice(string.ascii_letters + " .,'é") for _ in range(20)) for _ in range(3)]
    shifts = (0, 1, 13, 25, -3, 27, -100, rng.randrange(-60, 60))  # the text promises any integer
    course = [("the", 18), ("Zoë!", 1), ("one", 13), ("kwlq", -3)]  # the calls and asserts of notebook 01
    return [Case((t, s)) for t in texts for s in shifts] + [Case(c, label=f"{c!r} (as notebook 01 calls it)") for c in course]


def _tokenize_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    plain = ["the and was", "zzz", " a "] + ["".join(rng.choice(string.ascii_lowercase + " ") for _ in range(12))]
    messy = ["The Cat, SAT!", "Tab\there; digits 123\n\"Kept?\" 'yes!'", "ÀÉÎ accents — “curly” quotes: naïve"]
    messy += ["".join(rng.choice(string.printable + "éÉ") for _ in range(30))]
    hard = ["to be, or not to be: that is\nthe question.", "".join(rng.choice(VOCAB_HARD) for _ in range(30))]
    cases = [Case((t, "easy")) for t in plain + messy] + [Case((t, "medium")) for t in plain[:2] + messy[:2]]
    cases += [Case((t, "hard")) for t in hard + messy]
    cases.append(Case(("To be, or NOT", "hard"), label="('To be, or NOT', 'hard') (as notebook 01 calls it)"))
    # edges the text promises ("any text"): the empty text (still int64), and case-folding beyond ASCII
    # (str.casefold turns "ß" into "ss"; lower-casing leaves it, and the vocabulary drops it)
    cases += [Case(("", mode), label=f"the empty text '', mode={mode!r}") for mode in ("easy", "hard")]
    cases += [Case(("Straße, GROẞ", mode), label=f"'Straße, GROẞ' (ß is no letter a-z), mode={mode!r}") for mode in ("easy", "hard")]
    return cases


def _encode_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    easy = torch.randint(0, 27, (8, 32), generator=g)
    hard = torch.randint(0, 36, (5, 16), generator=g)
    square = torch.randint(0, 27, (6, 6), generator=g)
    return [
        Case((easy, torch.randint(0, 26, (8,), generator=g)), label="8 easy sequences, random shifts 0-25"),
        Case((hard, torch.randint(0, 26, (5,), generator=g)), label="5 hard sequences (punctuation ids 26-35)"),
        Case((easy[:2], torch.tensor([0, 25])), label="shifts 0 and 25"),
        Case((square, torch.tensor([-1, 27, 52, -30, 3, 100])), label="6 x 6 tokens, shifts -1, 27, 52, -30, 3, 100"),
    ]


def _word_prob_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    table = torch.tensor([c for _, c in load_word_table()])
    counts = [
        (torch.tensor([1985, 963, 523, 385]), "int64 counts"),
        (torch.randint(1, 500, (100,), generator=g), "100 random int64 counts"),
        (torch.randint(1, 50, (7,), generator=g).int(), "int32 counts"),
        (torch.rand(12, generator=g).float() * 10, "float32 counts"),
        (table.double(), "the word table's counts as float64"),
    ]
    return [Case((c, mode), label=f"{label}, mode={mode!r}") for c, label in counts for mode in ("easy", "medium")]


def _twins_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    table = [w for w, _ in load_word_table()]
    return [
        Case((table,), label="the 100 words of the table"),
        Case((rng.sample(table, 40),), label="40 words of the table"),
        Case((["one", "bar", "the", "ab", "bc", "zab", "ace", "dfh", "abc", "xy"],),
             label="words of lengths 2 and 3 (including a group of three)"),
        Case((["the", "tha", "man", "dry"],), label="['the', 'tha', 'man', 'dry']: same first two letters, no twins"),
        # "non-empty words of any length": one-letter words are all rotations of each other; longer words too
        Case((["a", "hello", "q", "abcd", "uryyb", "bcdf", "to", "zyx", "bcde"],),
             label="words of lengths 1, 2, 3, 4 and 5 (every one-letter word is a twin of every other)"),
        Case(([],), label="an empty list"),
    ]


register(Exercise(
    "rotate_text", "01", reference(R, "rotate_text"), _rotate_cases,
    hint="Compare your output with the expected one character by character: which characters differ (capitals? "
         "punctuation? letters near z?) and for which shifts (negative ones, ones over 25)?",
    mistakes=(
        Mistake("no_wrap", "letters near the end of the alphabet go past `z` (or `Z`): the step that wraps around "
                "the alphabet is missing."),
        Mistake("rotates_everything", "spaces and punctuation were rotated too: only the letters a-z and A-Z move."),
        Mistake("capitals_lowered", "capital letters came back in lower case: a capital should stay a capital."),
        Mistake("capitals_rotated_as_lower", "capital letters came back as lower-case letters: a capital is rotated "
                "within A-Z and stays a capital."),
        Mistake("capitals_left_alone", "capital letters were left unrotated: they move by the shift too, within A-Z."),
        Mistake("backwards", "the sign of the shift is flipped: encoding moves each letter forward by `shift`, "
                "decoding would move it back."),
        Mistake("abs_shift", "negative shifts moved letters forward: the sign of `shift` is dropped (a negative "
                "shift moves letters backwards, e.g. -3 is the same as 23)."),
        Mistake("isalpha", "accented letters (é, ß, ...) were rotated: `str.isalpha` is true for them, but only "
                "a-z and A-Z are part of the cipher."),
        Mistake("wraps_at_25", "letters wrap around after 25 letters, not 26: the alphabet's length is off by one in the modulo."),
        Mistake("one_alphabet_52", "letters moved through one 52-letter alphabet (a-z then A-Z), so z + 1 became A: "
                "lower-case and capital letters each wrap within their own 26."),
        Mistake("capitals_no_wrap", "capitals near Z went past it (to '[', '\\', ... or beyond): capitals wrap within "
                "A-Z, like the lower-case letters within a-z."),
        Mistake("shift_clamped", "shifts below 0 or above 25 were clamped to 0..25: any integer shift counts modulo 26 (27 is 1, -3 is 23)."),
    ),
))
register(Exercise(
    "tokenize", "01", reference(R, "tokenize"), _tokenize_cases,
    hint="Look at which characters of the failing text should survive in this mode's vocabulary, and at the "
         "dtype of your tensor.",
    mistakes=(
        Mistake("int32", "the ids are not int64: torch makes int64 from Python ints unless told otherwise; check "
                "the dtype you asked for."),
        Mistake("no_dtype", "the empty text gives a float32 tensor: with no ids to infer from, torch.tensor([]) is "
                "float; the dtype must be stated."),
        Mistake("casefold", "'ß' became 'ss': str.casefold() folds beyond lower-casing; the vocabulary's letters "
                "come from lower-casing alone."),
        Mistake("capitals_dropped", "capital letters were dropped instead of being read as letters: check the "
                "order of lower-casing and filtering."),
        Mistake("hard_vocab_always", "your function used the hard-mode vocabulary in easy/medium mode: `mode` "
                "decides the vocabulary."),
        Mistake("easy_vocab_always", "your function ignored `mode`: in hard mode punctuation and newlines are "
                "tokens too."),
        Mistake("unknown_as_space", "characters outside the vocabulary became spaces: they are dropped, not replaced."),
        Mistake("medium_is_hard", "in medium mode your function used the hard vocabulary: only 'hard' uses "
                "VOCAB_HARD; easy and medium share VOCAB_EASY."),
        Mistake("stripped", "the spaces at the start and end of the text were dropped: the space is a token of every "
                "vocabulary, wherever it stands; only characters outside the vocabulary are dropped."),
        Mistake("letters_only", "only the letters a-z were kept: the space (and in hard mode punctuation and newlines) "
                "are tokens of the vocabulary too."),
    ),
))
register(Exercise(
    "encode_tokens", "01", reference(R, "encode_tokens"), _encode_cases, points=2,
    hint="Check which ids changed that should not have (26 and above), and whether each row used its own shift.",
    mistakes=(
        Mistake("rotates_non_letters", "ids 26 and above (space, punctuation) were changed: only letters are "
                "encrypted."),
        Mistake("no_modulo", "some letter ids came out above 25 (or below 0): the rotation does not wrap."),
        Mistake("shift_reduced_not_sum", "some letter ids came out above 25: the shift was reduced mod 26, but the "
                "sum letter + shift must be too (a letter near z wraps past it)."),
        Mistake("first_shift_for_all", "every row was encoded with the first row's shift."),
        Mistake("shift_per_position", "the shifts were spread along the sequence instead of down the batch: "
                "check which dimension of `plain_toks` the shifts line up with."),
        Mistake("space_rotated", "id 26 (the space) was treated as a letter: the letters are ids 0-25 only, so the boundary is off by one."),
        Mistake("backwards", "the letters moved backwards: the sign of the shift is flipped (encoding adds each row's shift)."),
    ),
))
register(Exercise(
    "word_probabilities", "01", reference(R, "word_probabilities"), _word_prob_cases,
    hint="Check the failing mode: which words should be more likely than others there, and does your answer sum to "
         "1 in float64?",
    mistakes=(
        Mistake("counts_in_medium", "in medium mode your probabilities follow the counts: medium mode ignores them."),
        Mistake("uniform_in_easy", "the two modes are swapped: easy mode is the one that follows the counts."),
        Mistake("float32", "the probabilities are float32: the exercise asks for float64 whatever the counts' dtype."),
        Mistake("unnormalised", "the probabilities do not sum to 1."),
        Mistake("softmax_of_counts", "the counts went through a softmax: probabilities proportional to the counts come from dividing by their sum, not exponentiating."),
        Mistake("medium_unnormalised", "in medium mode the probabilities do not sum to 1: the uniform weights are not divided by their total."),
        Mistake("floor_division", "integer counts were divided with floor division (//), which rounds each "
                "probability down to 0: convert the counts to float64 before dividing."),
    ),
))
register(Exercise(
    "rotation_twins", "01", reference(R, "rotation_twins"), _twins_cases, points=2,
    strict_types=True,  # the text asks for a list of lists: a tuple is another answer (strict compares containers)
    hint="Compare your groups with the expected ones: is a group missing, one too many, or ordered differently?",
    mistakes=(
        Mistake("first_two_letters", "words that only share the step between their first two letters were grouped: "
                "every letter of two twins must match after the rotation."),
        Mistake("keeps_singletons", "words with no twin were returned as groups of one: only groups of two or more "
                "count."),
        Mistake("no_modulo", "twins that wrap around the alphabet (like `one` and `bar`) were missed: the letter "
                "steps must be taken modulo 26."),
        Mistake("pairs_only", "a group of three or more twins came back as separate pairs."),
        Mistake("unsorted", "the groups (or the words inside them) are not sorted."),
        Mistake("tuples", "the groups are tuples (or the result is one): the text asks for a list of lists."),
        Mistake("signature_sign", "each word was rotated forward by its first letter's index: rotate it back (by "
                "minus that index) so that every word of a group starts with 'a' and the group shares one signature."),
        Mistake("words_unsorted", "the words inside each group are not sorted alphabetically (the list of groups "
                "is sorted, but by each group's first word as found)."),
        Mistake("groups_unsorted", "the list of groups is not sorted (the words inside each group are): sort the "
                "groups too."),
    ),
))

test_rotate_text = make_test("rotate_text")
test_tokenize = make_test("tokenize")
test_encode_tokens = make_test("encode_tokens")
test_word_probabilities = make_test("word_probabilities")
test_rotation_twins = make_test("rotation_twins")
