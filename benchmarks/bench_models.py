"""Quality and speed of the trained models: `python benchmarks/bench_models.py [--size N] [--train]`.

Prints, on the same held-out sequences: CE and p(correct) of our models, of the Bayes-optimal limit
(easy/medium) or the letter-frequency baseline (hard), and of the original module's checkpoints where
../shared/anchors/ exists (they are never part of the project). Then the wall time of one run_with_cache over
1000 x 32 tokens, and (with --train) of a full training run per mode on this CPU.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.bayes import bayes_logprobs, letter_frequency_logprobs  # noqa: E402
from utils.data import CodeBreakingDataset, letter_frequencies, load_corpus  # noqa: E402
from utils.evaluate import correct_logprobs, model_logprobs, summarize  # noqa: E402
from utils.model import load_model  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors"


def row(name: str, s: dict, limit: float | None) -> str:
    ratio = f"{s['ce'] / limit:6.3f}x" if limit else "       "
    return (f"  {name:<28} CE {s['ce']:.4f} {ratio}  mean p {s['mean_p']:.4f}  median p {s['median_p']:.4f}"
            f"  min p {s['min_p']:.4f}")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000, help="held-out sequences per mode")
    parser.add_argument("--train", action="store_true", help="also time a full training run per mode (long)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for mode in ("easy", "medium", "hard"):
        dataset = CodeBreakingDataset(mode, size=args.size, seed=2024)
        print(f"\n{mode}: {args.size} held-out sequences of 32 tokens (seed 2024)")
        if mode == "hard":
            reference = letter_frequency_logprobs(dataset.toks, letter_frequencies(load_corpus(split="train")))
            ref_name, limit = "letter-frequency baseline", None
        else:
            reference = bayes_logprobs(dataset.toks, dataset.words_freq)
            ref_name = "Bayes-optimal"
        ref_summary = summarize(correct_logprobs(reference, dataset.labels))
        limit = None if mode == "hard" else ref_summary["ce"]
        print(row(ref_name, ref_summary, limit))
        models = {"ours": None}
        if (ANCHORS / f"model_{mode}.pt").exists():
            models["original checkpoint"] = ANCHORS / f"model_{mode}.pt"
        for name, path in models.items():
            model = load_model(mode, device="cpu", path=path)
            s = summarize(correct_logprobs(model_logprobs(model, dataset.toks), dataset.labels))
            print(row(name, s, limit))
            if mode == "hard":
                print(f"  {'':<28} = {s['ce'] / ref_summary['ce']:.3f}x the baseline's CE")

    model = load_model("easy", device="cpu")
    toks = CodeBreakingDataset("easy", size=1000, seed=0).toks
    with torch.inference_mode():
        model.run_with_cache(toks)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            model.run_with_cache(toks)
            times.append(time.perf_counter() - start)
    print(f"\nrun_with_cache over 1000 x 32 tokens: {min(times) * 1000:.0f} ms (best of 5)")
    if args.train:
        for mode in ("easy", "medium", "hard"):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "utils.train", "--mode", mode, "--out", f"/tmp/bench_{mode}.pt",
                            "--no-card"], cwd=ROOT, check=True)
            print(f"full training run ({mode}): {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
