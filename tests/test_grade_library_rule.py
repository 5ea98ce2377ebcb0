"""The library rule, decided from the learner's source outside the kernel (utils/grading/library_rule.py;
issue 21, items 6 and 11): every way of reaching a library version of an exercise scores 0 with the reason,
honest notebooks (the solutions, the blank exercise notebooks) are never caught, the table of library
equivalents is derived from the registry and complete, copied code is flagged, and the case files are not in
the kernel's arguments folder before the exercise's own grading call."""

from __future__ import annotations

import inspect
import textwrap

import nbformat
import pytest

import utils.checks  # noqa: F401
from utils import analysis
from utils.checks.core import REGISTRY
from utils.grading import library_rule as lr
from utils.notebooks import EXERCISES, SOLUTIONS


def cells_of(folder, lesson: str) -> list[str]:
    path = next(folder.glob(f"{lesson}_*.ipynb"))
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def verdict(lesson: str, extra: list[str], name: str, uncertain=(), folder=EXERCISES) -> str | None:
    sources = cells_of(folder, lesson) + [textwrap.dedent(c) for c in extra]
    return lr.Analysis(sources, uncertain, lr.course_templates()[lesson]).verdict(REGISTRY[name])


RAP = "rotation_averaged_probs"


def test_equivalents_are_tied_by_behaviour_not_identity():
    # the reference keeps its own copy of rotation_averaged_probs: the library's is still its equivalent
    assert "utils.analysis.rotation_averaged_probs" in lr.equivalents(REGISTRY[RAP])
    assert "utils.data.rotate_tokens" in lr.equivalents(REGISTRY["encode_tokens"])
    assert "utils.evaluate.correct_logprobs" in lr.equivalents(REGISTRY["correct_logprobs"])
    # a library function that calls an equivalent is refused too
    assert lr.forbidden(REGISTRY[RAP])["utils.analysis.position_comparison"] == "utils.analysis.rotation_averaged_probs"


def test_every_explicit_equivalent_answers_its_exercise():
    """Each entry of the explicit table passes every case of its exercise (it is not a stale guess)."""
    for name, qualified in lr.EXPLICIT.items():
        if name not in REGISTRY:
            continue
        assert lr.scan_equivalents([REGISTRY[name]], seed=3).get(name, set()) >= qualified, name


@pytest.mark.slow
def test_the_table_of_equivalents_is_complete():
    """Calling every library function on every exercise's cases finds no equivalent the table misses."""
    found = lr.scan_equivalents(REGISTRY.values(), seed=0)
    missing = {name: qs - lr.equivalents(REGISTRY[name]) for name, qs in found.items()}
    assert not {n: q for n, q in missing.items() if q}, missing


def test_a_blank_notebook_with_a_star_import_gets_no_point():
    assert "utils.analysis.rotation_averaged_probs" in verdict("03", ["from utils.analysis import *"], RAP)
    assert verdict("03", [], RAP) is None


@pytest.mark.parametrize("cells", [
    ["import utils.analysis as a\ndef rotation_averaged_probs(*args, **kw):\n    return a.rotation_averaged_probs(*args, **kw)"],
    ["f = utils.analysis.rotation_averaged_probs", "def rotation_averaged_probs(*a):\n    return f(*a)"],
    ["def rotation_averaged_probs(*a):\n    return getattr(analysis, 'rotation_averaged_probs')(*a)"],
    ["def helper(*a):\n    return analysis.rotation_averaged_probs(*a)", "def rotation_averaged_probs(*a):\n    return helper(*a)"],
    ["def rotation_averaged_probs(*a, _f=analysis.rotation_averaged_probs):\n    return _f(*a)"],
    ["def rotation_averaged_probs(*a, m=analysis):\n    return m.rotation_averaged_probs(*a)"],
    ["rotation_averaged_probs = lambda *a: analysis.rotation_averaged_probs(*a)"],
    ["import functools\nrotation_averaged_probs = functools.partial(analysis.rotation_averaged_probs)"],
    ["class K:\n    def __call__(self, *a):\n        return analysis.rotation_averaged_probs(*a)", "rotation_averaged_probs = K()"],
    ["exec('from utils.analysis import rotation_averaged_probs')"],
    ["def rotation_averaged_probs(*a):\n    return __import__('utils.analysis').analysis.rotation_averaged_probs(*a)"],
    ["def rotation_averaged_probs(*a):\n    return analysis.position_comparison(*a)"],  # a library wrapper
    ["from utils.analysis import rotation_averaged_probs as r\nrotation_averaged_probs = r"],
    ["u = utils", "def rotation_averaged_probs(*a):\n    return u.analysis.rotation_averaged_probs(*a)"],
    ["def rotation_averaged_probs(*a):\n    return torch.sys.modules['utils.analysis'].rotation_averaged_probs(*a)"],
])
def test_every_way_to_call_the_library_version_scores_zero(cells):
    why = verdict("03", cells, RAP)
    assert why and "utils.analysis." in why and "scores 0" in why, (cells, why)


@pytest.mark.parametrize("cells", [
    ["def rotation_averaged_probs(*a):\n    return getattr(analysis, 'rotation_' + 'averaged_probs')(*a)"],
    ["exec('rotation_averaged_probs = analysis.' + 'rotation_averaged_probs')"],
    ["def rotation_averaged_probs(*a):\n    return globals()['ana' + 'lysis'].rotation_averaged_probs(*a)"],
    ["def rotation_averaged_probs(*a):\n    import sys\n    return sys.modules['utils.analysis'].x(*a)"],
    ["globals()['rotation_averaged_probs'] = analysis.rotation_averaged_probs"],
    ["import threading\nthreading.Thread(target=print).start()"],  # code that runs while the graded call waits
    ["import signal\nsignal.signal(signal.SIGALRM, print)\nsignal.setitimer(signal.ITIMER_REAL, 1)"],
    ["import subprocess\nsubprocess.Popen(['sleep', '100'])"],
    ["!nohup python -c 'print(1)' &"],
    ["import torch\ntorch.Tensor.sum = lambda self, *a, **k: 0"],  # a patch that runs learner code inside the call
    ["def rotation_averaged_probs(*a):\n    return torch.load('answer.pt', weights_only=False)"],
    ["import mymodule\nrotation_averaged_probs = mymodule.f"],  # a module the notebook wrote itself
    ["def rotation_averaged_probs(*a):\n    m = getattr(getattr(torch, 'sy' + 's'), 'mod' + 'ules')['utils.analysis']\n"
     "    return getattr(m, 'rotation_' + 'averaged_probs')(*a)"],
    ["def rotation_averaged_probs(*a):\n    return vars(torch)['sys']"],
    # a patch made by a function a cell calls, or by setattr: torch.einsum then answers with the library's version
    ["def patch():\n    torch.einsum = lambda *a, **k: analysis.rotation_averaged_probs(*a)\npatch()",
     "def rotation_averaged_probs(*a):\n    return torch.einsum(*a)"],
    ["def patch():\n    setattr(torch, 'einsum', analysis.rotation_averaged_probs)\npatch()",
     "def rotation_averaged_probs(*a):\n    return torch.einsum(*a)"],
    ["setattr(torch, 'einsum', analysis.rotation_averaged_probs)", "def rotation_averaged_probs(*a):\n    return torch.einsum(*a)"],
])
def test_what_cannot_be_followed_scores_zero_with_the_construct_named(cells):
    why = verdict("03", cells, RAP)
    assert why and "cannot check" in why, (cells, why)


def test_honest_notebooks_are_never_caught():
    """The solutions (which use the library freely where it is allowed) and the blank exercise notebooks."""
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")) + sorted(EXERCISES.glob("[0-9][0-9]_*.ipynb")):
        lesson = path.name[:2]
        sources = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        analysis_ = lr.Analysis(sources, (), lr.course_templates()[lesson])
        for ex in (ex for ex in REGISTRY.values() if ex.lesson == lesson):
            assert analysis_.verdict(ex) is None, (path.name, ex.name, analysis_.verdict(ex))


def test_ordinary_settings_and_own_names_are_not_dynamic():
    honest = ['import plotly.io as pio\npio.renderers.default = "notebook"', "import torch\ntorch.set_printoptions(4)",
              "import os, signal\nos.kill(os.getpid(), 0)", "!pip list", "!ls -la",
              "def compile(x):\n    return x",
              "def helper(model, names=('W_Q',)):\n    return [getattr(b.attn, n) for b in model.blocks for n in names]"
              + "\n\ndef uses(model):\n    return [m for m in model.modules()]",
              "def rotation_averaged_probs(model, *a):\n    return compile(helper(model)), uses(model)",
              # a function's own local or parameter named like a module, changed in place
              "def tidy(s, model):\n    string = list(s)\n    string[0] = 'a'\n    model.cfg = None\n"
              "    setattr(model, 'x', tidy)\n    return string",
              "def quiet():\n    pio.renderers.default = 'png'\nquiet()"]
    assert verdict("03", honest, RAP) is None


def test_names_are_scoped_and_the_last_binding_counts():
    # a local variable named like a global that holds a library answer is the function's own
    local = ["avg = analysis.rotation_averaged_probs", "def rotation_averaged_probs(x, *a):\n    avg = x\n    return avg"]
    assert verdict("03", local, RAP) is None
    # the star import before the learner's own function: the learner's function is graded
    own = ["from utils.analysis import *", "def rotation_averaged_probs(*a):\n    return 0"]
    assert verdict("03", own, RAP) is None
    # ... unless the cell with the learner's function raised before defining it (then the import's binding stays)
    n = len(cells_of(EXERCISES, "03"))
    assert verdict("03", own[:1] + ["1/0\ndef rotation_averaged_probs(*a):\n    return 0"], RAP, uncertain={n + 1})


def test_cells_left_out_of_the_grading_run_do_not_count_and_interrupted_ones_are_uncertain(tmp_path):
    """for_notebook reads the notebook as its grading run ran it: a cell left out of that run (one that hung or
    killed an earlier kernel, which died with everything it did) is not read, so its signal handler costs nothing;
    a cell interrupted at its time limit may not have reached its `def`, so an earlier binding stays possible."""
    from utils.grading.records import NotebookRun

    handler = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    own = "def rotation_averaged_probs(*a):\n    return 0"
    nb = nbformat.v4.new_notebook()
    base = cells_of(EXERCISES, "03")
    nb.cells = [nbformat.v4.new_code_cell(c) for c in base + [handler, own]]
    path = tmp_path / "03_x.ipynb"
    nbformat.write(nb, path)
    n = len(base)
    assert "signal" in lr.for_notebook(path, "03", NotebookRun()).verdict(REGISTRY[RAP])  # it ran: refused
    assert lr.for_notebook(path, "03", NotebookRun(), left_out=[n]).verdict(REGISTRY[RAP]) is None
    # the star import, then a cell interrupted before its own `def` ran: the library's version may still be bound
    nb.cells = [nbformat.v4.new_code_cell(c) for c in base + ["from utils.analysis import *",
                                                             "while True:\n    pass\n" + own]]
    nbformat.write(nb, path)
    assert lr.for_notebook(path, "03", NotebookRun()).verdict(REGISTRY[RAP]) is None
    assert "rotation_averaged_probs" in lr.for_notebook(path, "03", NotebookRun(interrupted=[n + 1])).verdict(REGISTRY[RAP])
    # left out of the run altogether: the import never ran either
    assert lr.for_notebook(path, "03", NotebookRun(), left_out=[n]).verdict(REGISTRY[RAP]) is None


def test_copied_library_code_is_flagged_not_scored():
    source = inspect.getsource(analysis.rotation_averaged_probs).replace("rotation_averaged_probs", "RAP_TMP")
    renamed = source.replace("RAP_TMP", RAP)
    for old, new in (("probs", "pp"), ("model", "m")):
        renamed = renamed.replace(f"{old}", f"{new}") if old != "probs" else renamed
    sources = cells_of(EXERCISES, "03") + [renamed]
    a = lr.Analysis(sources, (), lr.course_templates()["03"])
    assert a.verdict(REGISTRY[RAP]) is None
    assert "copied" in a.copied(REGISTRY[RAP])
    assert lr.Analysis(cells_of(EXERCISES, "03"), (), lr.course_templates()["03"]).copied(REGISTRY[RAP]) is None
    # one statement added to the copy: still flagged as nearly the library's code
    edited = renamed.replace("    return ", "    unused = 0\n    return ", 1)
    a = lr.Analysis(cells_of(EXERCISES, "03") + [edited], (), lr.course_templates()["03"])
    assert "copied" in (a.copied(REGISTRY[RAP]) or ""), edited
    # a learner's own, different code is not
    own = inspect.getsource(__import__("utils.reference.lesson03", fromlist=["x"]).first_char_probs)
    a = lr.Analysis(cells_of(EXERCISES, "03") + [own.replace("def first_char_probs", f"def {RAP}")], (),
                    lr.course_templates()["03"])
    assert a.copied(REGISTRY[RAP]) is None


def test_the_verdict_scores_zero_with_the_reason(tmp_path):
    from utils.grading import reports, scoring
    from utils.grading.records import ExerciseRun, NotebookRun

    ex = REGISTRY[RAP]
    refs = scoring.References(0)
    run = NotebookRun(exercises={RAP: ExerciseRun([None] * len(refs.get(ex)[0]))})
    entry = scoring.score_exercise(ex, refs, run, tmp_path, 2**20, library_use="your `x` calls the course library's own")
    assert entry["score"] == 0 and entry["library"] and "library" in entry["problem"]
    result = {"learner": "x", "exercises": {RAP: entry}, "notebooks": {"03_x.ipynb": {"lesson": "03"}},
              "problems": [["copied-library", "note for the instructor"]]}
    reports.summarize(result)
    assert "library-version" in result["status"] and "note for the instructor" in result["notes"]
    md = reports.feedback_markdown(result)
    assert "calls the course library" in md and "note for the instructor" not in md


def test_case_files_are_hidden_until_the_exercises_own_call(tmp_path):
    """The grader writes the cases where only the worker reads them; the worker shows an exercise's files in the
    kernel's arguments folder only around that exercise's grading cell."""
    from utils.grading.batch import Grader, Settings
    from utils.grading.records import NotebookRun
    from utils.grading.runner import Runner

    nb = (next(SOLUTIONS.glob("01_*.ipynb"))).read_bytes()
    grader = Grader(Settings(sandbox="none"), tmp_path / "run")
    private = tmp_path / "learner"
    private.mkdir()
    job = grader.prepare({"01_dataset.ipynb": nb}, {"01": "01_dataset.ipynb"}, private)
    assert list((private / "args").iterdir()) == [] and list((private / "cases").iterdir())
    assert all(ex.library == [] for spec in job.notebooks for ex in spec.exercises)
    seen = {}

    class Probe(Runner):
        def __init__(self, job):  # no kernel: only the folder handling
            self.job, self.private = job, private

        def run_cell(self, client, source, timeout):
            seen["during"] = sorted(p.name for p in (private / "args").iterdir())
            return "ok", None

    probe = Probe(job)
    client = type("C", (), {"answers": {}, "token": ""})()
    ex = job.notebooks[0].exercises[0]
    probe.grade_exercise(client, ex, NotebookRun())
    assert seen["during"] == sorted(ex.args)
    assert list((private / "args").iterdir()) == []


def test_a_notebook_that_may_leave_code_running_gives_the_next_one_a_fresh_kernel(tmp_path):
    """A learner's notebooks share one kernel, reset between them; a thread, a signal handler or a patched module
    outlives that reset, and the next notebook's analysis could not see it. So the worker starts a fresh kernel
    after such a notebook (and only then)."""
    from utils.grading.batch import Grader, Settings
    from utils.grading.runner import Runner

    honest = next(SOLUTIONS.glob("01_*.ipynb"))
    nb = nbformat.read(next(SOLUTIONS.glob("02_*.ipynb")), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import threading\nthreading.Thread(target=print).start()"))
    notebooks = {honest.name: honest.read_bytes(), "02_model_loading.ipynb": nbformat.writes(nb).encode()}
    grader = Grader(Settings(sandbox="none"), tmp_path / "run")
    private = tmp_path / "learner"
    private.mkdir()
    job = grader.prepare(notebooks, {"01": honest.name, "02": "02_model_loading.ipynb"}, private)
    assert [spec.fresh_kernel_after for spec in job.notebooks] == [False, True]
    closed = []

    class Probe(Runner):  # no kernel: what the worker does after each notebook
        def attempt(self, spec, sources, skip, pending, entry):
            pending.clear()
            return False

        def close_kernel(self):
            closed.append(True)

    probe = Probe(job)
    probe.grade_notebook(job.notebooks[0])
    assert not closed
    probe.grade_notebook(job.notebooks[1])
    assert closed


def test_code_that_defeats_the_analysis_is_refused_not_crashed():
    deep = "x = " + "+".join(["1"] * 20000)  # parses where the recursion limit is raised, not here
    cells = [deep, "def rotation_averaged_probs(*a):\n    return x"]
    a = lr.Analysis.safely(cells, (), frozenset())
    assert "nested too deeply" in a.verdict(REGISTRY[RAP])
    assert "could not analyse" in lr.Unanalysable("RecursionError").verdict(REGISTRY[RAP])
    assert a.verdict(REGISTRY["rotate_text"]) is None  # no library version: nothing to check
