"""A "Likely mistake:" line where no catalogued answer can reproduce the learner's (issue 19, class 6): a judgement
check's branch that rejects a decision for a reason it can name (`core.Judged`), and a side effect the value check
cannot see (an input changed in place). Named only where every failing case names the same cause; a statistical
rejection that could have other causes names none."""

from __future__ import annotations

import torch

from helpers import LIKELY, diagnosis_lines, rejects
from utils.checks.core import REGISTRY, Judged, cause_line
from utils.reference import lesson01 as r1


def _at_0A(resid: torch.Tensor, new_0A: torch.Tensor) -> torch.Tensor:
    return torch.cat([new_0A[:, None], resid[:, 1:]], 1)


def named(name: str, fn, seed: int = 0) -> str:
    lines = diagnosis_lines(rejects(name, fn, seed=seed))
    assert len(lines) == 1 and lines[0].startswith(LIKELY), lines
    return lines[0]


def test_cause_line_needs_the_same_cause_on_every_failing_case():
    a, b = Judged("problem one", "cause A"), Judged("problem two", "cause B")
    assert cause_line([a, Judged("other words", "cause A")]) == f"{LIKELY} cause A"
    assert cause_line([a, b]) is None  # two different causes: neither explains every failure
    assert cause_line([a, "a wrong value, no cause"]) is None
    assert cause_line([]) is None


def test_an_input_changed_in_place_is_named():
    def in_place(plain_toks, shifts):
        letters = plain_toks < 26
        plain_toks[letters] = ((plain_toks + shifts[:, None]) % 26)[letters]
        return plain_toks

    assert "in-place operation on an input" in named("encode_tokens", in_place)


def test_a_copy_then_a_wrong_value_is_not_named_as_in_place():
    lines = diagnosis_lines(rejects("encode_tokens", lambda toks, shifts: r1.encode_tokens(toks.clone(), -shifts)))
    assert not any("in-place" in line for line in lines), lines


def test_judged_decisions_name_their_mistake():
    assert "claimed intervention itself" in named(
        "choose_control", lambda head, rival, position: {"component": head, "position": position, "method": "resample"})
    assert "mean or zero ablation" in named(
        "choose_control", lambda head, rival, position: {"component": rival, "position": position, "method": "mean"})
    assert "LayerNorm undoes" in named("key_input_control", lambda r: _at_0A(r, r[:, 0] * 3))
    assert "positions other than 0A" in named("key_input_control", lambda r: r[:, [2, 1, 0] + list(range(3, r.shape[1]))])
    assert "predicts nothing" in named("falsify_monotone", lambda: (0, 1, 3, 1))
    assert "rules out" in named("falsify_monotone", lambda: (1, 1, 3, 1))

    def most_frequent(candidates, words_freq, k):
        freq = dict(words_freq)
        return sorted(candidates, key=lambda w: -freq[w])[:k]

    assert "nearly the same" in named("discriminating_openings", most_frequent)


def test_hooks_left_on_the_model_are_named():
    """The right logits, but the hooks stay on the model: every later forward pass would be patched."""
    from utils.causal import KV_HOOKS

    def leaves_hooks(model, toks, new_k, new_v, mask=None):
        keep = (torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask.bool()).view(1, -1, 1, 1)
        for name, new in zip(KV_HOOKS, (new_k, new_v)):
            model.add_hook(name, lambda act, hook, new=new: torch.where(keep, new, act))
        with torch.inference_mode():
            return model(toks)

    assert "hooks added to the model" in named("run_with_patched_kv", leaves_hooks)


def test_a_statistical_rejection_names_no_cause():
    """(1, 2, 1, 1) keeps more in slot B and does not recover less on fresh data: the check says so, but why is the
    learner's to find (it could be several things), so no line names a mistake."""
    message = rejects("falsify_monotone", lambda: (1, 2, 1, 1), match="not above 0")
    assert LIKELY not in message


def test_the_grader_names_the_judged_cause():
    from utils.grading.scoring import case_outcome

    ex = REGISTRY["falsify_monotone"]
    case = ex.cases(0)[0]
    status, message = case_outcome(ex, case, None, {"status": "ok", "value": (0, 1, 3, 1)})
    assert status == "fail" and f"{LIKELY} a pattern that keeps less" in message
    status, message = case_outcome(ex, case, None, {"status": "side_effect", "error": "your function changed its "
                                                    "input `x` in place (3 of 4 values): ..."})
    assert "in-place operation on an input" in message
