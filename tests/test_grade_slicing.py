"""Which cells the grader leaves out (utils/grading/slicing.py): only the course's own cells that nothing it runs
needs. Each case is a small notebook; `course` marks the cells that are the course's, unchanged."""

from __future__ import annotations

import nbformat
import pytest

from utils.grading.slicing import course_cells, normalized, skippable_cells
from utils.notebooks import EXERCISES, SOLUTIONS


def skipped(cells: list[str], course: set[int], graded: set[str] = frozenset({"answer"})) -> list[int]:
    return skippable_cells(cells, {normalized(cells[i]) for i in course}, set(graded))


SETUP = "import torch\nmodel = torch.nn.Linear(2, 2)\ndata = torch.ones(3, 2)"
ANSWER = "def answer(x):\n    return x * 2"


def test_a_display_cell_nothing_reads_is_left_out():
    cells = [SETUP, ANSWER, "out = answer(data)\nprint(out.sum())\nassert out.shape == (3, 2)"]
    assert skipped(cells, course={0, 2}) == [2]


def test_a_learner_cell_is_always_run():
    cells = [SETUP, ANSWER, "out = answer(data)\nprint(out.sum())"]
    assert skipped(cells, course={0}) == []


def test_a_value_read_by_a_later_run_cell_is_kept():
    cells = [SETUP, ANSWER, "scale = data.mean()", "def helper(x):\n    return x * scale"]
    assert skipped(cells, course={0, 2}) == []  # cell 3 is the learner's: it reads `scale`
    cells[3] = "y = answer(scale)"  # a learner's cell that calls the notebook's code
    assert skipped(cells, course={0, 2}) == []


def test_a_value_a_graded_function_reads_when_called_is_kept():
    cells = [SETUP, "factor = 3.0", "def answer(x):\n    return x * factor"]
    assert skipped(cells, course={0, 1}) == []
    # ... but not when the function's own parameter or local has that name
    cells[2] = "def answer(x, factor=2):\n    total = factor\n    return x * total"
    assert skipped(cells, course={0, 1}) == [1]


def test_a_name_bound_again_before_it_is_read_needs_no_earlier_cell():
    cells = [SETUP, ANSWER, "fig = answer(data)\nprint(fig)", "fig = answer(data) + 1\nprint(fig)"]
    assert skipped(cells, course={0, 2}) == [2]
    cells[3] = "print(fig)\nfig = answer(data) + 1"  # read before it is bound: cell 2's value is used
    assert skipped(cells, course={0, 2}) == []


def test_loop_and_comprehension_variables_are_their_own():
    cells = [SETUP, ANSWER, "for mode in range(3):\n    print(mode)", "rows = {mode: mode * 2 for mode in range(2)}",
             "for mode in (1, 2):\n    y = answer(mode)"]
    assert skipped(cells, course={0, 2, 3}) == [2, 3]


@pytest.mark.parametrize("change", [
    "model.weight[0] = 0.0",  # an item of an object it did not make
    "model.bias = None",  # an attribute
    "model.register_forward_hook(print)",  # a known mutating method
    "data.mul_(2)",  # an in-place method
    "torch.manual_seed(0)",  # the global random state
    "model.eval()",
    "del data",
    "import math",
    "globals()['data'] = 1",
])
def test_a_cell_that_changes_what_others_use_is_kept(change):
    cells = [SETUP, ANSWER, change, "print(answer(data))"]
    assert 2 not in skipped(cells, course={0, 2, 3})


def test_changes_to_its_own_objects_are_fine():
    cells = [SETUP, ANSWER, "table = {}\ntable['a'] = answer(data)\ng = torch.Generator().manual_seed(0)\nprint(table)"]
    assert skipped(cells, course={0, 2}) == [2]
    # a function's own locals too (not its parameters: the caller's objects)
    own = "def f(x):\n    hooks = []\n    hooks.append(x)\n    return hooks\nprint(f(data))"
    assert skipped([SETUP, ANSWER, own], course={0, 2}) == [2]
    theirs = "def f(x):\n    x.append(1)\n    return x\nprint(f(shared))"
    assert skipped([SETUP, ANSWER, "shared = []", theirs, "print(answer(shared))"], course={0, 2, 3}) == []


def test_names_read_in_an_index_are_not_changed_and_course_imports_only_bind():
    """`mine[rows, data.sum()] = 0` changes `mine` (its own), not `data`; `from utils.bayes import f` only binds
    `f` (import utils loads utils.bayes anyway), so a cell with it can be left out unless `f` is read later."""
    cells = [SETUP, ANSWER, "mine = torch.zeros(3, 3)\nmine[0, data.sum().long() % 3] = 1.0\nprint(mine)"]
    assert skipped(cells, course={0, 2}) == [2]
    cells = [SETUP, ANSWER, "from utils.bayes import bayes_logprobs\nprint(answer(data))"]
    assert skipped(cells, course={0, 2}) == [2]
    assert skipped(cells + ["y = answer(bayes_logprobs)"], course={0, 2}) == []  # a later cell reads the name
    for other in ("from utils.attribution import outcomes", "import utils.bayes", "from utils.bayes import *",
                  "from math import pi"):  # a module import utils does not load, or other imports: kept
        assert skipped([SETUP, ANSWER, other + "\nprint(answer(data))"], course={0, 2}) == [], other


LIB = "from utils.data import rotate\nfrom utils import data as udata"


def test_a_learner_cell_that_only_shows_course_results_is_left_out():
    """A claim cell: the learner's own, but it only computes with the course library on what course cells made and
    asserts; then the course's cell it read is not needed either. One that calls the notebook's code, another
    module, a lambda, or reads what the learner's code made, runs."""
    show = "word = rotate(text, 1)\nprint(word, len(word), udata.rotate(word, 25))\nassert word != text"
    cells = [SETUP, LIB, ANSWER, "text = 'abc'", show, "print(answer(data).sum())"]
    assert skipped(cells, course={0, 1, 3}) == [3, 4]
    assert skipped(cells + ["print(word.upper())"], course={0, 1, 3}) == []  # read later by a learner's cell
    assert skipped(cells[:5] + ["checked = word.count('b')\nassert checked == 1"], course={0, 1, 3}) == [3, 4, 5]
    for kept in ("word = answer(text)", "word = rotate(text, 1)\ntorch.save(data, 'x.pt')",
                 "word = (lambda t: rotate(t, 1))(text)", "word = rotate(text, 1)\nword2 = word.upper()",
                 "word = rotate(text + mine, 1)"):
        variant = cells[:4] + ["mine = answer(data)", kept]
        assert 5 not in skipped(variant, course={0, 1, 3}), kept
        assert 3 not in skipped(variant, course={0, 1, 3}), kept


def test_dynamic_access_keeps_what_it_could_read():
    dynamic = "def look():\n    return globals()['shown']"
    cells = [SETUP, ANSWER, "shown = answer(data)", dynamic, "look()"]
    assert 2 not in skipped(cells, course={0, 2, 4})  # look() runs after cell 2 and may read `shown`
    cells = [SETUP, ANSWER, dynamic, "shown = answer(data)"]  # defined before, never called after
    assert skipped(cells, course={0, 3}) == [3]
    cells = [SETUP, ANSWER, dynamic, "shown = answer(data)", "look()"]  # called after
    assert skipped(cells, course={0, 3}) == []


def test_ipython_syntax_anywhere_runs_everything():
    cells = [SETUP, ANSWER, "out = answer(data)", "%timeit answer(data)"]
    assert skipped(cells, course={0, 2}) == []


def test_the_solutions_skip_only_course_cells_and_keep_every_exercise():
    """On every lesson: cells are left out, none of them defines a graded function, and each is the course's own or
    a learner's cell that only shows results (a claim cell: it calls nothing the notebook defines)."""
    from utils import grade

    graded: dict[str, set[str]] = {}
    for lesson, name, _ in grade.points_table():
        graded.setdefault(lesson, set()).add(name)
    templates = course_cells(EXERCISES)
    assert set(templates) == set(graded)
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        lesson = path.name[:2]
        sources = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        skip = skippable_cells(sources, templates[lesson], graded[lesson])
        assert len(skip) >= 5, (path.name, skip)
        for i in skip:
            assert normalized(sources[i]) in templates[lesson] or "def " not in sources[i], sources[i]
            assert not any(f"def {name}(" in sources[i] for name in graded[lesson])


def test_the_grader_passes_the_cells_to_leave_out_and_every_cell_runs_them_all(tmp_path):
    from utils.grading.batch import Grader, Settings
    from utils.grading.records import Job

    notebooks = {p.name: p.read_bytes() for p in sorted(SOLUTIONS.glob("0[12]_*.ipynb"))}
    to_run = {name[:2]: name for name in notebooks}
    for every_cell in (False, True):
        grader = Grader(Settings(every_cell=every_cell, sandbox="none"), tmp_path / f"run{every_cell}")
        private = tmp_path / f"learner{every_cell}"
        private.mkdir()
        job: Job = grader.prepare(notebooks, to_run, private)
        skips = {spec.file: spec.skip for spec in job.notebooks}
        assert set(skips) == set(notebooks)
        if every_cell:
            assert all(skip == [] for skip in skips.values()), skips
        else:
            assert all(len(skip) >= 5 for skip in skips.values()), skips


# ---------------------------------------------------------------------------------------------------------
# Soundness (issue 21, item 7): when in doubt, the course's cell runs
# ---------------------------------------------------------------------------------------------------------


def test_a_cell_that_may_raise_before_rebinding_does_not_make_an_earlier_binding_unneeded():
    """Cell 3 (the learner's) binds `offset` again, but may raise first: then cell 4 reads cell 2's `offset`."""
    cells = [SETUP, ANSWER, "offset = data.sum() * 0", "check = undefined_name\noffset = 5",
             "base = offset", "def answer2(x):\n    return x + base"]
    assert 2 not in skipped(cells, course={0, 2}, graded={"answer", "answer2"})


@pytest.mark.parametrize("access", [
    "import sys\nshown_again = sys.modules['__main__'].shown",
    "shown_again = get_ipython().user_ns['shown']",
    "shown_again = globals()['shown']",
    "shown_again = vars()['shown']",
    "shown_again = eval('shown')",
    "exec('shown_again = shown')",
    "import inspect\nshown_again = inspect.currentframe().f_globals['shown']",
    "shown_again = Out[3]",
    "shown_again = _",
    "shown_again = _3",
])
def test_every_kind_of_dynamic_access_keeps_what_it_could_read(access):
    cells = [SETUP, ANSWER, "x = 1", "shown = answer(data)\nshown", access]
    assert 3 not in skipped(cells, course={0, 3})


def test_a_graded_function_reaching_the_main_module_keeps_every_cell():
    cells = [SETUP, "import sys\ndef answer(x):\n    return x * sys.modules['__main__'].factor", "factor = data.sum()"]
    assert skipped(cells, course={0, 2}) == []


def test_the_slicer_is_linear_and_gives_up_over_its_budget(monkeypatch):
    import time

    from utils.grading import slicing

    def notebook(n: int) -> tuple[list[str], set[str]]:
        cells = [SETUP, ANSWER] + [f"v{i}_{n} = answer(data) + {i}\nprint(v{i}_{n}.sum())" for i in range(n)]
        return cells + [f"keep{n} = answer(1)"] * n, {normalized(c) for c in cells}

    times = {}
    for n in (300, 2400):
        cells, course = notebook(n)
        started = time.process_time()
        assert len(skippable_cells(cells, course, {"answer"})) == n
        times[n] = time.process_time() - started
    assert times[2400] < 20 * max(times[300], 0.02), times  # 8 times the cells: not 64 times the time
    cells, course = notebook(300)
    monkeypatch.setattr(slicing, "MAX_SOURCE_CHARS", 1000)
    assert skippable_cells(cells, course, {"answer"}) == []  # over the budget: every cell runs
    monkeypatch.setattr(slicing, "MAX_SOURCE_CHARS", 10**9)
    monkeypatch.setattr(slicing, "MAX_SECONDS", 0.0)
    assert skippable_cells([c + " " for c in cells], {c.strip() for c in course}, {"answer"}) == []


def test_code_nested_deeper_than_the_analysis_runs_every_cell():
    cells = [SETUP, ANSWER, "x = " + "+".join(["1"] * 20000), "print(answer(data))"]
    assert skipped(cells, course={0, 3}) == []
