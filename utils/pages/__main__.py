"""python -m utils.pages build [--out site] [notebooks...]  |  python -m utils.pages check [--out site] [--shots DIR]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import DEFAULT_OUT, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.pages", description=__doc__)
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: all of solutions/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--shots", type=Path, default=None, help="check: folder for one screenshot per page")
    args = parser.parse_args(argv)
    if args.command == "build":
        pages = build(args.out, args.notebooks or None)
        print(f"wrote {len(pages)} pages and index.html to {args.out}")
        return 0
    from .browser import check_pages

    reports = check_pages(sorted(args.out.glob("[0-9]*.html")), args.shots)
    for report in reports:
        print(report.summary())
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
