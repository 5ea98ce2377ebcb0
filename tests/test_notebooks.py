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


# ---- the form JupyterLab saves: opening, running or trusting a stored notebook changes nothing

def _as_jupyterlab_saves(text: str) -> str:
    """What JupyterLab 4 writes back for a notebook it opened (written here from its behaviour, not from
    utils.notebooks): nbformat 4.5, the running kernel's display name from its installed kernel spec, each cell's
    consecutive stream outputs of one name merged with carriage returns and backspaces applied (its outputarea's
    removeOverwrittenChars, ported as utils.notebooks.overwritten), saved by the server's contents manager
    (nbformat's JSON, indent 1, sorted keys, a final newline)."""
    from jupyter_client.kernelspec import KernelSpecManager

    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    spec = KernelSpecManager().get_kernel_spec(nb.metadata["kernelspec"]["name"])
    nb.metadata["kernelspec"]["display_name"] = spec.display_name
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            last = outputs[-1] if outputs else None
            if output.output_type == "stream" and last is not None and last.output_type == "stream" and last.name == output.name:
                last.text = notebooks.overwritten(last.text + output.text)
            else:
                if output.output_type == "stream":
                    output.text = notebooks.overwritten(output.text)
                outputs.append(output)
        cell.outputs = outputs
    saved = nbformat.writes(nb)
    return saved if saved.endswith("\n") else saved + "\n"


@pytest.mark.parametrize("path", SOLUTION_PATHS + EXERCISE_PATHS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_notebook_is_what_jupyterlab_saves(path):
    text = path.read_text()
    nbformat.validate(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
    saved = _as_jupyterlab_saves(text)
    if saved != text:
        import difflib

        diff = list(difflib.unified_diff(text.splitlines(), saved.splitlines(), "stored", "as JupyterLab saves", lineterm="", n=1))
        pytest.fail(f"{path.name}: opening it in JupyterLab would change {len(diff)} diff lines (run "
                    f"`python -m utils.notebooks execute {path.relative_to(ROOT)}`):\n" + "\n".join(diff[:40]))


def test_jupyterlab_form_merges_streams_and_sets_the_kernel_name():
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nb.cells = [nbformat.v4.new_code_cell("x", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="a\n"),
        nbformat.v4.new_output("stream", name="stderr", text="  0%|   |\r100%|###|\n"),
        nbformat.v4.new_output("stream", name="stderr", text="done\n"),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
    ])]
    nb.nbformat_minor = 4
    text = notebooks._dump(notebooks.jupyterlab_form(nb))
    assert _as_jupyterlab_saves(text) == text
    assert [o.text for o in nb.cells[0].outputs] == ["a\n", "100%|###|\ndone\n", "b\n"]
    assert nb.metadata.kernelspec.display_name == "Python 3 (ipykernel)" and nb.nbformat_minor == 5
    assert notebooks.overwritten("abc\ndef\rxy") == "abc\nxyf" and notebooks.overwritten("ab\bc") == "ac"


def test_trusting_a_notebook_does_not_rewrite_it(tmp_path):
    """`jupyter trust` (what the README suggests) stores a signature in its own database, never in the notebook."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / SOLUTION_PATHS[0].name
    shutil.copyfile(SOLUTION_PATHS[0], copy)
    env = {**__import__("os").environ, "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "nbformat.sign", str(copy)], check=True, env=env, capture_output=True)
    assert copy.read_bytes() == SOLUTION_PATHS[0].read_bytes()
    again = subprocess.run([sys.executable, "-m", "nbformat.sign", str(copy)], check=True, env=env, capture_output=True, text=True)
    assert "already signed" in again.stdout


def test_setup_cell_is_collapsed_in_jupyter_and_colab():
    source = notebooks.setup_cell_source()
    assert source.startswith("#@title ") and source.splitlines()[0].endswith('{ display-mode: "form" }')
    for path in SOLUTION_PATHS + EXERCISE_PATHS:
        cell = next(c for c in nbformat.read(path, as_version=4).cells if "setup" in c.metadata.get("tags", []))
        assert cell.metadata.get("cellView") == "form", path.name
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, path.name
