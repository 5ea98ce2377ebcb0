"""Hostile notebooks graded end to end in the sandbox (one small batch, short timeouts): cells that loop or sleep
are interrupted inside bubblewrap as outside it; cells that ignore interrupts cost their own notebook a re-run
each but never a later exercise's points, however few kernel starts are allowed; an output flood is reported even
when the notebook is re-run; the sandbox's /proc names no host path; and nothing of the
run is left in the results folder or in /tmp."""

from __future__ import annotations

import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from utils import grade
from utils.checks.core import REGISTRY
from test_grade import notebook  # the same learner notebook: setup cell, imports, then the cells given
from utils.reference import lesson01

ROOT = Path(__file__).resolve().parent.parent
NB_NAME = "01_dataset.ipynb"
LESSON01 = [name for lesson, name, _ in grade.points_table() if lesson == "01"]
POINTS = {name: REGISTRY[name].points for name in LESSON01}
# cell_timeout leaves room for the imports cell on a busy 2-core machine; one kernel start per notebook at most,
# besides the re-runs that leave out a cell that would not stop
SETTINGS = dict(cell_timeout=20, exercise_timeout=60, submission_timeout=600, memory_mb=4000, disk_mb=64,
                max_procs=128, max_kernel_starts=1, seed=4321)


def correct_cells() -> list[str]:
    return [inspect.getsource(getattr(lesson01, n)) + "\n" for n in LESSON01]


def host_secrets(subs: Path, out: Path) -> list[str]:
    """Host paths the sandbox must not see anywhere in /proc: the submissions, the results, pytest's and the run's
    temporary folders (with the grader's pid), the checkout, the Python installation and virtual environment. A
    grader that is not root cannot mount: there the arguments and socket folders show as bound from the run folder
    (the README says so)."""
    found = [str(subs), str(out), str(Path(tempfile.gettempdir()) / "pytest-of"), str(ROOT), sys.prefix]
    if not (sys.base_prefix == "/usr" or sys.base_prefix.startswith("/usr/")):  # else /usr, the system's
        found.append(sys.base_prefix)
    if os.geteuid() == 0:
        found += ["codebreak-run", "codebreak-kernel"]
    return found


def proc_cell(*secrets: str) -> str:
    """A cell that fails with the list of host paths and variables it found in the sandbox's /proc: every process's
    mount tables, environment, command line, memory map, status and cgroup, and where its links point (exe, cwd,
    root, open files)."""
    return f"""\
    import os
    found = []
    texts = {{}}
    for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self", "thread-self"]:
        for what in ("mountinfo", "mounts", "mountstats", "environ", "cmdline", "maps", "status", "cgroup"):
            try:
                texts[pid + "/" + what] = open(f"/proc/{{pid}}/{{what}}", "rb").read().decode(errors="replace")
            except OSError:
                pass
        links = ["exe", "cwd", "root"] + [f"fd/{{fd}}" for fd in (os.listdir(f"/proc/{{pid}}/fd") if os.access(f"/proc/{{pid}}/fd", os.R_OK) else [])]
        for link in links:
            try:
                texts[pid + "/" + link] = os.readlink(f"/proc/{{pid}}/{{link}}")
            except OSError:
                pass
    for where, text in texts.items():
        found += [f"{{where}}: {{s}}" for s in {list(secrets)!r} if s in text]
    init_env = {{item.split("=", 1)[0] for item in texts.get("1/environ", "").split("\\0") if item}}
    found += [f"1/environ: {{name}}" for name in sorted(init_env - {{"PATH"}})]
    raise RuntimeError(f"LEAKS {{found}} of {{len(texts)}}")
    """


FILL_SOCKET_FOLDER = """\
import os
args = open("/proc/self/cmdline", "rb").read().split(b"\\0")
folder = os.path.dirname(args[args.index(b"-f") + 1].decode())
written, names = 0, []
try:
    while written < 100 * 2**20:  # 2 MB files (under the file-size limit) up to 100 MB
        names.append(os.path.join(folder, f"fill{len(names)}"))
        with open(names[-1], "wb") as f:
            f.write(b"x" * 2**21)
        written += 2**21
except OSError:
    pass
for name in names:
    if os.path.exists(name):
        os.remove(name)
raise RuntimeError(f"SOCKETDIR {written >> 20} MB")
"""

IGNORES_INTERRUPTS = """\
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("hostile-submissions")
    out = tmp_path_factory.mktemp("hostile-results")
    learners = {
        # plain loops: interrupted at the cell limit in the sandbox, one kernel, one run; /proc probed meanwhile
        # (the first plain loop only computes: the slicer leaves it out; the second imports, so it runs)
        "loops": notebook("while True:\n    pass\n", "import math\nwhile True:\n    pass\n",
                          "import time\ntime.sleep(10**6)\n",
                          proc_cell(*host_secrets(subs, out)),
                          FILL_SOCKET_FOLDER,
                          *correct_cells()),
        # a flood, then two cells that ignore interrupts, then every exercise right
        "stubborn": notebook("import string\nprint('x' * 3_000_000)\n", IGNORES_INTERRUPTS, IGNORES_INTERRUPTS, *correct_cells()),
    }
    for learner, nb in learners.items():
        (subs / learner).mkdir()
        nbformat.write(nb, subs / learner / NB_NAME)
    before = set(Path(tempfile.gettempdir()).glob("codebreak-*"))
    results = grade.grade_all(subs, out, jobs=2, settings=grade.Settings(**SETTINGS), progress=False)
    left = set(Path(tempfile.gettempdir()).glob("codebreak-*")) - before
    return subs, out, {r["learner"]: r for r in results}, left


def scores(result: dict) -> dict[str, float]:
    return {name: result["exercises"][name]["score"] for name in LESSON01}


@pytest.mark.slow
def test_loops_are_interrupted_in_the_sandbox(graded):
    r = graded[2]["loops"]
    assert scores(r) == POINTS, r
    problems = [msg for tag, msg in r["problems"]]
    assert sum("was interrupted" in m for m in problems) == 2, problems
    assert not any("code cell 3 " in m for m in problems), problems  # the plain loop was left out: nothing to stop
    assert not any("would not stop" in m for m in problems), problems
    nb = r["notebooks"][NB_NAME]
    assert nb["runs"] == 1 and nb["kernel_starts"] == 1, nb


@pytest.mark.slow
def test_cells_that_ignore_interrupts_cost_only_their_own_notebook(graded):
    r = graded[2]["stubborn"]
    # more such cells than kernel starts allowed, and still every point: the cells that installed a signal handler
    # were left out of the run that answered the grading calls, so the library rule does not count them
    assert scores(r) == POINTS, r
    assert not any(r["exercises"][name].get("library") for name in LESSON01), r
    problems = [msg for tag, msg in r["problems"]]
    assert sum("would not stop" in m for m in problems) == 2, problems
    assert r["notebooks"][NB_NAME]["runs"] == 3


@pytest.mark.slow
def test_a_flood_is_reported_when_the_notebook_is_rerun(graded):
    r = graded[2]["stubborn"]
    assert "output-flood" in r["status"], r["problems"]
    assert sum(tag == "output-flood" for tag, _ in r["problems"]) == 1


@pytest.mark.slow
def test_proc_names_nothing_of_the_host(graded):
    errors = graded[2]["loops"]["notebooks"][NB_NAME]["cell_errors"]
    leaks = [e["error"] for e in errors if "LEAKS" in e["error"]]
    assert len(leaks) == 1 and leaks[0].startswith("RuntimeError: LEAKS [] of "), errors
    assert int(leaks[0].split()[-1]) > 20, leaks  # it read the files it lists


@pytest.mark.slow
def test_the_socket_folder_is_size_limited_too(graded):
    """The one folder a kernel writes outside its own tmpfs: a tmpfs of --disk-mb (64 MB here) when grading as root
    (the README says what a grader that is not root cannot limit)."""
    errors = graded[2]["loops"]["notebooks"][NB_NAME]["cell_errors"]
    found = [e["error"] for e in errors if "SOCKETDIR" in e["error"]]
    assert len(found) == 1, errors
    written = int(found[0].split()[-2])
    if os.geteuid() == 0:
        assert written <= 64, found


@pytest.mark.slow
def test_nothing_left_in_the_results_or_tmp(graded):
    subs, out, results, left = graded
    assert not (out / ".tmp").exists()
    assert sorted(p.name for p in out.iterdir()) == ["feedback", "grades.csv", "grades.json", "results", "skipped.txt"]
    assert not left, left


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("capsh"), reason="needs root and capsh (libcap2-bin)")
def test_root_that_may_not_mount_still_grades_in_the_sandbox(tmp_path):
    """Root without CAP_SYS_ADMIN (as in some containers) cannot make the worker's or the launcher's private mount
    namespace: the launcher then stages in a user namespace of its own (root and the sandbox's uid mapped by a helper
    left outside), still reaches folders the sandbox's uid cannot (the learner's private folder, a Python under
    /root), runs the kernel as that uid, and grades a correct notebook in full."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    nbformat.write(notebook("import os\nassert os.getuid() != 0\n", *correct_cells()), subs / "alice" / NB_NAME)
    command = f"{shlex.quote(sys.executable)} -m utils.grade {shlex.quote(str(subs))} --out {shlex.quote(str(out))} -j 1"
    proc = subprocess.run(["capsh", "--drop=cap_sys_admin", "--", "-c", command], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(next((out / "results").glob("*.json")).read_text())
    nb = result["notebooks"][NB_NAME]
    assert not nb["cell_errors"], nb["cell_errors"]
    assert result["total"] == sum(POINTS.values()), (result["status"], result["problems"])
