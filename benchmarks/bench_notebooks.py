"""Wall time of each solution notebook, executed top to bottom in a fresh kernel on this machine:
`python benchmarks/bench_notebooks.py`. Nothing is written back to the notebooks."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_models import cpu_name  # noqa: E402
from utils.notebooks import SOLUTIONS, execute  # noqa: E402


def main() -> None:
    import os

    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores")
    total = 0.0
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        seconds = execute(path, save=False)
        total += seconds
        print(f"  {path.name:<36} {seconds:6.1f} s")
    print(f"  {'all solution notebooks':<36} {total:6.1f} s")


if __name__ == "__main__":
    main()
