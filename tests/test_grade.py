"""The grader (utils.grade): fabricated submissions get the scores they deserve, and nothing a learner's
kernel does (loops, memory, floods, crashes, deleting files, tampering with checks or torch) earns a point.

One batch of learners is graded once (module fixture, -j 2, lesson 01 only, short timeouts); the tests then
read its results. Expected partial credit is computed here, independently, by running the same wrong
functions on the same cases (fixed seed) in this process."""

from __future__ import annotations

import inspect
import json
import shutil
import textwrap
import zipfile

import nbformat
import pytest

from utils import grade
from utils.checks.core import REGISTRY, call_learner
from utils.notebooks import EXERCISES, SOLUTIONS, setup_cell_source
from utils.reference import lesson01

SEED = 1234
LESSON01 = [name for lesson, name, _ in grade.points_table() if lesson == "01"]
POINTS = {name: REGISTRY[name].points for name in LESSON01}
FULL = sum(POINTS.values())
NB_NAME = "01_dataset.ipynb"
# cell_timeout leaves room for a busy 2-core CI machine to run the imports cell; the looping cells cost it twice.
SETTINGS = dict(cell_timeout=20, exercise_timeout=30, submission_timeout=400, memory_mb=4000, seed=SEED)


# ---------------------------------------------------------------------------------------------------------
# Fabricated notebooks
# ---------------------------------------------------------------------------------------------------------

IMPORTS = """\
import string
import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
import utils
from utils.checks import *
from utils.data import VOCAB_EASY, VOCAB_HARD
"""


def reference_source(name: str) -> str:
    return inspect.getsource(getattr(lesson01, name))


def notebook(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup_cell_source()), nbformat.v4.new_code_cell(IMPORTS)]
    nb.cells += [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    return nb


def correct_cells(skip=()) -> list[str]:
    return [reference_source(n) + f"\ntest_{n}({n})\n" for n in LESSON01 if n not in skip]


def solution_notebook() -> nbformat.NotebookNode:
    """The real solution notebook if it is there, else a fabricated one."""
    path = SOLUTIONS / NB_NAME
    if path.exists():
        return nbformat.read(path, as_version=4)
    return notebook(*correct_cells())


def exercise_notebook() -> nbformat.NotebookNode:
    path = EXERCISES / NB_NAME
    if path.exists():
        return nbformat.read(path, as_version=4)
    stubs = [f"def {n}(*args):\n    raise NotImplementedError()\n" for n in LESSON01]
    return notebook(*stubs)


# Plausible wrong answers for the "partly correct" learner (their expected credit is computed below).
WRONG_CHAR_DIFF = "def char_diff(x, y):\n    return ord(x) - ord(y)\n"
WRONG_ROTATE = "def rotate_text(text, shift):\n    return text\n"


def expected_fraction(name: str, source: str) -> float:
    ns: dict = {}
    exec(source, ns)
    ex = REGISTRY[name]
    cases = ex.cases(SEED)
    passed = 0
    for case in cases:
        try:
            got = ex.normalize(call_learner(ns[name], case))
        except Exception:
            continue
        passed += ex.check_output(case, ex.expected(case), got) is None
    return passed / len(cases)


STUBS = [f"def {n}(*args, **kwargs):\n    raise NotImplementedError()\n" for n in LESSON01]

LEARNERS = {
    "correct": lambda: solution_notebook(),
    "exercise": lambda: exercise_notebook(),
    "partial": lambda: notebook(WRONG_CHAR_DIFF, WRONG_ROTATE, *correct_cells(skip=("char_diff", "rotate_text"))),
    # a cell that loops (interrupted), a cell that ignores interrupts (the kernel is restarted without it),
    # functions defined after both, and one exercise whose function never returns
    "loop": lambda: notebook(
        "while True:\n    pass\n",
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass\n",
        *correct_cells(skip=("make_plaintext",)),
        "def make_plaintext(words, seq_len):\n    while True:\n        pass\n",
    ),
    "memory": lambda: notebook(
        *correct_cells()[:3],
        "hog = []\nwhile True:\n    hog.append(bytearray(2**29))\n",
        "import torch\nx = torch.ones(2**40)\n",
        *correct_cells()[3:],
    ),
    "flood": lambda: notebook(
        "for i in range(30000):\n    print('spam ' * 100)\n",
        *correct_cells(),
    ),
    # os._exit between the definitions; and a function that kills the kernel when the grader calls it
    "crash": lambda: notebook(
        *correct_cells(skip=("tokenize",))[:3],
        "import os\nos._exit(1)\n",
        *correct_cells(skip=("tokenize",))[3:],
        "def tokenize(text, mode):\n    import os\n    os._exit(3)\n",
    ),
    "deleter": lambda: notebook(
        *correct_cells(),
        "import shutil, os\nfrom pathlib import Path\nshutil.rmtree(ROOT / 'utils')\nshutil.rmtree(ROOT / 'data')\n"
        "for p in Path.cwd().glob('*.ipynb'):\n    os.remove(p)\n",
    ),
    # tampering: each must score exactly 0 (the functions are stubs or wrong)
    "tamper_checks": lambda: notebook(
        *STUBS,
        """\
        import utils.checks.core as core
        import utils.checks.lesson01 as l01
        core.check = lambda *a, **k: print("All tests passed!")
        core.compare_values = lambda *a, **k: None
        core.compare_tensors = lambda *a, **k: None
        for name, ex in core.REGISTRY.items():
            ex.compare = lambda expected, got, case: None
            ex.reference = lambda *a, **k: None
            ex.normalize = lambda x: None
        def test_char_diff(fn):
            print("All 25 tests in `test_char_diff` passed!")
        l01.test_char_diff = test_char_diff
        test_char_diff(char_diff)
        """,
    ),
    "tamper_torch": lambda: notebook(
        """\
        import torch
        torch.isclose = lambda *a, **k: torch.ones((), dtype=torch.bool)
        torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
        torch.Tensor.all = lambda self, *a, **k: torch.tensor(True)
        def tokenize(text, mode):
            return torch.zeros(len(text), dtype=torch.long) - 1
        def encode_tokens(plain_toks, shifts):
            return torch.full_like(plain_toks, -1)
        def word_probabilities(counts, mode):
            return torch.full(counts.shape, -1.0, dtype=torch.float64)
        class Anything(str):
            def __eq__(self, other):
                return True
        def rotate_text(text, shift):
            return Anything("?")
        def char_diff(x, y):
            return Anything("?")
        def make_plaintext(words, seq_len):
            return Anything("?")
        def clean_text(text):
            return Anything("?")
        """,
    ),
    "tamper_reference": lambda: notebook(
        "from utils.reference.lesson01 import *\n",
        "import importlib\nref = importlib.import_module('utils.reference.lesson01')\nchar_diff = ref.char_diff\n",
        "from utils.checks.core import REGISTRY\nfor name, ex in REGISTRY.items():\n    globals()[name] = ex.reference\n",
    ),
    # stored outputs claiming success, fake result files written early, and a thread that overwrites
    # every new .pt file it sees in the sandbox
    "tamper_outputs": lambda: notebook(
        *STUBS,
        """\
        import threading, time, torch
        from pathlib import Path
        root = ROOT
        for i in range(200):
            torch.save({"status": "ok", "value": 1}, root / f"fake{i}.pt")
        def overwrite():
            seen = set()
            while True:
                for p in root.rglob("*.pt"):
                    if p not in seen and "fake" not in p.name:
                        seen.add(p)
                        try:
                            torch.save({"status": "ok", "value": "FAKE"}, p)
                        except Exception:
                            pass
                time.sleep(0.001)
        threading.Thread(target=overwrite, daemon=True).start()
        """,
    ),
}


def with_fake_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="All 25 tests in `test_x` passed!\n")]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    for learner, make in LEARNERS.items():
        nb = make()
        if learner == "tamper_outputs":
            nb = with_fake_outputs(nb)
        (subs / learner).mkdir()
        nbformat.write(nb, subs / learner / NB_NAME)
    (subs / "invalid").mkdir()
    (subs / "invalid" / NB_NAME).write_text('{"cells": [ this is not json')
    (subs / "nothing").mkdir()
    (subs / "nothing" / "notes.txt").write_text("I did not do it")
    with zipfile.ZipFile(subs / "zipped.zip", "w") as zf:
        zf.writestr(f"my-work/{NB_NAME}", nbformat.writes(solution_notebook()))
        zf.writestr(f"__MACOSX/my-work/._{NB_NAME}", "junk")
    (subs / "badzip.zip").write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path_factory.mktemp("results")
    results = grade.grade_all(subs, out, jobs=2, settings=grade.Settings(**SETTINGS), progress=False)
    return subs, out, {r["learner"]: r for r in results}


def scores(result: dict) -> dict[str, float]:
    return {name: result["exercises"][name]["score"] for name in LESSON01}


def lesson01_total(result: dict) -> float:
    return round(sum(scores(result).values()), 2)


# ---------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_learner_has_a_row(graded):
    subs, out, results = graded
    expected = set(LEARNERS) | {"invalid", "nothing", "zipped", "badzip"}
    assert set(results) == expected
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].split(",")[: 1 + len(LESSON01)] == ["learner", *LESSON01]
    assert len(rows) == 1 + len(expected)
    assert set(json.loads((out / "grades.json").read_text())) == expected
    assert {p.stem for p in (out / "feedback").glob("*.md")} == expected


@pytest.mark.slow
def test_correct_gets_full_marks(graded):
    r = graded[2]["correct"]
    assert scores(r) == POINTS, r
    assert r["status"] == "ok", r["notes"]


@pytest.mark.slow
def test_zip_submission_is_graded(graded):
    r = graded[2]["zipped"]
    assert scores(r) == POINTS and r["status"] == "ok", r


@pytest.mark.slow
def test_exercise_notebook_gets_zero(graded):
    r = graded[2]["exercise"]
    assert lesson01_total(r) == 0
    assert all(e["problem"] == "not implemented" for n, e in r["exercises"].items() if n in LESSON01)
    assert "Not implemented" in (graded[1] / "feedback" / "exercise.md").read_text()


@pytest.mark.slow
def test_partial_credit(graded):
    r = graded[2]["partial"]
    s = scores(r)
    for name, source in [("char_diff", WRONG_CHAR_DIFF), ("rotate_text", WRONG_ROTATE)]:
        assert s[name] == round(POINTS[name] * expected_fraction(name, source), 2), (name, r["exercises"][name])
        assert 0 < s[name] < POINTS[name]
    assert all(s[n] == POINTS[n] for n in LESSON01 if n not in ("char_diff", "rotate_text"))
    feedback = (graded[1] / "feedback" / "partial.md").read_text()
    assert "### `char_diff`" in feedback and "Hint:" in feedback


@pytest.mark.slow
def test_infinite_loops(graded):
    r = graded[2]["loop"]
    assert scores(r) == {**POINTS, "make_plaintext": 0}, r
    assert "timeout" in r["status"]
    assert "time limit" in r["exercises"]["make_plaintext"]["problem"]


@pytest.mark.slow
def test_memory_exhaustion(graded):
    r = graded[2]["memory"]
    assert scores(r) == POINTS, r
    assert "memory" in r["status"]


@pytest.mark.slow
def test_printing_megabytes(graded):
    subs, out, results = graded
    r = results["flood"]
    assert scores(r) == POINTS, r
    assert "output-flood" in r["status"]
    assert (out / "results" / "flood.json").stat().st_size < 200_000


@pytest.mark.slow
def test_kernel_crash(graded):
    r = graded[2]["crash"]
    assert scores(r) == {**POINTS, "tokenize": 0}, r
    assert "kernel-died" in r["status"]
    assert "crashed the kernel" in r["exercises"]["tokenize"]["problem"]


@pytest.mark.slow
def test_deleting_files(graded):
    r = graded[2]["deleter"]
    assert scores(r) == POINTS, r
    assert "files-restored" in r["status"]


@pytest.mark.slow
def test_invalid_json(graded):
    r = graded[2]["invalid"]
    assert lesson01_total(r) == 0 and "invalid-notebook" in r["status"], r


@pytest.mark.slow
def test_empty_and_broken_submissions(graded):
    results = graded[2]
    assert results["nothing"]["total"] == 0 and "no-notebooks" in results["nothing"]["status"]
    assert results["badzip"]["total"] == 0 and "invalid-zip" in results["badzip"]["status"]


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["tamper_checks", "tamper_torch", "tamper_reference", "tamper_outputs"])
def test_tampering_earns_nothing(graded, learner):
    r = graded[2][learner]
    assert lesson01_total(r) == 0, {n: (e["score"], e["cases"][:1]) for n, e in r["exercises"].items()}


@pytest.mark.slow
def test_reference_is_not_in_the_sandbox(graded):
    r = graded[2]["tamper_reference"]
    errors = [e["error"] for nb in r["notebooks"].values() for e in nb["cell_errors"]]
    assert any("ModuleNotFoundError" in e and "utils.reference" in e for e in errors), errors


# ---------------------------------------------------------------------------------------------------------
# Every lesson: the solution notebooks earn every point (inputs built from models and datasets in the kernel,
# outputs normalized there, compared here), and an exercise notebook of a later lesson earns none
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded_all_lessons(tmp_path_factory):
    subs = tmp_path_factory.mktemp("all-lessons")
    (subs / "everything").mkdir()
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(path, subs / "everything" / path.name)
    (subs / "stubs04").mkdir()
    shutil.copy(EXERCISES / "04_direct_logit_attribution.ipynb", subs / "stubs04")
    out = tmp_path_factory.mktemp("all-results")
    settings = grade.Settings(cell_timeout=120, exercise_timeout=120, submission_timeout=1200, seed=SEED)
    results = grade.grade_all(subs, out, jobs=2, settings=settings, progress=False)
    return {r["learner"]: r for r in results}


@pytest.mark.slow
def test_solutions_of_every_lesson_get_full_marks(graded_all_lessons):
    r = graded_all_lessons["everything"]
    lost = {n: (e["score"], e.get("problem"), e["cases"][:1]) for n, e in r["exercises"].items() if e["score"] < e["points"]}
    assert r["total"] == r["max"] == sum(ex.points for ex in REGISTRY.values()), lost
    assert r["status"] == "ok", r["notes"]


@pytest.mark.slow
def test_exercise_notebook_of_a_later_lesson_gets_zero(graded_all_lessons):
    r = graded_all_lessons["stubs04"]
    lesson04 = [n for lesson, n, _ in grade.points_table() if lesson == "04"]
    assert lesson04 and all(r["exercises"][n]["score"] == 0 for n in lesson04)
    assert r["total"] == 0


# ---------------------------------------------------------------------------------------------------------
# Re-runs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rerun_skips_graded_and_regrades_changed(graded, tmp_path):
    subs, out, results = graded
    # A copy of the results and of two cheap submissions (no kernel needed): a re-run grades nothing...
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    subs2 = tmp_path / "subs"
    for learner in ("invalid", "nothing"):
        shutil.copytree(subs / learner, subs2 / learner)
    before = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    again = grade.grade_all(subs2, out2, jobs=1, settings=grade.Settings(**SETTINGS), progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    assert after == before
    assert {r["learner"] for r in again} == {"invalid", "nothing"}
    assert len((out2 / "grades.csv").read_text().splitlines()) == 3  # reports cover current learners only
    # ...a changed submission is graded again, and --redo grades everything again
    (subs2 / "invalid" / NB_NAME).write_text("still not json")
    grade.grade_all(subs2, out2, jobs=1, settings=grade.Settings(**SETTINGS), progress=False)
    after2 = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    assert after2["invalid.json"] != before["invalid.json"] and after2["nothing.json"] == before["nothing.json"]
    grade.grade_all(subs2, out2, jobs=1, redo=True, settings=grade.Settings(**SETTINGS), progress=False)
    after3 = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    assert after3["nothing.json"] != before["nothing.json"]
    assert not list(out2.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------------------
# Fast unit tests (no kernel)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LESSON01)
def test_points_table_is_the_registry(name):
    table = {n: (lesson, pts) for lesson, n, pts in grade.points_table()}
    assert table[name] == (REGISTRY[name].lesson, REGISTRY[name].points)
    assert name in grade.format_points_table()


def test_cli_lists_points(capsys):
    assert grade.main(["--list"]) == 0
    assert "encode_tokens" in capsys.readouterr().out


def test_write_atomic(tmp_path):
    p = tmp_path / "a" / "x.json"
    grade.write_atomic(p, "1")
    grade.write_atomic(p, "2")
    assert p.read_text() == "2" and [q.name for q in p.parent.iterdir()] == ["x.json"]


def test_zip_reading_is_safe(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("../../evil/01_dataset.ipynb", "{}")
        zf.writestr("a/.ipynb_checkpoints/02_model-checkpoint.ipynb", "{}")
        zf.writestr("readme.txt", "hi")
    notebooks, problems = grade.Submission("z", tmp_path / "z.zip").read()
    assert list(notebooks) == ["01_dataset.ipynb"] and not problems
    assert not (tmp_path.parent / "evil").exists()
