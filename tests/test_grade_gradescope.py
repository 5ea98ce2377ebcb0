"""The Gradescope autograder: export it, lay it out like Gradescope in a temporary folder, run run_autograder on a
solved notebook (full marks), a blank one (zero) and, where bubblewrap cannot start (a container without user
namespaces, simulated by a `bwrap` that fails as it does there), hostile notebooks that must never run: the
autograder refuses with a results.json that says why."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from utils.grading import gradescope
from utils.notebooks import EXERCISES, SOLUTIONS

NB_NAME = "01_dataset.ipynb"
LESSON01 = [name for lesson, name, _ in gradescope.points_table() if lesson == "01"]


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    return gradescope.export(tmp_path_factory.mktemp("export"), lessons=["01"])


def run_autograder(tmp: Path, zip_path: Path, notebook_text: str, path: str | None = None) -> dict:
    root = tmp / "autograder"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission" / "nested").mkdir(parents=True)
    (root / "submission" / "nested" / NB_NAME).write_text(notebook_text)
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    if path:
        env["PATH"] = path
    subprocess.run(["bash", str(root / "run_autograder")], env=env, timeout=1200, check=True)
    return json.loads((root / "results" / "results.json").read_text())


def test_zip_layout(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as zf:
        names = set(zf.namelist())
        assert {"setup.sh", "run_autograder", "requirements.txt", "config.json"} <= names
        assert "utils/grading/gradescope.py" in names and "data/caesar_cipher_model_easy.pt" in names
        for script in ("setup.sh", "run_autograder"):
            assert (zf.getinfo(script).external_attr >> 16) & stat.S_IXUSR
        setup = zf.read("setup.sh").decode()
        assert "download.pytorch.org/whl/cpu" in setup and "requirements.txt" in setup and "bubblewrap" in setup
        assert json.loads(zf.read("config.json")) == {"lessons": ["01"]}


@pytest.mark.slow
def test_solved_notebook_gets_full_marks(tmp_path, autograder_zip):
    results = run_autograder(tmp_path, autograder_zip, (SOLUTIONS / NB_NAME).read_text())
    tests = {t["name"]: t for t in results["tests"]}
    assert set(tests) == {f"01 {n}" for n in LESSON01}
    assert all(t["score"] == t["max_score"] > 0 for t in tests.values()), results
    assert all(t["output"].startswith("All ") for t in tests.values())


@pytest.mark.slow
def test_blank_notebook_gets_zero(tmp_path, autograder_zip):
    results = run_autograder(tmp_path, autograder_zip, (EXERCISES / NB_NAME).read_text())
    assert len(results["tests"]) == len(LESSON01)
    assert all(t["score"] == 0 and t["max_score"] > 0 for t in results["tests"]), results
    assert all("implemented" in t["output"] for t in results["tests"])


FAILING_BWRAP = """#!/bin/sh
echo "bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces." >&2
exit 1
"""


def test_refuses_without_bwrap_and_runs_nothing(tmp_path, autograder_zip):
    """Where bwrap cannot start (as in a container that forbids user namespaces), a learner's notebook is never run:
    not as root, not as another user. Hostile cells that would turn a 0 into full marks through a root launcher
    (swapping its folder or connection file for links to the results) or leave a daemon behind find nothing to act
    on, and results.json gives every exercise 0 with the reason."""
    import nbformat

    fake = Path(tempfile.mkdtemp(prefix="codebreak-test-bin-"))  # reachable by the sandbox's uid too
    fake.chmod(0o755)
    (fake / "bwrap").write_text(FAILING_BWRAP)
    (fake / "bwrap").chmod(0o755)
    (fake / "drop").mkdir()
    (fake / "drop").chmod(0o777)  # where learner code would leave its mark, as whichever user it ran
    marker = fake / "drop" / "learner-code-ran"
    results_dir = tmp_path / "autograder" / "results"
    nb = nbformat.read(EXERCISES / NB_NAME, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import glob, json, os, subprocess, sys\n"
        f"open({str(marker)!r}, 'w').write(str(os.getuid()))\n"
        "for path in glob.glob('/tmp/codebreak-*/**', recursive=True):\n"
        "    try:\n"
        "        if path.endswith('.json'):\n"
        "            os.replace(path, path + '.x'); os.symlink(" + repr(str(results_dir)) + ", path)\n"
        "    except OSError:\n"
        "        pass\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # codebreak-daemon-{os.getpid()}'],"
        " start_new_session=True)\n"
        f"json.dump({{'tests': [], 'score': 999}}, open({str(results_dir / 'results.json')!r}, 'w'))\n"))
    results = run_autograder(tmp_path, autograder_zip, nbformat.writes(nb),
                             path=f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    assert not marker.exists(), "a learner's cell ran without the sandbox"
    assert len(results["tests"]) == len(LESSON01) and all(t["score"] == 0 for t in results["tests"]), results
    assert "sandbox" in results["output"] and "user namespaces" in results["output"], results["output"]
    assert all("never run without it" in t["output"] for t in results["tests"])
    daemons = []
    for p in Path("/proc").iterdir():
        try:
            if f"codebreak-daemon-{os.getpid()}".encode() in (p / "cmdline").read_bytes():
                daemons.append(p.name)
        except OSError:
            pass
    assert not daemons
    shutil.rmtree(fake)
