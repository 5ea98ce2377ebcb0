"""What the README's install downloads, per platform, from pip's resolver report.

    python -m pip install --dry-run --ignore-installed --report install.json -r requirements.txt [index options]
    python benchmarks/bench_install_size.py install.json

Sums the report's files (local ones from disk, the rest with sizes from PyPI's JSON simple API). For macOS
(arm64) and Windows it replaces each platform-specific wheel of the same resolve by that version's wheel for the
platform: pip cannot resolve for another platform's markers, so small platform-only dependencies (colorama,
appnope, pywinpty) are not counted there.
"""

import json
import os
import re
import sys
import urllib.request
from functools import cache
from urllib.parse import unquote, urlparse

PLATFORMS = {"linux": ("manylinux", ("x86_64",)), "macos": ("macosx", ("arm64", "universal2")),
             "windows": ("win_amd64", ("win_amd64",))}


@cache
def pypi_files(project: str) -> list[dict]:
    req = urllib.request.Request(f"https://pypi.org/simple/{project}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["files"]


def size_for(item: dict, platform: str, py: str) -> int:
    url = item["download_info"]["url"]
    filename = unquote(url.rsplit("/", 1)[-1])
    name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
    pure = filename.endswith(("-none-any.whl", ".tar.gz", ".zip")) and "+" not in filename
    if url.startswith("file://") and (pure or platform == "linux"):
        return os.path.getsize(unquote(urlparse(url).path))
    if pure or platform == "linux":
        return next(f["size"] for f in pypi_files(name) if f["filename"] == filename)
    word, arches = PLATFORMS[platform]
    version = item["metadata"]["version"].split("+")[0]
    sizes = [f["size"] for f in pypi_files(name) if f"-{version}-" in f["filename"] and word in f["filename"]
             and any(a in f["filename"] for a in arches)
             and any(t in f["filename"] for t in (py, "abi3", "py3-none"))]
    if not sizes:
        print(f"  ({platform}: no wheel of {name} {version})", file=sys.stderr)
    return min(sizes, default=0)


def main(report_path: str, py: str = "cp311") -> None:
    items = json.load(open(report_path))["install"]
    for platform in PLATFORMS:
        sizes = sorted(((size_for(i, platform, py), i["metadata"]["name"]) for i in items), reverse=True)
        top = ", ".join(f"{n} {s / 1e6:.0f}" for s, n in sizes[:4])
        print(f"{platform:8s} {sum(s for s, _ in sizes) / 1e6:6.0f} MB in {len(items)} packages (largest, MB: {top})")


if __name__ == "__main__":
    main(*sys.argv[1:])
