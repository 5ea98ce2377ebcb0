"""The Gradescope autograder: export it, lay it out like Gradescope in a temporary folder, run run_autograder on a
solved notebook (full marks), a blank one (zero) and, without bubblewrap (as an unprivileged user, the fallback in
a container without user namespaces), a notebook that reads the reference answers from the autograder's source."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
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


def run_autograder(tmp: Path, zip_path: Path, notebook_text: str, mode: str | None = None) -> dict:
    root = tmp / "autograder"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission" / "nested").mkdir(parents=True)
    (root / "submission" / "nested" / NB_NAME).write_text(notebook_text)
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    if mode:
        env["CODEBREAK_SANDBOX"] = mode
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


@pytest.mark.slow
def test_reference_out_of_reach_without_bwrap(tmp_path, autograder_zip):
    import nbformat

    nb = nbformat.read(EXERCISES / NB_NAME, as_version=4)
    source = tmp_path / "autograder" / "source"
    nb.cells.append(nbformat.v4.new_code_cell(
        "import glob, os\n"
        f"for path in glob.glob({str(source)!r} + '/utils/reference/lesson01.py') + [{str(source / 'utils/reference/lesson01.py')!r}]:\n"
        "    try:\n"
        "        exec(open(path).read().replace('from ..data', 'from utils.data'), globals())\n"
        "    except OSError as e:\n"
        "        print('blocked', e)\n"))
    results = run_autograder(tmp_path, autograder_zip, nbformat.writes(nb), mode="user")
    assert all(t["score"] == 0 for t in results["tests"]), results
