"""What the README's install downloads, per platform, from pip's resolver report (nothing is downloaded but
metadata: pip's dry run reads each wheel's metadata file from the index).

    python benchmarks/bench_install_size.py --routes     # both Linux routes of the README (about 2 minutes)
    python -m pip install --dry-run --ignore-installed --report install.json -r requirements.txt [index options]
    python benchmarks/bench_install_size.py install.json

`--routes` resolves the README's two Linux routes with pip's dry run: "cpu", torch from PyTorch's CPU index (where
that index cannot be reached, as on this project's CI machine, pip's configured find-links must serve the same
+cpu wheel, or the route is reported as not measurable), and "cuda", the fallback with no CPU index: everything from
PyPI alone (pip's configuration and find-links switched off), which brings PyPI's CUDA build of torch and its
nvidia-* libraries.

Sums the report's files (local ones from disk, the rest with sizes from PyPI's JSON simple API). For macOS
(arm64) and Windows it replaces each platform-specific wheel of the same resolve by that version's wheel for the
platform: pip cannot resolve for another platform's markers, so small platform-only dependencies (colorama,
appnope, pywinpty) are not counted there.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
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


ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI = "https://pypi.org/simple"


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=10)
        return True
    except OSError:
        return False


def resolve(route: str, report: Path) -> list[dict]:
    """pip's dry-run report of `pip install -r requirements.txt` along one README route."""
    env = dict(os.environ)
    args = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
            "-r", str(ROOT / "requirements.txt")]
    if route == "cuda":  # PyPI alone: no configuration, no find-links, no CPU index
        env.update(PIP_CONFIG_FILE=os.devnull)
        env.pop("PIP_FIND_LINKS", None)
        args += ["--index-url", PYPI]
    elif reachable(CPU_INDEX + "/torch/"):
        args += ["--extra-index-url", CPU_INDEX]
    subprocess.run(args, check=True, env=env, stderr=subprocess.DEVNULL)
    return json.loads(report.read_text())["install"]


def routes() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for route in ("cpu", "cuda"):
            items = resolve(route, Path(folder) / f"{route}.json")
            torch = next(i for i in items if i["metadata"]["name"] == "torch")
            build = "CPU build" if "+cpu" in torch["metadata"]["version"] else "CUDA build"
            if route == "cpu" and build != "CPU build":
                print(f"cpu route: not measurable here ({CPU_INDEX} unreachable and no +cpu wheel configured)")
                continue
            sizes = sorted(((size_for(i, "linux", "cp311"), i["metadata"]["name"]) for i in items), reverse=True)
            top = ", ".join(f"{n} {s / 1e6:.0f}" for s, n in sizes[:5])
            print(f"{route:5s} Linux: {len(items)} packages, {sum(s for s, _ in sizes) / 1e9:.2f} GB "
                  f"(torch {torch['metadata']['version']}, {build}; largest, MB: {top})", flush=True)


def main(report_path: str, py: str = "cp311") -> None:
    if report_path == "--routes":
        return routes()
    items = json.load(open(report_path))["install"]
    for platform in PLATFORMS:
        sizes = sorted(((size_for(i, platform, py), i["metadata"]["name"]) for i in items), reverse=True)
        top = ", ".join(f"{n} {s / 1e6:.0f}" for s, n in sizes[:4])
        print(f"{platform:8s} {sum(s for s, _ in sizes) / 1e6:6.0f} MB in {len(items)} packages (largest, MB: {top})")


if __name__ == "__main__":
    main(*sys.argv[1:])
