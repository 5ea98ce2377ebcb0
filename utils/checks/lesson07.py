"""Checks for notebook 07 (causal tests of the account: resample ablation, queries, rotation symmetry).

As for every lesson, the framework (`core.call_and_inspect`) also fails a function that changes one of its inputs
in place, changes the model's weights, or leaves a hook on the model (each would silently spoil later cells).
"""

from __future__ import annotations

import torch

from ..data import CodeBreakingDataset, word_tokens
from .core import Case, Exercise, Mistake, Ref, _build_ref, make_test, reference, register

R = "lesson07"


# ---------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------


def _random_table(g: torch.Generator, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    toks = torch.randint(0, 4, (vocab, 3), generator=g)  # few letters, so that many words share prefixes
    toks = torch.unique(toks, dim=0)
    toks = toks[torch.randperm(len(toks), generator=g)]
    probs = torch.rand(len(toks), generator=g, dtype=torch.float64) + 0.05
    return toks, probs / probs.sum()


def _prefix_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for vocab, n_keep in ((40, 1), (40, 2), (25, 0), (30, 3)):
        toks, probs = _random_table(g, vocab)
        cases.append(Case((toks, probs, n_keep), label=f"random table of {len(toks)} words, n_keep={n_keep}"))
    table = word_tokens(["the", "and", "one", "bar", "tea", "ten", "thy"])
    probs = torch.tensor([5.0, 4.0, 3.0, 1.0, 1.0, 2.0, 0.5], dtype=torch.float64)
    cases.append(Case((table, probs / probs.sum(), 2), label="['the', 'and', 'one', 'bar', 'tea', 'ten', 'thy'], n_keep=2"))
    return cases


def _kv_inputs(seed: int, size: int, mode: str = "easy") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    toks = CodeBreakingDataset(mode, size=size, seed=seed).toks
    model = _build_ref(Ref("model", mode))
    with torch.inference_mode():
        _, cache = model.run_with_cache(CodeBreakingDataset(mode, size=size, seed=seed + 1).toks)
    k, v = cache["k", 1].clone(), cache["v", 1].clone()
    mask = torch.rand(toks.shape[1], generator=g) < 0.5
    return toks, k, v, mask


def _patch_cases(seed: int) -> list[Case]:
    toks, k, v, mask = _kv_inputs(seed, 16)
    return [
        Case((Ref("model", "easy"), toks, k, v, mask), label="easy model, keys/values of other sequences, random mask"),
        Case((Ref("model", "easy"), toks, k * 0.5, v.flip(0), ~mask), label="easy model, scaled keys, other mask"),
        Case((Ref("model", "easy"), toks[:, :9], k[:, :9], v[:, :9], mask[:9]), label="easy model, 9 positions"),
        # the way lesson 07 calls it: no mask, so every position is patched
        Case((Ref("model", "easy"), toks, k, v), label="easy model, no mask (the default mask=None: every position)"),
        Case((Ref("model", "easy"), toks[:, :7], k[:, :7], v[:, :7]), {"mask": None}, label="easy model, 7 positions, mask=None"),
    ]


def _rotation_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    table = word_tokens(CodeBreakingDataset("easy", size=1).word_list)
    pick = torch.randperm(len(table), generator=g)[:6]
    return [
        Case((Ref("model", "easy"), table[pick]), label="easy model, 6 words of the table"),
        Case((Ref("model", "medium"), table[:3]), label="medium model, 'the', 'and', 'you'"),
    ]


# ---------------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------------

register(Exercise(
    "prefix_match_weights", "07", reference(R, "prefix_match_weights"), _prefix_cases,
    hint="Row i is a probability distribution over the table: check which words share word i's first n_keep "
         "letters, and weigh them by the table's probabilities.",
    mistakes=(
        Mistake("not_normalised", "the rows do not sum to 1: each row should be a distribution over replacement words."),
        Mistake("ignores_word_probs", "the weights are uniform over matching words; a redrawn word must follow the "
                                      "dataset's word probabilities."),
        Mistake("normalised_over_wrong_axis", "the weights are normalised over the wrong axis (over i, down each "
                                              "column): row i is the distribution, so its entries over j sum to 1."),
        Mistake("matches_last_letters", "the match compares the last letters of the words, not the first n_keep."),
        Mistake("excludes_itself", "word i is left out of its own row: it shares its first n_keep letters with itself and may be redrawn."),
        Mistake("excludes_itself_nan", "word i is left out of its own row (a row with no other match is NaN): it "
                                       "shares its first n_keep letters with itself and may be redrawn."),
        Mistake("only_last_kept_letter", "only letter n_keep - 1 is compared; a replacement agrees on all of the "
                                         "first n_keep letters."),
        Mistake("one_letter_too_many", "the match compares the first n_keep + 1 letters; a replacement keeps only the "
                                       "first n_keep (an off-by-one in the slice)."),
        Mistake("any_letter_matches", "a word matches when any of the first n_keep letters agree; all of them must "
                                      "(reduce the comparison with all, not any)."),
        Mistake("float32", "the result is float32; the text asks for a float64 matrix."),
    ),
))

register(Exercise(
    "run_with_patched_kv", "07", reference(R, "run_with_patched_kv"), _patch_cases, points=2, atol=1e-4,
    hint="Look at which activations are replaced, in which layer, and at which positions (with and without a mask); "
         "queries and layer 0 stay as they are.",
    mistakes=(
        Mistake("keys_only", "only the keys are patched: the values at the masked positions are still the clean ones."),
        Mistake("layer_0", "the patch is applied in layer 0, not layer 1."),
        Mistake("ignores_mask", "every position is patched, whatever the mask says."),
        Mistake("leaves_hooks", "hooks added with model.add_hook stay on the model after your function returns."),
        Mistake("no_mask_patches_nothing", "without a mask (mask=None, the default, as lesson 07 calls it) nothing is "
                                           "patched: None means every position."),
        Mistake("values_only", "only the values are patched: the keys at the masked positions are still the clean ones."),
        Mistake("queries_patched", "new_k is patched into the queries (hook_q); it replaces the keys (hook_k), and "
                                   "the queries stay as they are."),
        Mistake("mask_inverted", "the patch is applied where the mask is False; it goes where the mask is True."),
        Mistake("keys_and_values_swapped", "new_k goes into the values and new_v into the keys: hook_k takes new_k, "
                                           "hook_v takes new_v."),
    ),
))

register(Exercise(
    "word_rotation_probs", "07", reference(R, "word_rotation_probs"), _rotation_cases, atol=1e-4,
    hint="Look at the failing word and shift: the direction of encoding, the position p is read at, and whether the "
         "values are probabilities.",
    mistakes=(
        Mistake("first_letter", "p(correct) is read after the first letter, not after the whole word."),
        Mistake("rotated_backwards", "the words are encoded with -s but p is read at shift s."),
        Mistake("logits_not_probs", "the values are log-probs (log_softmax), not probabilities."),
        Mistake("second_letter", "p(correct) is read after the second letter (position 1), not after the whole word "
                                 "(position 2)."),
        Mistake("raw_logits", "the values are the raw logits; the text asks for probabilities (softmax over the 26 "
                              "shifts)."),
        Mistake("top_shift_prob", "you read the probability of the most likely shift; the text asks for the "
                                  "probability of the correct shift s of each encoding."),
        Mistake("float64", "the result is float64; the text asks for float32."),
        Mistake("reads_shift_0", "you read the probability of shift 0 for every encoding; for encoding s the correct "
                                 "shift is s itself."),
    ),
))

test_prefix_match_weights = make_test("prefix_match_weights")
test_run_with_patched_kv = make_test("run_with_patched_kv")
test_word_rotation_probs = make_test("word_rotation_probs")

__all__ = [
    "test_prefix_match_weights",
    "test_run_with_patched_kv",
    "test_word_rotation_probs",
]
