"""Checks for notebook 05 (the OV and QK circuits of layer 1)."""

from __future__ import annotations

import torch

from .core import Case, Exercise, Mistake, make_test, reference, register

R = "lesson05"


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _ov_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq, heads in ((52, 3, 2), (9, 7, 3)):
        resid = _centred(torch.randn(batch, seq, 48, generator=g) * 4)
        ln_scale = torch.rand(batch, seq, 1, generator=g) * 3 + 0.5
        W_OV = torch.randn(heads, 48, 48, generator=g) / 7
        W_U = torch.randn(48, 26, generator=g)
        labels = torch.randint(0, 26, (batch,), generator=g)
        final_scale = float(torch.rand((), generator=g) * 2 + 1.5)
        cases.append(Case((resid, ln_scale, W_OV, W_U, final_scale, labels), label=f"random tensors, batch {batch}, seq {seq}, {heads} heads"))
    return cases


def _qk_weights(g: torch.Generator, heads: int, d_model: int = 48, d_head: int = 24):
    return (
        torch.randn(heads, d_model, d_head, generator=g) / 3,
        torch.randn(heads, d_head, generator=g),
        torch.randn(heads, d_model, d_head, generator=g) / 3,
        torch.randn(heads, d_head, generator=g),
    )


def _qk_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for seq, heads in ((32, 2), (6, 3)):
        q_resid = torch.randn(seq, 48, generator=g)
        k_resid = torch.randn(seq, 48, generator=g)
        cases.append(Case((q_resid, k_resid, *_qk_weights(g, heads)), label=f"random queries and keys, seq {seq}, {heads} heads"))
    return cases


def _kcomp_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for seq, heads in ((32, 2), (5, 3)):
        W_pos = torch.randn(seq, 48, generator=g)
        scale0 = torch.rand(seq, generator=g) * 2 + 0.3
        W_OV0 = torch.randn(heads, 48, 48, generator=g) / 7
        scores = torch.randn(heads, seq, seq, generator=g) * 2
        pattern0 = scores.masked_fill(~torch.ones(seq, seq).tril().bool(), float("-inf")).softmax(-1)
        cases.append(Case((W_pos, scale0, W_OV0, pattern0), label=f"random causal patterns, seq {seq}, {heads} heads"))
    return cases


def _key_scale_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for batch, seq, heads in ((6, 32, 2), (3, 5, 3)):
        resid = _centred(torch.randn(batch, seq, 48, generator=g) * 3)
        scale = torch.rand(batch, seq, 1, generator=g) * 3 + 0.3
        constant = torch.full((batch, seq, 1), float(scale.mean()))
        weights = _qk_weights(g, heads)
        cases.append(Case((resid, scale, constant, *weights), label=f"constant key scale, batch {batch}, seq {seq}"))
        cases.append(Case((resid, scale, scale.clone(), *weights), label=f"key scale = the real scale, batch {batch}, seq {seq}"))
    return cases


def _posterior_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for vocab, n_words, dtype in ((30, 1, torch.float64), (30, 4, torch.float64), (12, 2, torch.float64), (20, 3, torch.float32)):
        word_toks = torch.randint(0, 26, (vocab, 3), generator=g)
        word_toks[1] = (word_toks[0] + 13) % 26  # a pair of rotation twins, like "one" / "bar"
        word_toks[2] = (word_toks[3] + int(torch.randint(1, 26, (), generator=g))) % 26  # and another pair
        word_probs = (torch.rand(vocab, generator=g, dtype=torch.float64) + 0.05).to(dtype)
        word_probs = word_probs / word_probs.sum()
        picked = torch.randint(0, vocab, (n_words,), generator=g)
        picked[0] = int(torch.randint(0, 4, (), generator=g))  # the first word has a twin
        shift = int(torch.randint(0, 26, (), generator=g))
        encoded = (word_toks[picked] + shift) % 26
        label = f"{n_words} encoded word(s), a table of {vocab} random words, {dtype} word_probs"
        cases.append(Case((encoded, word_toks, word_probs), label=label))
    # every word has a twin at the same offset, so two shifts stay possible after every word and the evidence of
    # several words must multiply (a sum, a mean or a max of the words' likelihoods gives another posterior)
    base = torch.randint(0, 26, (4, 3), generator=g)
    offset = int(torch.randint(1, 26, (), generator=g))
    word_toks = torch.cat([base, (base + offset) % 26, torch.randint(0, 26, (6, 3), generator=g)])
    word_probs = torch.rand(len(word_toks), generator=g, dtype=torch.float64) + 0.05
    word_probs = word_probs / word_probs.sum()
    picked = torch.tensor([0, 1, 2, 3, 1, 0])
    shift = int(torch.randint(0, 26, (), generator=g))
    cases.append(Case(((base[picked] + shift) % 26, word_toks, word_probs),
                      label="6 encoded words, each with a rotation twin at the same offset (two shifts stay possible)"))
    # the course's own call: 'one bar bar ...' encoded with shift 5 against the word table (notebook 05)
    from ..data import CodeBreakingDataset, word_tokens

    table = CodeBreakingDataset("easy", size=1)
    table_toks = word_tokens([w for w, _ in table.words_freq])
    freqs = torch.tensor([f for _, f in table.words_freq], dtype=torch.float64)
    sentence = word_tokens(["one", "bar", "bar", "bar"])
    cases.append(Case(((sentence + 5) % 26, table_toks, freqs),
                      label="'one bar bar bar' encoded with shift 5, the course's word table (as notebook 05 calls it)"))
    return cases


OV_MISTAKES = (
    Mistake("no_ln_scale", "`ln_scale` is not used: the head's LayerNorm divides resid by it before the OV circuit."),
    Mistake("no_final_scale", "`final_scale` is not used: the final LayerNorm divides the head's output by it."),
    Mistake("transposed_W_OV", "W_OV is applied transposed: in TransformerLens a row vector is multiplied on the "
                               "left (x @ W_OV, d_model in -> d_model out)."),
    Mistake("max_logit", "you take the largest logit over the shifts; the exercise asks for the logit of the "
                         "correct shift labels[b]."),
    Mistake("multiplies_final_scale", "the output is multiplied by final_scale: the final LayerNorm divides by it."),
)
QK_MISTAKES = (
    Mistake("no_mask", "sources later than the destination are not masked before the softmax."),
    Mistake("no_scaling", "the scores are not scaled by 1 / sqrt(d_head)."),
    Mistake("divides_by_d_head", "the scores are divided by d_head; attention divides by its square root."),
    Mistake("no_biases", "the biases b_Q and b_K are missing from the queries and keys."),
    Mistake("softmax_over_destinations", "the softmax runs over destinations (dim -2); each destination's attention "
                                         "is a distribution over sources (the last dim)."),
)
KCOMP_MISTAKES = (
    Mistake("no_scale", "`scale0` is not used: layer 0's LayerNorm divides W_pos[src] by scale0[src]."),
    Mistake("multiplies_by_scale", "W_pos is multiplied by scale0; LayerNorm divides by it."),
    Mistake("transposed_pattern", "the pattern is read transposed: pattern0[h, dest, src] weights source src for "
                                  "destination dest."),
    Mistake("ignores_pattern", "every position only reads itself: mix the sources with pattern0 (the write-up's "
                               "shortcut is not what the exercise asks)."),
    Mistake("mean_over_heads", "the heads are averaged; their outputs add up in the residual stream (sum them)."),
)
KEY_SCALE_MISTAKES = (
    Mistake("scales_queries_too", "the queries are divided by key_scale too; only the keys use key_scale."),
    Mistake("ignores_key_scale", "`key_scale` is not used: the keys are made from resid / key_scale."),
    Mistake("swapped_scales", "scale and key_scale are swapped: queries use resid / scale, keys resid / key_scale."),
    Mistake("no_mask", "sources later than the destination are not masked before the softmax."),
)
POSTERIOR_MISTAKES = (
    Mistake("sums_over_words", "the words' likelihoods are added; independent words multiply."),
    Mistake("mean_over_words", "the words' log-likelihoods are averaged (a geometric mean); independent words "
                               "multiply, so their log-likelihoods add."),
    Mistake("rotates_forward", "the words are rotated forward by s; decoding rotates them back ((toks - s) % 26)."),
    Mistake("ignores_word_frequencies", "every word of the table counts the same: weight it by word_probs."),
    Mistake("unnormalised", "the posterior is not normalised over the 26 shifts."),
    Mistake("float32", "the result is float32: build the word matches in word_probs' dtype (float64 here)."),
    Mistake("weakest_word", "the posterior follows the least likely word at each shift (a minimum): independent words multiply."),
    Mistake("last_word_only", "only the last word is used: every word's evidence counts."),
)

register(Exercise("ov_correct_logits", "05", reference(R, "ov_correct_logits"), _ov_cases, points=2,
                  mistakes=OV_MISTAKES,
                  hint="Look at the quantity that differs: the LayerNorm scale (before the OV circuit), the final "
                       "scale (after it), the side W_OV multiplies from, or which shift is read for each sequence."))
register(Exercise("qk_pattern", "05", reference(R, "qk_pattern"), _qk_cases, points=2,
                  mistakes=QK_MISTAKES,
                  hint="Look at where the failing pattern differs: the biases, the score scale, the mask (which "
                       "sources a destination may see), or the dimension the softmax runs over."))
register(Exercise("kcomp_positional_output", "05", reference(R, "kcomp_positional_output"), _kcomp_cases,
                  mistakes=KCOMP_MISTAKES,
                  hint="Look at which scale divides which position's row, and which dimension of the pattern is the "
                       "destination and which the source."))
register(Exercise("qk_pattern_key_scale", "05", reference(R, "qk_pattern_key_scale"), _key_scale_cases,
                  mistakes=KEY_SCALE_MISTAKES,
                  hint="Look at which scale divides the queries and which the keys, and whether each sequence uses "
                       "its own scales; the rest is the ordinary causal pattern of qk_pattern."))

test_ov_correct_logits = make_test("ov_correct_logits")
test_qk_pattern = make_test("qk_pattern")
test_kcomp_positional_output = make_test("kcomp_positional_output")
register(Exercise("words_shift_posterior", "05", reference(R, "words_shift_posterior"), _posterior_cases,
                  mistakes=POSTERIOR_MISTAKES,
                  hint="Look at the failing shifts: the direction your words are rotated, how one word's likelihood "
                       "uses word_probs, how the words' evidence combines, and the normalisation over the 26 shifts."))

test_qk_pattern_key_scale = make_test("qk_pattern_key_scale")
test_words_shift_posterior = make_test("words_shift_posterior")


# --- a layer-1 head's keys and output split into the parts of its input (issue 9/10): new exercises -------------
from .core import Mistake  # noqa: E402


def _causal_pattern(g: torch.Generator, batch: int, heads: int, seq: int) -> torch.Tensor:
    scores = torch.randn(batch, heads, seq, seq, generator=g) * 2
    return scores.masked_fill(~torch.ones(seq, seq).tril().bool(), float("-inf")).softmax(-1)


def _key_part_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n_parts, batch, seq, heads, d_head in ((5, 4, 12, 2, 24), (3, 2, 5, 3, 7)):
        q = torch.randn(batch, heads, seq, d_head, generator=g)
        parts = _centred(torch.randn(n_parts, batch, seq, 48, generator=g) * 2)
        key_scale = torch.rand(batch, seq, 1, generator=g) * 3 + 0.3
        W_K = torch.randn(heads, 48, d_head, generator=g) / 4
        cases.append(Case((q, parts, key_scale, W_K), label=f"random queries and {n_parts} parts, seq {seq}, d_head {d_head}"))
    return cases


def _output_part_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n_parts, batch, seq, heads in ((5, 4, 12, 2), (2, 3, 6, 3)):
        parts = _centred(torch.randn(n_parts, batch, seq, 48, generator=g) * 2)
        ln_scale = torch.rand(batch, seq, 1, generator=g) * 3 + 0.3
        pattern = _causal_pattern(g, batch, heads, seq)
        W_OV = torch.randn(heads, 48, 48, generator=g) / 7
        cases.append(Case((parts, ln_scale, pattern, W_OV), label=f"random {n_parts} parts and causal patterns, seq {seq}, {heads} heads"))
    return cases


register(Exercise(
    "key_score_components", "05", reference(R, "key_score_components"), _key_part_cases, points=2,
    hint="Look at the quantity that differs: the scale each part is divided by, the score scale, the order of the "
         "destination and source dimensions, masking, or whether each part holds only its own share.",
    mistakes=(
        Mistake("no_key_scale", "the parts are not divided by the LayerNorm scale at their source position"),
        Mistake("no_sqrt_d_head", "the scores are not scaled by 1 / sqrt(d_head), as attention scores are"),
        Mistake("dest_src_swapped", "the last two dimensions are (source, destination) instead of (destination, source)"),
        Mistake("causal_mask", "future sources are masked: the exercise asks for the raw contributions, unmasked"),
        Mistake("summed_over_parts", "every part holds the total score instead of its own share"),
        Mistake("scaled_by_d_model", "the scores are scaled by 1 / sqrt(d_model): attention scores are scaled by the head's size, d_head."),
    ),
))
register(Exercise(
    "head_output_parts", "05", reference(R, "head_output_parts"), _output_part_cases, points=2,
    hint="Look at the scale each part is divided by (at which position), the side W_OV multiplies from, and which "
         "dimension of the pattern is the source.",
    mistakes=(
        Mistake("no_ln_scale", "the parts are not divided by the LayerNorm scale at their source position"),
        Mistake("pattern_transposed", "the pattern is used as [src dest]: rows are destinations, columns sources"),
        Mistake("W_OV_transposed", "W_OV is applied from the wrong side: the stream multiplies it from the left"),
        Mistake("scale_at_destination", "the LayerNorm scale is taken at the destination; each source is normalized "
                                        "by its own scale before the head mixes sources"),
    ),
))
test_key_score_components = make_test("key_score_components")
test_head_output_parts = make_test("head_output_parts")
