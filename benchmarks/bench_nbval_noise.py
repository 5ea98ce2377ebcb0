"""Does nbval tolerate float noise and still catch a real change? Perturb every shipped weight and run nbval.

For each relative scale (default 1e-7, about one float32 ulp, and 1e-2), copy the repository to a scratch folder,
multiply every floating-point tensor in the copy's data/*.pt by (1 + scale * s) with s = +-1 drawn from a fixed
seed, and run nbval over the solution notebooks there. data/ in this checkout is never touched.
Expected: 1e-7 passes (noise another CPU, BLAS or a GPU could make), 1e-2 fails.

    python benchmarks/bench_nbval_noise.py                       # all solution notebooks, both scales (minutes)
    python benchmarks/bench_nbval_noise.py --notebooks solutions/02_model_loading.ipynb --scales 1e-7 1e-2
    python benchmarks/bench_nbval_noise.py --exact --scales 1e-7   # control: bit-exact nbval fails on the noise
    python benchmarks/bench_nbval_noise.py --refresh --notebooks solutions/04_direct_logit_attribution.ipynb

--refresh first re-executes the notebooks in the scratch copy with the unperturbed weights (their stored outputs
then come from this checkout's library, as after `python -m utils.notebooks execute`), so that a branch that
changed how figures are drawn measures the noise alone. All seven lessons, both scales: about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", "site", "test-artifacts", "__pycache__", "*.pyc", ".ipynb_checkpoints")


def perturb_weights(data_dir: Path, scale: float, seed: int = 0) -> tuple[int, int]:
    """Multiply every float tensor of every data/*.pt by (1 + scale * +-1); (elements, elements that changed)."""
    generator = torch.Generator().manual_seed(seed)
    total = changed = 0
    for path in sorted(data_dir.glob("*.pt")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, tensor in state.items():
            if not tensor.is_floating_point() or tensor.numel() == 0:
                continue
            sign = torch.randint(0, 2, tensor.shape, generator=generator).double() * 2 - 1
            new = (tensor.double() * (1 + scale * sign)).to(tensor.dtype)
            total += tensor.numel()
            changed += int((new != tensor).sum())
            state[name] = new
        torch.save(state, path)
    return total, changed


def run_nbval(repo: Path, notebooks: list[str], exact: bool = False) -> tuple[bool, str]:
    """nbval over `notebooks` in `repo` (exact: without the tolerance of utils/nbcompare.py); (passed, summary)."""
    env = dict(os.environ, CBT_NBVAL_EXACT="1" if exact else "0")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *notebooks, "-q", "-p", "no:cacheprovider"],
        cwd=repo, capture_output=True, text=True, env=env,
    )
    lines = [line for line in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    failed = [line.split(" - ")[0] for line in result.stdout.splitlines() if line.startswith("FAILED")]
    summary = (lines[-1] if lines else result.stdout[-500:]) + (f"; first failures: {failed[:3]}" if failed else "")
    return result.returncode == 0, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1e-7, 1e-2])
    parser.add_argument("--notebooks", nargs="+", default=None, help="default: every solutions/NN_*.ipynb")
    parser.add_argument("--exact", action="store_true", help="control: nbval's bit-exact comparison, no tolerance")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--refresh", action="store_true", help="re-execute the notebooks unperturbed first")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or [str(p.relative_to(ROOT)) for p in sorted((ROOT / "solutions").glob("[0-9]*.ipynb"))]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nbval-noise-"))
    source = ROOT
    if args.refresh:
        source = workdir / "refreshed"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(ROOT, source, ignore=SKIP)
        for notebook in tqdm(notebooks, desc="refresh"):
            code = f"from pathlib import Path; from utils.notebooks import execute; execute(Path({notebook!r}).resolve(), images=False)"
            subprocess.run([sys.executable, "-c", code], cwd=source, check=True, capture_output=True)
    results = {}
    for scale in tqdm(args.scales, desc="scales"):
        copy = workdir / f"scale-{scale:g}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy, ignore=SKIP)
        total, changed = perturb_weights(copy / "data", scale)
        start = time.time()
        passed, summary = run_nbval(copy, notebooks, args.exact)
        results[scale] = passed
        print(f"relative {scale:g}: {changed}/{total} weights changed; nbval over {len(notebooks)} notebook(s) "
              f"{'(exact) ' if args.exact else ''}{'PASSED' if passed else 'FAILED'} in {time.time() - start:.0f} s ({summary})", flush=True)
    if args.exact:
        print("control (bit-exact nbval): " + ("fails on the noise" if not all(results.values()) else "passes"))
        return 0
    expected = all(passed == (scale < 1e-4) for scale, passed in results.items())
    print("as expected (noise passes, a real change fails)" if expected else "NOT as expected")
    return 0 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
