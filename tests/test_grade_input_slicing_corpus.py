"""Leaving out the course's display-only cells never changes an honest learner's score (issue 21, item 7):
a corpus of honest variants (a cell that raises before rebinding a name, reordered cells, dynamic access through
sys.modules['__main__'], eval and IPython's `_`) is graded with and without --every-cell, and every exercise
gets the same score. (Kernels, as with --no-sandbox: the slicer is what is tested, not the sandbox.)"""

from __future__ import annotations

import inspect

import nbformat
import pytest

from utils import grade
from utils.grading import slicing
from utils.grading.slicing import normalized
from utils.notebooks import setup_cell_source
from utils.reference import lesson01

IMPORTS = """\
import string
import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
import utils
from utils.data import VOCAB_EASY, VOCAB_HARD
"""


def impl(name: str) -> str:
    """The reference's code under another name (the learner's own implementation, which a wrapper calls)."""
    return inspect.getsource(getattr(lesson01, name)).replace(f"def {name}(", f"def _{name}_impl(")


def plain(name: str) -> str:
    return inspect.getsource(getattr(lesson01, name))


# learner -> [(cell, is the course's own cell)]: the course's cells only compute; the learner's are honest
CORPUS = {
    "stale": [
        (setup_cell_source(), True),
        (IMPORTS, False),
        # a learner cell that raises before it binds `offset` again: `base` must come from the course's `offset`
        ("offset = len(VOCAB_EASY) * 0", True),
        ("check = undefined_name\noffset = 5", False),
        ("base = offset", False),
        (impl("rotate_text") + "\ndef rotate_text(text, shift):\n    return _rotate_text_impl(text, shift + base)\n", False),
        # reordered: the course's display cell runs before the learner defines the function (it raises either way)
        ("print(tokenize('abc', 'easy'))", True),
        (plain("tokenize"), False),
        (plain("word_probabilities"), False),
        (plain("rotation_twins"), False),
        (plain("encode_tokens"), False),
        ("print(rotate_text('abc', 1))", True),  # only shows: left out
    ],
    "dynamic": [
        (setup_cell_source(), True),
        (IMPORTS, False),
        (plain("rotate_text"), False),
        ("vocab_size = len(VOCAB_EASY)", True),
        (impl("tokenize") + "\ndef tokenize(text, mode):\n    assert eval('vocab_size') > 0\n"
                            "    return _tokenize_impl(text, mode)\n", False),
        # the module's namespace read through sys.modules['__main__']
        ("scale = len(VOCAB_EASY) // len(VOCAB_EASY)", True),
        (impl("word_probabilities") + "\nimport sys\ndef word_probabilities(counts, mode):\n"
         "    return _word_probabilities_impl(counts * sys.modules['__main__'].scale, mode)\n", False),
        # IPython's `_`: the value the course's display cell showed
        ("26", True),
        ("n_letters = _", False),
        (impl("rotation_twins") + "\ndef rotation_twins(words):\n    assert n_letters == 26, n_letters\n"
                                  "    return _rotation_twins_impl(words)\n", False),
        (plain("encode_tokens"), False),
    ],
    "claims": [
        (setup_cell_source(), True),
        (IMPORTS, False),
        ("sample = 'hello world'", True),
        # the learner's own cells that only show or check what the course made (with the course library): left out
        ("shifted = utils.data.rotate(sample, 3)\nprint(shifted, len(shifted))\nassert shifted != sample", False),
        ("assert utils.data.rotate(sample, 1) == 'not this'", False),  # a check that fails: left out all the same
        (plain("rotate_text"), False),
        (plain("tokenize"), False),
        (plain("word_probabilities"), False),
        (plain("rotation_twins"), False),
        (plain("encode_tokens"), False),
    ],
}


@pytest.mark.slow
def test_honest_variants_score_the_same_with_and_without_every_cell(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    course = set()
    for learner, cells in CORPUS.items():
        (subs / learner).mkdir(parents=True)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src, _ in cells])
        nbformat.write(nb, subs / learner / "01_dataset.ipynb")
        course |= {normalized(src) for src, ours in cells if ours}
    monkeypatch.setattr(slicing, "course_cells", lambda *a, **k: {"01": course})
    runs = {}
    for every_cell in (False, True):
        settings = grade.Settings(sandbox="none", seed=7, every_cell=every_cell, cell_timeout=60,
                                  exercise_timeout=60, submission_timeout=400)
        results = grade.grade_all(subs, tmp_path / f"out{every_cell}", jobs=2, settings=settings, progress=False)
        runs[every_cell] = {r["learner"]: {n: e["score"] for n, e in r["exercises"].items()} for r in results}
        left_out = {r["learner"]: r["notebooks"]["01_dataset.ipynb"]["course_cells_not_run"] for r in results}
        assert (left_out["stale"] >= 1 and left_out["claims"] >= 3) if not every_cell else not any(left_out.values()), \
            left_out
    assert runs[False] == runs[True]
    for learner, scores in runs[True].items():  # honest: every exercise earns its points
        assert all(score > 0 for score in scores.values()), (learner, scores)
