"""A fresh clone stays clean through the README's commands, and the README's Linux install fails fast (and says what
to do) where PyTorch's CPU index cannot be reached.

The clone test runs the README's commands in a temporary clone of this checkout's last commit, with this test's own
interpreter standing in for the clone's `.venv` (installing the requirements again would download hundreds of MB):
the editable install into a throwaway prefix, building and checking the exercise notebooks, building the read-only
pages, a test file, the grader's listing and `jupyter trust`; then `git status --porcelain` must be empty. The
full test command and the notebooks' execution are CI's (`.ci/run`) and would take this test's minutes to hours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# (the command as the README writes it, what this test runs in the clone: python is this interpreter)
README_COMMANDS = [
    ("python -m pip install -e .", ["-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "-e", ".", "--prefix", "{tmp}/prefix"]),
    ("python -m utils.notebooks build", ["-m", "utils.notebooks", "build"]),
    ("python -m utils.notebooks build|check", ["-m", "utils.notebooks", "check"]),
    ("python -m utils.pages build", ["-m", "utils.pages", "build"]),
    ("python -m pytest", ["-m", "pytest", "-q", "tests/test_stats.py"]),
    ("python -m utils.grade --list", ["-m", "utils.grade", "--list"]),
    ("jupyter trust", ["-m", "nbformat.sign", "notebooks/01_dataset.ipynb", "solutions/01_dataset.ipynb"]),
]


def _clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COURSE_ROOT"))}
    return {**env, "JUPYTER_DATA_DIR": str(tmp / "jupyter"), "PYTHONDONTWRITEBYTECODE": ""}


@pytest.mark.slow
def test_fresh_clone_stays_clean_through_the_readme_commands(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = _clean_env(tmp_path)
    for shown, args in README_COMMANDS:
        assert shown in README or shown in (ROOT / "CONTRIBUTING.md").read_text(), f"the README no longer says {shown!r}"
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        done = subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{shown}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
        assert status.stdout == "", f"after `{shown}` the clone is not clean:\n{status.stdout}"
    tracked = subprocess.run(["git", "ls-files"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert ".egg-info" not in tracked


def test_readme_linux_install_is_torch_from_the_cpu_index_then_the_rest_and_ci_runs_it():
    pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    first = f"python -m pip install --retries 0 --timeout 20 --index-url {CPU_INDEX} {pin}"
    assert f"{first} && python -m pip install -r requirements.txt" in README, f"the README's Linux command must install {pin}"
    assert f"No matching distribution found for {pin}" in README
    assert "199 packages" in README and "2.96 GB" in README  # the fallback's real download, measured
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install --retries 0 --timeout 20 --index-url "$CPU_INDEX" "$(grep \'^torch==\' "$1")"' in ci
    assert f"CPU_INDEX={CPU_INDEX}" in ci and 'python -m pip install -r "$1"' in ci


@pytest.mark.parametrize("index", ["http://127.0.0.1:9/whl/cpu", "https://download.pytorch.invalid/whl/cpu"],
                         ids=["refused", "name-not-found"])
def test_first_install_step_fails_within_a_minute_where_the_index_is_unreachable(index, tmp_path):
    """The README's first step against an index that refuses or does not resolve (pip's configuration and
    find-links off, as on a newcomer's machine): it fails, fast, naming torch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--retries", "0", "--timeout", "20",
         "--index-url", index, pin],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    seconds = time.monotonic() - start
    assert done.returncode != 0 and seconds < 60, (seconds, done.stdout[-1000:], done.stderr[-1000:])
    assert f"No matching distribution found for {pin}" in done.stderr, done.stderr[-1000:]
    print(f"{index}: failed in {seconds:.1f} s")
