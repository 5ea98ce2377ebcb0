"""Issue 19, class 2: a check is at least as strong as every assert the course makes about its function's output.

`course_asserts()` enumerates, per exercise, the assert lines of the solution notebooks that test the function's
output (they call it, or use a variable assigned from a call of it). Each exercise with such asserts must have a
case that runs the function on the course's own inputs (`COURSE_CASE`: a fragment of that case's label): the check
compares every value of that output at its tolerance (1e-4 or tighter), which no assert of the course is stronger
than on those inputs. Exercises without such a case yet are listed in `GAPS`, each with the reason, so the gap is
visible and cannot grow silently: an exercise whose asserts are in neither fails the test."""

from __future__ import annotations

import re

import nbformat
import pytest

import utils.checks  # noqa: F401  (registers every exercise)
from test_pedagogy import LESSONS, lesson_id
from utils.checks.core import REGISTRY

COURSE_CASE = {
    "rotate_text": "as notebook 01 calls it",
    "tokenize": "as notebook 01 calls it",
    "encode_tokens": "8 easy sequences",  # the dataset's own encoding: token ids and shifts 0-25 (assert: toks equal)
    "word_probabilities": "the word table's counts",
    "rotation_twins": "the 100 words of the table",
    "make_config": "('easy')",
    "rebuild_b_O": "the trained easy state dict",
    "first_word_posterior": "'the' + 0, easy words_freq",
    "correct_logprobs": "as notebook 02 calls it",  # a stand-in built the same way: the medium model, 48 sequences
    "summary_stats": "as notebook 02 calls it",
    "first_char_probs": "the trained easy model",
    "letter_freqs_by_position": "the 100-word table, easy frequencies",
    "implied_first_letter_probs": "as notebook 03 builds probs0",  # the medium and hard models (see lesson03.py)
    "rotated_word_tokens": "the 100 words of the table",
    "rotation_averaged_probs": "the easy model, all rotations of ['the', 'and', 'you']",
    "ablation_loss_change": "easy model, mean ablation",
    "run_with_patched_kv": "no mask",
    "below_bayes_verdict": "the model's and the Bayes observer's p(correct) at position 1",
    "word_rotation_probs": "easy model, 6 words of the table",
    "dla_correct": "the easy model's components, cache['scale'], W_U and labels",
    "frequency_baseline_logprobs": "notebook 06's hard dataset (1,000 windows), the training corpus's letter frequencies",
    "nonletter_attention_share": "uniform causal attention [1000, 1, 32, 32] on notebook 06's windows",
    "ece_difference_verdict": "notebook 06's hard model and letter-frequency baseline on its 1,000 windows",
}
GAPS = {  # exercise: why no case runs it on the course's own inputs yet (random inputs of the same shapes instead)
    "independent_evidence_probs": "the course's exact frequencies would show a prediction's answer in a failure "
                                  "message (issue 22): jittered frequencies instead, at the course's assert_close "
                                  "tolerance (test_checks_lesson03: as strong as the course's asserts)",
}
ASSERT = re.compile(r"^\s*(assert\b|torch\.testing\.assert_close\()")


def course_asserts() -> dict[str, list[tuple[str, int, str]]]:
    """{exercise: [(lesson, cell index, assert line)]} for the solution notebooks present."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for path in LESSONS:
        lesson = lesson_id(path)
        names = [n for n, ex in REGISTRY.items() if ex.lesson == lesson]
        cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        outputs: dict[str, str] = {}
        for source in cells:
            for line in source.splitlines():
                for name in names:
                    m = re.match(rf"\s*([\w, ]+?)\s*=\s*.*\b{name}\(", line)
                    if m and not line.lstrip().startswith("def "):
                        for var in m.group(1).split(","):
                            outputs.setdefault(var.strip(), name)
        for index, source in enumerate(cells):
            for line in source.splitlines():
                if not ASSERT.match(line):
                    continue
                hits = {n for n in names if re.search(rf"\b{n}\(", line)}
                hits |= {n for var, n in outputs.items() if re.search(rf"\b{re.escape(var)}\b", line)}
                for name in hits:
                    out.setdefault(name, []).append((lesson, index, line.strip()))
    return out


def test_course_asserts_table_prints():
    found = course_asserts()
    print("\nexercise: the course's asserts on its output -> the case on the course's inputs (or the gap)")
    for name, lines in sorted(found.items()):
        cover = COURSE_CASE.get(name) or f"GAP: {GAPS.get(name, 'NONE')}"
        print(f"  {name}: {len(lines)} assert(s) -> {cover}")
        for lesson, index, line in lines:
            print(f"      {lesson} code cell {index}: {line[:110]}")
    assert found, "no asserts found in solutions/"


def test_every_asserted_exercise_has_a_course_case_or_a_stated_gap():
    missing = sorted(set(course_asserts()) - set(COURSE_CASE) - set(GAPS))
    assert not missing, f"exercises whose output the course asserts on, without a case on the course's inputs: {missing}"


@pytest.mark.parametrize("name", sorted(COURSE_CASE))
def test_course_case_exists(name):
    if name not in REGISTRY:
        pytest.skip(f"{name} is no longer an exercise")
    labels = [case.describe() for case in REGISTRY[name].cases(0)]
    assert any(COURSE_CASE[name] in label for label in labels), (COURSE_CASE[name], labels)
