"""Quality and speed of the trained models: `python benchmarks/bench_models.py [--size N] [--train] [--card]`.

Prints, on the same held-out sequences (default 100,000 per mode, seed 2024): CE and p(correct) of our models, of
the Bayes-optimal limit (easy/medium) or the letter-frequency baseline (hard), and of the original module's
checkpoints where ../shared/anchors/ exists (benchmarks only: they are never part of the project). The headline
figure is each model's CE as a multiple of its limit, with its standard error from the per-sequence losses
(delta method), so that one estimate, with its sampling error, is quoted everywhere. Then the wall time of one
run_with_cache over 1000 x 32 tokens, and (with --train) of a full training run per mode on this CPU.
`--card` writes the headline ratios into data/model_card.json and re-renders data/MODEL_CARD.md (weights and
training records untouched).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.bayes import bayes_logprobs, letter_frequency_logprobs  # noqa: E402
from utils.data import CodeBreakingDataset, letter_frequencies, load_corpus  # noqa: E402
from utils.evaluate import correct_logprobs, model_logprobs, summarize  # noqa: E402
from utils.model import load_model  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors"  # beside the repository; --anchors names another place
CARD = ROOT / "data" / "model_card.json"
CHUNK = 10_000  # sequences per chunk: bounds memory for any --size


@dataclasses.dataclass(frozen=True)
class Ratio:
    """CE of a predictor as a multiple of a reference CE on the same sequences, with its standard error."""

    ratio: float
    se: float
    ce: float
    ce_se: float
    ref_ce: float
    sequences: int

    def text(self) -> str:
        return f"{self.ratio:.3f} ± {self.se:.3f}"


def ratio_with_error(loss: Float[Tensor, "batch"], ref_loss: Float[Tensor, "batch"]) -> Ratio:
    """mean(loss) / mean(ref_loss) over sequences, and its standard error by the delta method: the per-sequence
    residuals loss_i - ratio * ref_loss_i have mean 0, and SE = sd(residuals) / (sqrt(n) * mean(ref_loss))."""
    loss, ref_loss = loss.double(), ref_loss.double()
    n = len(loss)
    ratio = (loss.mean() / ref_loss.mean()).item()
    residual = loss - ratio * ref_loss
    se = (residual.std() / (math.sqrt(n) * ref_loss.mean())).item()
    return Ratio(ratio, se, loss.mean().item(), (loss.std() / math.sqrt(n)).item(), ref_loss.mean().item(), n)


def correct_in_chunks(mode: str, dataset: CodeBreakingDataset, models: dict, freqs: Tensor | None) -> dict[str, Tensor]:
    """log p(correct) [batch seq] of the reference and of every model, chunk by chunk (bounded memory)."""
    out: dict[str, list[Tensor]] = {"reference": [], **{name: [] for name in models}}
    for start in tqdm(range(0, len(dataset.toks), CHUNK), desc=mode, leave=False):
        toks, labels = dataset.toks[start : start + CHUNK], dataset.labels[start : start + CHUNK]
        ref = letter_frequency_logprobs(toks, freqs) if mode == "hard" else bayes_logprobs(toks, dataset.words_freq)
        out["reference"].append(correct_logprobs(ref, labels).float())
        for name, model in models.items():
            out[name].append(correct_logprobs(model_logprobs(model, toks), labels))
    return {k: torch.cat(v) for k, v in out.items()}


def row(name: str, s: dict, limit: Ratio | None) -> str:
    ratio = f"{limit.text():>15}x" if limit else " " * 16
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


def machine() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem_text = f", {mem:.0f} GiB memory"
    except (ValueError, OSError, AttributeError):
        mem_text = ""
    return (f"{cpu_name()}, {os.cpu_count()} cores{mem_text}, {torch.get_num_threads()} torch threads, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def write_card(headline: dict[str, Ratio], seed: int) -> None:
    """Record the headline ratio of each mode in data/model_card.json and re-render MODEL_CARD.md."""
    from utils.train import atomic_write_bytes, render_model_card

    card = json.loads(CARD.read_text())
    for mode, r in headline.items():
        card[mode]["headline"] = {
            "ratio_to_bayes": round(r.ratio, 4), "ratio_se": round(r.se, 4), "model_ce": round(r.ce, 5),
            "bayes_ce": round(r.ref_ce, 5), "sequences": r.sequences, "seed": seed,
            "command": "python benchmarks/bench_models.py --card",
        }
    atomic_write_bytes(CARD, (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(CARD.with_name("MODEL_CARD.md"), render_model_card(card).encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000, help="held-out sequences per mode")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--modes", nargs="+", default=["easy", "medium", "hard"])
    parser.add_argument("--train", action="store_true", help="also time a full training run per mode (long)")
    parser.add_argument("--card", action="store_true", help="write the headline ratios into the model card")
    parser.add_argument("--anchors", type=Path, default=ANCHORS, help="folder of the original checkpoints, if any")
    parser.add_argument("--render-card", action="store_true", help="only re-render MODEL_CARD.md from model_card.json")
    args = parser.parse_args()
    if args.render_card:
        from utils.train import atomic_write_bytes, render_model_card

        atomic_write_bytes(CARD.with_name("MODEL_CARD.md"), render_model_card(json.loads(CARD.read_text())).encode())
        return
    print(f"Machine: {machine()}")
    headline: dict[str, Ratio] = {}
    for mode in args.modes:
        dataset = CodeBreakingDataset(mode, size=args.size, seed=args.seed)
        print(f"\n{mode}: {args.size:,} held-out sequences of 32 tokens (seed {args.seed})")
        freqs = letter_frequencies(load_corpus(split="train")) if mode == "hard" else None
        models = {"ours": load_model(mode, device="cpu")}
        if (args.anchors / f"model_{mode}.pt").exists():
            models["original checkpoint"] = load_model(mode, device="cpu", path=args.anchors / f"model_{mode}.pt")
        correct = correct_in_chunks(mode, dataset, models, freqs)
        ref_loss = -correct["reference"].double().mean(1)  # per-sequence loss
        ref_name = "letter-frequency baseline" if mode == "hard" else "Bayes-optimal"
        print(row(ref_name, summarize(correct["reference"]), None))
        for name in models:
            r = ratio_with_error(-correct[name].double().mean(1), ref_loss)
            print(row(name, summarize(correct[name]), r) + f"  (CE ± {r.ce_se:.4f})")
            if name == "ours" and mode != "hard":
                headline[mode] = r
    for mode, r in headline.items():
        print(f"\nHEADLINE {mode}: CE {r.ce:.4f} = {r.text()} x Bayes-optimal {r.ref_ce:.4f} "
              f"({r.sequences:,} sequences, seed {args.seed}; ± one standard error)")
    if args.card and headline:
        write_card(headline, args.seed)
        print("wrote data/model_card.json and data/MODEL_CARD.md")

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
