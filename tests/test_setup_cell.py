"""The notebooks' setup cell, run the way Colab runs it, and outside the repository.

In Colab the cell clones this repository (here: this checkout's committed state, over file://), asks
utils/colab_setup.py what Colab lacks (here as a dry run, checked by tests/test_setup_plan.py's rules), and the
notebook then runs from the clone."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_setup_plan import assert_plan_changes_nothing_installed

from utils import notebooks

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cell_says_what_to_do_outside_the_repository(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_ROOT")}
    done = subprocess.run([sys.executable, "-c", notebooks.setup_cell_source()], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    message = done.stderr.splitlines()[-1]
    assert "ModuleNotFoundError" in message and "pip install -e ." in message and "COURSE_ROOT" in message
    assert notebooks.REPO_URL in message


def foreign_utils(tmp_path: Path) -> Path:
    """A folder holding another package called `utils` (PyPI has one) and a `google.colab` stand-in."""
    (tmp_path / "foreign" / "utils").mkdir(parents=True)
    (tmp_path / "foreign" / "utils" / "__init__.py").write_text("FOREIGN = True\n")
    (tmp_path / "foreign" / "google" / "colab").mkdir(parents=True)
    (tmp_path / "foreign" / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab."""\n')
    return tmp_path / "foreign"


def test_setup_cell_finds_the_course_after_a_foreign_utils(tmp_path):
    """COURSE_ROOT names the checkout; a foreign `utils` imported first is replaced by the course's."""
    script = "import utils\nassert utils.FOREIGN\n" + notebooks.setup_cell_source() + textwrap.dedent("""
        import utils, utils.checks
        assert not hasattr(utils, "FOREIGN"), utils.__file__
        print(utils.__file__)""")
    env = {**os.environ, "PYTHONPATH": str(foreign_utils(tmp_path)), "COURSE_ROOT": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(ROOT / "utils" / "__init__.py")


# Run in the kernel before the setup cell: Colab has imported google.colab; the learner imported another
# `utils`; the clone goes to this checkout; the installer only reports what it would do.
COLAB_PRELUDE = """
import subprocess, google.colab, utils
assert utils.FOREIGN
_run = subprocess.run
def _colab_run(cmd, *args, **kwargs):
    cmd = [{local!r} if c == {repo!r} else c for c in cmd]
    if str(cmd[-1]).endswith("colab_setup.py"):
        cmd = [*cmd, "--dry-run", {plan!r}]
    return _run(cmd, *args, **kwargs)
subprocess.run = _colab_run
"""
CHECK_AFTER_SETUP = """
import utils, utils.checks
assert not hasattr(utils, "FOREIGN") and Path(utils.__file__).parent == ROOT / "utils" == Path.cwd().parent / "utils"
assert ROOT == Path({content!r}) / {repo_dir!r}, ROOT
"""


@pytest.mark.slow
def test_setup_cell_runs_a_notebook_like_colab(tmp_path):
    content = tmp_path / "content"  # Colab's working folder: the notebook itself is not on disk there
    content.mkdir()
    plan = tmp_path / "plan.json"
    nb = nbformat.read(ROOT / "solutions" / "01_dataset.ipynb", as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
    prelude = COLAB_PRELUDE.format(local=f"file://{ROOT}", repo=notebooks.REPO_URL, plan=str(plan))
    check = CHECK_AFTER_SETUP.format(content=str(content.resolve()), repo_dir=notebooks.REPO_DIR)
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(check))
    nb.cells.insert(setup, nbformat.v4.new_code_cell(prelude))
    env = {"PYTHONPATH": str(foreign_utils(tmp_path))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(content)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert (content / notebooks.REPO_DIR / "utils" / "checks").is_dir()
    assert_plan_changes_nothing_installed(json.loads(plan.read_text()))
    setup_cell = nb.cells[setup + 1]
    printed = [o for o in setup_cell.outputs if o.output_type == "stream" and "has no tag" not in o.text]
    assert not printed, printed  # the cell prints nothing (but the note that a release tag is missing)
