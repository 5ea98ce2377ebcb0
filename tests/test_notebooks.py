"""Exercise notebooks: generated from solutions/, in sync, no outputs, no solutions, and they run with the
stubs raising. (Solution notebooks themselves are executed and compared by nbval: see pytest.ini.)"""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from utils import notebooks
from utils.notebooks import BEGIN, END, EXERCISES, SOLUTIONS, colab_url, exercise_notebook, strip_solutions

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_PATHS = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
EXERCISE_PATHS = sorted(EXERCISES.glob("[0-9][0-9]_*.ipynb"))
# Errors an exercise notebook may show before the learner fills it in: the stubs, and names they never defined.
ALLOWED_ERRORS = {"NotImplementedError", "ExerciseNotDone", "NameError"}


def test_strip_solutions_keeps_signature_and_indentation():
    src = f'def f(x):\n    """Doc."""\n    {BEGIN}\n    y = x + 1\n    return y\n    {END}\n\nprint(1)'
    assert strip_solutions(src) == 'def f(x):\n    """Doc."""\n    raise NotImplementedError()\n\nprint(1)'


@pytest.mark.parametrize("bad", [f"{BEGIN}\nx", f"{END}\nx", f"{BEGIN}\n{BEGIN}\n{END}"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(ValueError):
        strip_solutions(bad)


def test_solution_tagged_cells_and_outputs_are_removed():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("answer", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell(f"def f():\n    {BEGIN}\n    return 1\n    {END}", outputs=[], execution_count=3),
    ]
    ex = exercise_notebook(nb)
    sources = [c.source for c in ex.cells]
    assert "answer" not in sources and all("return 1" not in s for s in sources)
    assert ex.cells[0].metadata["tags"] == ["setup"] and ex.cells[-1].execution_count is None


def test_there_are_seven_lessons():
    assert [p.name[:2] for p in SOLUTION_PATHS] == ["01", "02", "03", "04", "05", "06", "07"], SOLUTION_PATHS


def test_exercise_notebooks_are_in_sync_with_solutions():
    stale = notebooks.stale_files()
    assert not stale, f"run `python -m utils.notebooks build`: {[str(p.relative_to(ROOT)) for p in stale]}"


@pytest.mark.parametrize("path", EXERCISE_PATHS, ids=lambda p: p.name)
def test_exercise_notebook_has_no_outputs_or_solutions(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert BEGIN not in cell.source and END not in cell.source
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


@pytest.mark.parametrize("path", SOLUTION_PATHS, ids=lambda p: p.name)
def test_solution_notebook_format(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "### Exercise - " in text and "Difficulty:" in text and "Importance:" in text
    assert re.search(r"learning objectives", text, re.I) and "<details>" in text
    assert text.count(BEGIN) == text.count(END) >= 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs is not None and cell.execution_count is not None, f"{path.name}: not executed"


def test_readme_has_a_colab_badge_per_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in EXERCISE_PATHS:
        assert colab_url(path.name) in readme, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISE_PATHS, ids=lambda p: p.name)
def test_exercise_notebook_runs_with_stubs_raising(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors, stub_cells_raising = [], 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "error":
                errors.append((i, out.ename))
                if "raise NotImplementedError()" in cell.source:
                    stub_cells_raising += 1
    unexpected = [(i, e) for i, e in errors if e not in ALLOWED_ERRORS]
    assert not unexpected, f"{path.name}: cells raised unexpected errors {unexpected}"
    assert stub_cells_raising >= 1, f"{path.name}: no stub cell raised: are the checks called?"


def test_setup_cell_names_the_repository_and_version_of_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    source = notebooks.setup_cell_source()
    assert f'REPO, VERSION = "{project["urls"]["Repository"]}", "{project["version"]}"' in source
    for path in SOLUTION_PATHS + EXERCISE_PATHS:
        cells = nbformat.read(path, as_version=4).cells
        assert [c.source for c in cells if "setup" in c.metadata.get("tags", [])] == [source], path.name


def test_build_points_the_readme_badges_at_the_repository():
    fork = "[![Open](x)](https://colab.research.google.com/github/someone/fork/blob/main/notebooks/01_dataset.ipynb)"
    assert notebooks.readme_with_badges(fork) == f"[![Open](x)]({colab_url('01_dataset.ipynb')})"
