"""The grader end to end (sandbox on): fabricated submissions get the scores they deserve, and nothing a learner's
kernel does (loops, memory, floods, crashes, killing processes, fork bombs, filling the disk, reading /proc, the
checkout or the reference, writing results or the course library, tampering with checks or torch, calling the
library version of an exercise) earns a point, stops the batch or loses a row.

One batch of learners is graded once (module fixture, -j 2, short timeouts); the tests read its results. Expected
partial credit is computed here, independently, by running the same wrong functions on the same cases."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from utils import analysis, grade
from utils.checks.core import REGISTRY, call_learner
from utils.grading import scoring
from utils.notebooks import EXERCISES, SOLUTIONS, setup_cell_source
from utils.reference import lesson01

ROOT = Path(__file__).resolve().parent.parent
SEED = 1234
LESSON01 = [name for lesson, name, _ in grade.points_table() if lesson == "01"]
LESSON03 = [name for lesson, name, _ in grade.points_table() if lesson == "03"]
POINTS = {name: REGISTRY[name].points for name in LESSON01}
NB_NAME = "01_dataset.ipynb"
# cell_timeout leaves room for a busy 2-core CI machine; the looping cells cost it twice.
SETTINGS = dict(cell_timeout=40, exercise_timeout=60, submission_timeout=600, memory_mb=4000, disk_mb=64,
                max_procs=128, seed=SEED)
MARKER = f"codebreak-test-marker-{os.getpid()}"

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


def notebook(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup_cell_source()), nbformat.v4.new_code_cell(IMPORTS)]
    nb.cells += [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    return nb


def correct_cells(skip=()) -> list[str]:
    return [inspect.getsource(getattr(lesson01, n)) + f"\ntest_{n}({n})\n" for n in LESSON01 if n not in skip]


STUBS = [f"def {n}(*args, **kwargs):\n    raise NotImplementedError()\n" for n in LESSON01]
WRONG_PROBS = (  # follows the counts in every mode: right in easy mode only
    "def word_probabilities(counts, mode):\n    counts = counts.double()\n    return counts / counts.sum()\n"
)
WRONG_ROTATE = "def rotate_text(text, shift):\n    return text\n"


def expected_fraction(name: str, source: str) -> float:
    ns: dict = {}
    exec(source, ns)
    ex = REGISTRY[name]
    passed = 0
    cases = ex.cases(SEED)
    for case in cases:
        try:
            got = ex.normalize(call_learner(ns[name], case))
        except Exception:
            continue
        passed += ex.check_output(case, ex.expected(case), got) is None
    return passed / len(cases)


TAMPER_CHECKS = """\
import utils.checks.core as core
import utils.checks.lesson01 as l01
core.check = lambda *a, **k: print("All tests passed!")
core.compare_values = lambda *a, **k: None
core.compare_tensors = lambda *a, **k: None
core.materialize = lambda x: x
for name, ex in core.REGISTRY.items():
    ex.compare = lambda expected, got, case: None
    ex.reference = lambda *a, **k: None
    ex.normalize = lambda x: None
l01.test_rotate_text = lambda fn: print("All 25 tests in `test_rotate_text` passed!")
import utils.grading.kernel as gk
gk.plain = lambda v: v  # send whatever the function returns, subclasses and planted attributes included
"""
TAMPER_TORCH = """\
import torch
torch.isclose = lambda *a, **k: torch.ones((), dtype=torch.bool)
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
torch.Tensor.all = lambda self, *a, **k: torch.tensor(True)
class Anything(str):
    def __eq__(self, other):
        return True
def rotate_text(text, shift):
    return Anything("?")
def tokenize(text, mode):
    t = torch.zeros(len(text), dtype=torch.long) - 1
    t.detach = torch.zeros(len(text), dtype=torch.long)  # planted: survives torch.load(weights_only=True)
    return t
"""
TAMPER_OUTPUTS = """\
import threading, time, torch, base64, io
from IPython.display import publish_display_data
# answers claiming success, sent without the worker's token, and a thread that keeps sending them
def fake():
    buf = io.BytesIO()
    torch.save({"status": "ok", "value": 1}, buf)
    data = base64.b64encode(buf.getvalue()).decode()
    for i in range(50):
        publish_display_data({"application/x-codebreak-result": data},
                             metadata={"application/x-codebreak-result": {"token": "guess", "index": 0}})
        time.sleep(0.05)
fake()
threading.Thread(target=fake, daemon=True).start()
"""


def escape_cell(out: Path) -> str:
    """Everything a kernel might try against the grader, the instructor's files and other learners."""
    return f"""\
    import os, sys, json, glob, signal, subprocess, time
    found = {{}}
    # the checkout, the reference and the grader's files, directly and through /proc
    for p in ({str(ROOT)!r}, {str(ROOT / 'utils' / 'reference' / 'lesson01.py')!r}, {str(out)!r}):
        found[p] = os.path.exists(p)
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        for what in ("cmdline", "environ", "cwd", "root"):
            try:
                found[f"{{pid}}/{{what}}"] = os.readlink(f"/proc/{{pid}}/{{what}}") if what in ("cwd", "root") else \\
                    open(f"/proc/{{pid}}/{{what}}", "rb").read().decode(errors="replace")
            except OSError as e:
                found[f"{{pid}}/{{what}}"] = repr(e)
    for path in list(found.values()):
        for part in str(path).replace("\\x00", " ").split():
            if part.startswith("/") and os.path.isdir(part):
                sys.path.append(part)
    try:
        from utils.reference.lesson01 import rotate_text
    except ImportError as e:
        found["import"] = repr(e)
    # forge results, delete another learner's, change the shared course library
    for target in ({str(out / 'results' / 'escape.json')!r}, {str(out / 'results' / 'correct.json')!r}):
        try:
            open(target, "w").write('{{"total": 999}}')
        except OSError as e:
            found[target] = repr(e)
    for target in ("/course/utils/__init__.py", "/course/utils/checks/core.py"):
        try:
            open(target, "a").write("\\nimport os; os._exit(1)\\n")
        except OSError as e:
            found[target] = repr(e)
    # processes that try to outlive the kernel, a fork bomb, the inherited stdout, the disk
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)  # {MARKER}"], start_new_session=True)
    kids = 0
    try:
        for i in range(100000):
            if os.fork() == 0:
                time.sleep(900)
                os._exit(0)
            kids += 1
    except OSError as e:
        found["fork"] = f"{{kids}} children, then {{e!r}}"
    for fd in (1, 2):
        try:
            os.write(fd, b"x" * 50_000_000)
        except OSError:
            pass
    try:
        with open("/tmp/fill", "wb") as f:
            for i in range(10000):
                f.write(b"x" * 2**20)
    except OSError as e:
        found["disk"] = repr(e)
    print(json.dumps(found)[:5000])
    """


def library_notebook() -> nbformat.NotebookNode:
    """Lesson 03 answered with the library: `from utils.analysis import *`, a wrapper, an alias; and one exercise
    written out by the learner (the library's source copied: a new function, which earns its points)."""
    own = inspect.getsource(analysis.letter_freqs_by_position)
    return notebook(
        "from utils.analysis import *\n",
        "from utils import analysis\n"
        "def implied_first_letter_probs(*args, **kwargs):\n    return analysis.implied_first_letter_probs(*args, **kwargs)\n",
        "rotated_word_tokens = analysis.rotated_word_tokens\n",
        # the learner's own copy (the star import above gave it the names the library's module uses): it earns its
        # points, and the instructor's notes say it is the library's code
        own,
    )


LEARNERS = {
    "correct": lambda: nbformat.read(SOLUTIONS / NB_NAME, as_version=4),
    "exercise": lambda: nbformat.read(EXERCISES / NB_NAME, as_version=4),
    "partial": lambda: notebook(WRONG_PROBS, WRONG_ROTATE, *correct_cells(skip=("word_probabilities", "rotate_text"))),
    # a cell that loops (interrupted), one that ignores interrupts (run again without it), a function that loops
    "loop": lambda: notebook(
        "while True:\n    pass\n",
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass\n",
        *correct_cells(skip=("rotation_twins",)),
        "def rotation_twins(words):\n    while True:\n        pass\n",
    ),
    # memory and output floods between correct definitions
    "hog": lambda: notebook(
        "import sys  # (a cell that imports runs: a print-only one would be left out)\nfor i in range(30000):\n"
        "    print('spam ' * 100)\n",
        *correct_cells()[:3],
        "hog = []\nwhile True:\n    hog.append(bytearray(2**29))\n",
        "import torch\nx = torch.ones(2**40)\n",
        *correct_cells()[3:],
    ),
    # os._exit, killing every process the kernel can see, and a function that kills the kernel when called
    "crash": lambda: notebook(
        *correct_cells(skip=("tokenize",))[:3],
        "import os\nos._exit(1)\n",
        "import os, signal\nfor pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid != os.getpid():\n        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n",
        *correct_cells(skip=("tokenize",))[3:],
        "def tokenize(text, mode):\n    import os\n    os._exit(3)\n",
    ),
    # tampering with the checks, torch, the outputs and the reference: each must earn exactly 0
    "tamper": lambda: notebook(*STUBS, TAMPER_CHECKS, TAMPER_TORCH, TAMPER_OUTPUTS),
    "library": library_notebook,
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("results")
    for learner, make in LEARNERS.items():
        (subs / learner).mkdir()
        name = "03_position_frequencies.ipynb" if learner == "library" else NB_NAME
        nbformat.write(make(), subs / learner / name)
    (subs / "escape").mkdir()
    nbformat.write(notebook(*STUBS, escape_cell(out)), subs / "escape" / NB_NAME)
    (subs / "two_lessons").mkdir()  # two notebooks, one kernel: the second must not see the first's names
    first = nbformat.read(SOLUTIONS / NB_NAME, as_version=4)
    first.cells.append(nbformat.v4.new_code_cell("LEAK = 'from notebook 01'"))
    nbformat.write(first, subs / "two_lessons" / NB_NAME)
    # (a cell that imports runs: a print-only one would be left out as only showing results)
    second = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys\nprint(LEAK)")])
    nbformat.write(second, subs / "two_lessons" / "02_model_loading.ipynb")
    (subs / "invalid").mkdir()
    (subs / "invalid" / NB_NAME).write_text('{"cells": [ this is not json')
    for name in ("nothing", "Bob Smith", "Bob_Smith", "_underscore"):
        (subs / name).mkdir()
        (subs / name / "notes.txt").write_text("I did not do it")
    # an LMS folder holding one zip, whose notebook has a browser's second-download name
    (subs / "Zoe Zip_123_assignsubmission_file_").mkdir()
    with zipfile.ZipFile(subs / "Zoe Zip_123_assignsubmission_file_" / "submission.zip", "w") as zf:
        zf.writestr("my-work/01_dataset (1).ipynb", (SOLUTIONS / NB_NAME).read_text())
        zf.writestr(f"__MACOSX/my-work/._{NB_NAME}", "junk")
    (subs / "badzip.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (subs / "stray.txt").write_text("not a submission")
    started = time.time()
    results = grade.grade_all(subs, out, jobs=2, settings=grade.Settings(**SETTINGS), progress=False)
    return subs, out, {r["learner"]: r for r in results}, time.time() - started


def scores(result: dict, names=LESSON01) -> dict[str, float]:
    return {name: result["exercises"][name]["score"] for name in names}


def lesson01_total(result: dict) -> float:
    return round(sum(scores(result).values()), 2)


# ---------------------------------------------------------------------------------------------------------
# Rows: one per submission, under the name the instructor sees, every skip and merge reported
# ---------------------------------------------------------------------------------------------------------

EXPECTED_ROWS = set(LEARNERS) | {"escape", "two_lessons", "invalid", "nothing", "Bob Smith", "Bob_Smith", "_underscore",
                                 "Zoe Zip_123_assignsubmission_file_", "badzip"}


@pytest.mark.slow
def test_every_submission_has_one_row(graded):
    subs, out, results, _ = graded
    assert set(results) == EXPECTED_ROWS
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].split(",")[: 1 + len(LESSON01)] == ["learner", *LESSON01]
    assert len(rows) == 1 + len(EXPECTED_ROWS)
    assert set(json.loads((out / "grades.json").read_text())) == EXPECTED_ROWS
    keys = {r["key"] for r in results.values()}
    assert len(keys) == len(EXPECTED_ROWS) and {p.stem for p in (out / "feedback").glob("*.md")} == keys
    assert "renamed" in results["Bob Smith"]["notes"] or "same file name" in results["Bob Smith"]["notes"]
    assert (out / "skipped.txt").read_text().startswith("stray.txt: skipped")


@pytest.mark.slow
def test_lms_zip_with_second_download_name_is_graded(graded):
    r = graded[2]["Zoe Zip_123_assignsubmission_file_"]
    assert scores(r) == POINTS and r["status"] == "ok", r


# ---------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_correct_gets_full_marks(graded):
    r = graded[2]["correct"]
    assert scores(r) == POINTS, r
    assert r["status"] == "ok", r["notes"]
    # the course's display-only cells were left out (slicing.py), and no cell that ran missed anything they bind
    nb = r["notebooks"][NB_NAME]
    assert nb["course_cells_not_run"] >= 5 and nb["cell_errors"] == [], nb


@pytest.mark.slow
def test_each_notebook_starts_with_a_clean_namespace(graded):
    r = graded[2]["two_lessons"]
    assert scores(r) == POINTS, r
    second = r["notebooks"]["02_model_loading.ipynb"]
    assert second["kernel_starts"] == 0, second  # it ran in the learner's kernel, reset ...
    assert any("NameError" in e["error"] and "LEAK" in e["error"] for e in second["cell_errors"]), second  # ... clean


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
    for name, source in [("word_probabilities", WRONG_PROBS), ("rotate_text", WRONG_ROTATE)]:
        assert s[name] == round(POINTS[name] * expected_fraction(name, source), 2), (name, r["exercises"][name])
        assert 0 < s[name] < POINTS[name]
    assert all(s[n] == POINTS[n] for n in LESSON01 if n not in ("word_probabilities", "rotate_text"))
    feedback = (graded[1] / "feedback" / "partial.md").read_text()
    assert "### `word_probabilities`" in feedback and "Hint:" in feedback


@pytest.mark.slow
def test_infinite_loops(graded):
    r = graded[2]["loop"]
    assert scores(r) == {**POINTS, "rotation_twins": 0}, r
    assert "timeout" in r["status"]
    assert "time limit" in r["exercises"]["rotation_twins"]["problem"]


@pytest.mark.slow
def test_memory_and_output_floods(graded):
    subs, out, results, _ = graded
    r = results["hog"]
    assert scores(r) == POINTS, r
    assert "memory" in r["status"] and "output-flood" in r["status"], r["status"]
    assert (out / "results" / "hog.json").stat().st_size < 200_000


@pytest.mark.slow
def test_kernel_crash_and_killing_every_process(graded):
    r = graded[2]["crash"]
    assert scores(r) == {**POINTS, "tokenize": 0}, r
    assert "kernel-died" in r["status"]
    assert "crashed the kernel" in r["exercises"]["tokenize"]["problem"]


@pytest.mark.slow
def test_invalid_and_empty_submissions(graded):
    results = graded[2]
    assert lesson01_total(results["invalid"]) == 0 and "invalid-notebook" in results["invalid"]["status"]
    for name in ("nothing", "Bob Smith", "Bob_Smith", "_underscore"):
        assert results[name]["total"] == 0 and "no-notebooks" in results[name]["status"]
    assert results["badzip"]["total"] == 0 and "invalid-zip" in results["badzip"]["status"]


@pytest.mark.slow
def test_tampering_earns_nothing(graded):
    r = graded[2]["tamper"]
    assert lesson01_total(r) == 0, {n: (e["score"], e["cases"][:1]) for n, e in r["exercises"].items()}


@pytest.mark.slow
def test_library_versions_score_zero_with_a_reason(graded):
    r = graded[2]["library"]
    s = scores(r, LESSON03)
    library = [n for n in LESSON03 if scoring.library_versions(REGISTRY[n])]
    assert len(library) >= 5
    for name in library:
        if name == "letter_freqs_by_position":  # written out in the notebook: the learner's own function
            assert s[name] == REGISTRY[name].points, r["exercises"][name]
        else:
            assert s[name] == 0, (name, r["exercises"][name])
            assert "library" in r["exercises"][name]["problem"], r["exercises"][name]
    assert "library-version" in r["status"]
    assert "calls the course library's own version" in (graded[1] / "feedback" / "library.md").read_text()
    assert "copied from the library" in r["notes"]  # flagged for the instructor, not scored


@pytest.mark.slow
def test_escape_attempts_reach_nothing(graded):
    subs, out, results, _ = graded
    r = results["escape"]
    assert lesson01_total(r) == 0
    assert results["correct"]["total"] == sum(POINTS.values())  # not deleted, not forged
    assert json.loads((out / "results" / "escape.json").read_text())["total"] == 0
    # nothing of the escape outlived its sandbox
    left = []
    for p in Path("/proc").iterdir():
        try:
            if MARKER.encode() in (p / "cmdline").read_bytes():
                left.append(p.name)
        except OSError:
            pass
    assert not left
    assert not run_dirs(os.getpid()) and not (out / ".tmp").exists(), "the run's temporary folder was not removed"


@pytest.mark.slow
def test_where_the_time_goes_is_recorded(graded):
    r = graded[2]["correct"]
    assert {"prepare", "kernel_start", "imports", "execute", "grade_calls", "scoring"} <= set(r["timings"])


# ---------------------------------------------------------------------------------------------------------
# Re-runs and interruptions
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rerun_skips_graded_and_regrades_changed(graded, tmp_path):
    import shutil

    subs, out, results, _ = graded
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    subs2 = tmp_path / "subs"
    for learner in ("invalid", "nothing"):
        shutil.copytree(subs / learner, subs2 / learner)
    settings = grade.Settings(**SETTINGS)
    before = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    again = grade.grade_all(subs2, out2, jobs=1, settings=settings, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    assert after == before
    assert {r["learner"] for r in again} == {"invalid", "nothing"}
    assert len((out2 / "grades.csv").read_text().splitlines()) == 3  # reports cover current learners only
    (subs2 / "invalid" / NB_NAME).write_text("still not json")
    grade.grade_all(subs2, out2, jobs=1, settings=settings, progress=False)
    after2 = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    assert after2["invalid.json"] != before["invalid.json"] and after2["nothing.json"] == before["nothing.json"]
    grade.grade_all(subs2, out2, jobs=1, redo=True, settings=settings, progress=False)
    after3 = {p.name: p.stat().st_mtime_ns for p in (out2 / "results").glob("*.json")}
    assert after3["nothing.json"] != before["nothing.json"]
    assert not [p for p in out2.rglob("*.tmp") if p.is_file()]  # no half-written results
    assert not run_dirs(os.getpid()) and not (out2 / ".tmp").exists()  # no run's temporary folder left behind


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_everything_at_once(tmp_path, signum):
    """Ctrl-C (SIGINT to the grader) or a closed terminal (SIGHUP): every worker and kernel stops within seconds,
    the temporary folder is removed, no new learner is started, and a re-run grades the rest."""
    subs = tmp_path / "subs"
    for learner in ("a", "b", "c"):
        (subs / learner).mkdir(parents=True)
        nbformat.write(notebook("import time\nwhile True:\n    time.sleep(1)\n"), subs / learner / NB_NAME)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "utils.grade", str(subs), "--out", str(out), "-j", "1",
                             "--cell-timeout", "600"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 400
    while time.time() < deadline and not [d for d in run_dirs(proc.pid) if list(d.glob("learner-*/notebooks"))]:
        time.sleep(1)
    while time.time() < deadline and not kernels() & descendants(proc.pid):
        time.sleep(1)
    running = descendants(proc.pid)
    assert kernels() & running, "no kernel started"
    time.sleep(5)
    started = time.time()
    proc.send_signal(signum)
    proc.wait(timeout=60)
    assert time.time() - started < 30
    time.sleep(2)
    assert not run_dirs(proc.pid)  # the course copy, the learners' folders and the kernels' socket folders
    assert not kernels() & running
    assert not list((out / "results").glob("*.json"))  # nobody finished, and nobody else was started


def run_dirs(pid: int) -> list[Path]:
    """The temporary folders of the grader process `pid` (batch.make_run_dir)."""
    import tempfile

    found = []
    for d in Path(tempfile.gettempdir()).glob("codebreak-run-*"):
        try:
            if (d / ".owner").read_text() == str(pid):
                found.append(d)
        except OSError:
            pass
    return found


def descendants(root: int) -> set[str]:
    """Every process below `root` (workers, sandboxes, kernels)."""
    parent = {}
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit():
                parent[p.name] = (p / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            pass
    found, frontier = set(), {str(root)}
    while frontier:
        frontier = {pid for pid, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def kernels() -> set[str]:
    """Processes of the grader's kernels (their connection files: .../codebreak-kernel-* outside the sandbox,
    /grading/runtime/* inside it)."""
    found = set()
    for p in Path("/proc").iterdir():
        try:
            cmdline = (p / "cmdline").read_bytes() if p.name.isdigit() else b""
            if b"codebreak-kernel-" in cmdline or b"-f\0/grading/runtime/" in cmdline:
                found.add(p.name)
        except OSError:
            pass
    return found
