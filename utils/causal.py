"""Causal tests of the account (lesson 07): resample ablation of layer-1 keys / values and queries, and rotations.

The account of lessons 03-05 says: layer 1 reads each word from that word's own positions (slot A = 1st letter,
B = 2nd, C = 3rd, then the space), and from nothing else. Resample ablation tests that. For each word w we build
*source* sequences with the same shift that keep word w (or only its first letters) and redraw every other word
from the word distribution; layer 1's keys and values at word w's positions are taken from the source run. If the
hypothesis holds, the loss barely moves. The control redraws word w too. Every source is a real sequence of the
task, so every patched activation stays in distribution.

    loss recovered = (L_control - L_scrub) / (L_control - L_clean)

is 1 when the scrub costs nothing, 0 when it costs as much as destroying the word.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import einops
import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from .data import VOCAB_EASY, rotate_tokens, word_tokens

SPACE = VOCAB_EASY.index(" ")
N_SLOTS = 4  # A, B, C (the three letters of a word) and the space after it
KV_HOOKS = ("blocks.1.attn.hook_k", "blocks.1.attn.hook_v")
Q_HOOK = "blocks.1.attn.hook_q"


# ---------------------------------------------------------------------------------------------------------
# Word tables and source sequences
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WordTable:
    """The words of a dataset as tokens, and the probability with which the dataset draws each."""

    toks: Int[Tensor, "vocab_words 3"]
    probs: Float[Tensor, "vocab_words"]

    @classmethod
    def of(cls, dataset) -> "WordTable":
        words = [w for w, _ in dataset.words_freq]
        probs = torch.tensor([p for _, p in dataset.words_freq], dtype=torch.float64)
        return cls(word_tokens(words), probs / probs.sum())


def word_indices(plain_toks: Int[Tensor, "batch seq"], table: WordTable) -> Int[Tensor, "batch n_words"]:
    """The table index of every whole word of plaintext sequences (words start at 0, 4, 8, ...)."""
    n_words = plain_toks.shape[1] // N_SLOTS
    letters = einops.rearrange(plain_toks[:, : n_words * N_SLOTS], "b (w c) -> b w c", c=N_SLOTS)[..., :3]
    match = (letters.unsqueeze(2) == table.toks.view(1, 1, -1, 3)).all(-1)  # [b w vocab_words]
    if not match.any(-1).all():
        raise ValueError("Some words of these sequences are not in the word table: pass the dataset's own table.")
    return match.float().argmax(-1)


def prefix_match_weights(
    word_toks: Int[Tensor, "vocab_words 3"], word_probs: Float[Tensor, "vocab_words"], n_keep: int
) -> Float[Tensor, "vocab_words vocab_words"]:
    """Row i: the distribution of a word redrawn from word_probs given that it shares its first n_keep letters
    with word i (n_keep = 0: the unconditional distribution; 3: word i itself)."""
    same = (word_toks[:, None, :n_keep] == word_toks[None, :, :n_keep]).all(-1)  # [i j]
    weights = same.to(word_probs.dtype) * word_probs[None, :]
    return weights / weights.sum(-1, keepdim=True)


def source_tokens(
    fresh_words: Int[Tensor, "batch n_words"],
    kept_words: Int[Tensor, "batch"],
    word: int,
    word_toks: Int[Tensor, "vocab_words 3"],
    shifts: Int[Tensor, "batch"],
    seq_len: int = 32,
) -> Int[Tensor, "batch seq"]:
    """Encoded source sequences: the fresh words everywhere, except kept_words at word position `word`; each word
    followed by a space, cropped to seq_len, encoded with the clean sequence's shift."""
    words = fresh_words.clone()
    words[:, word] = kept_words
    letters = word_toks[words]  # [batch n_words 3]
    space = torch.full((*words.shape, 1), SPACE, dtype=letters.dtype, device=letters.device)
    plain = einops.rearrange(torch.cat([letters, space], -1), "b w c -> b (w c)")[:, :seq_len]
    return rotate_tokens(plain, shifts)


def sample_sources(
    words: Int[Tensor, "batch n_words"],
    shifts: Int[Tensor, "batch"],
    table: WordTable,
    n_keep: int,
    generator: torch.Generator,
    seq_len: int = 32,
) -> Int[Tensor, "n_words batch seq"]:
    """For each word position w, source sequences that keep the first n_keep letters of word w (redrawing the
    rest of it from the word distribution given those letters), redraw every other word, keep the shift."""
    cond = prefix_match_weights(table.toks, table.probs, n_keep)
    sources = []
    for w in range(words.shape[1]):
        fresh = torch.multinomial(table.probs.float(), words.numel(), replacement=True, generator=generator)
        kept = torch.multinomial(cond[words[:, w]].float(), 1, generator=generator)[:, 0]
        sources.append(source_tokens(fresh.view_as(words), kept, w, table.toks, shifts, seq_len))
    return torch.stack(sources)


# ---------------------------------------------------------------------------------------------------------
# Patching
# ---------------------------------------------------------------------------------------------------------


def slot_of_position(seq_len: int) -> Int[Tensor, "seq"]:
    """0, 1, 2, 3 (A, B, C, space) at each position."""
    return torch.arange(seq_len) % N_SLOTS


def layer1_kv(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"]
) -> tuple[Float[Tensor, "batch seq head d_head"], Float[Tensor, "batch seq head d_head"]]:
    """Layer 1's keys and values (what blocks.1.attn.hook_k / hook_v hold), computed from the residual stream
    before layer 1 without running layer 1's attention: half the cost of a full run."""
    attn = model.blocks[1].attn
    with torch.inference_mode():
        resid = model(toks.to(model.cfg.device), stop_at_layer=1)
        x = model.blocks[1].ln1(resid)
        k = einops.einsum(x, attn.W_K, "b s d, h d e -> b s h e") + attn.b_K
        v = einops.einsum(x, attn.W_V, "b s d, h d e -> b s h e") + attn.b_V
    return k, v


def source_kv(
    model: HookedTransformer, sources: Int[Tensor, "n_words batch seq"]
) -> tuple[Float[Tensor, "n_words batch seq head d_head"], Float[Tensor, "n_words batch seq head d_head"]]:
    """Layer 1's keys and values on every source batch. Source w is read only up to the end of word w: the
    positions after it are never used, and a causal model's earlier positions do not depend on them."""
    n_words, batch, seq = sources.shape
    shape = (n_words, batch, seq, model.cfg.n_heads, model.cfg.d_head)
    k, v = (torch.zeros(shape, device=model.cfg.device) for _ in range(2))
    for w in range(n_words):
        end = seq if w == n_words - 1 else min(seq, N_SLOTS * (w + 1))
        k[w, :, :end], v[w, :, :end] = layer1_kv(model, sources[w, :, :end])
    return k, v


def assemble_by_word(
    per_word: Float[Tensor, "n_words batch seq head d_head"],
) -> Float[Tensor, "batch seq head d_head"]:
    """Position p takes its activation from the source batch of the word it belongs to (p // 4)."""
    seq = per_word.shape[2]
    word_of = (torch.arange(seq, device=per_word.device) // N_SLOTS).clamp(max=per_word.shape[0] - 1)
    return per_word[word_of, :, torch.arange(seq, device=per_word.device)].transpose(0, 1)


def run_with_patched_kv(
    model: HookedTransformer,
    toks: Int[Tensor, "batch seq"],
    new_k: Float[Tensor, "batch seq head d_head"],
    new_v: Float[Tensor, "batch seq head d_head"],
    mask: Float[Tensor, "seq"] | None = None,
) -> Float[Tensor, "batch seq 26"]:
    """Logits with layer 1's keys and values replaced by new_k / new_v at the positions where mask is True
    (every position when mask is None). Queries stay clean."""
    keep = torch.ones(toks.shape[1], dtype=torch.bool) if mask is None else mask.bool()
    keep = keep.to(new_k.device).view(1, -1, 1, 1)

    def patch(new):
        return lambda act, hook: torch.where(keep, new, act)

    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(KV_HOOKS[0], patch(new_k)), (KV_HOOKS[1], patch(new_v))])


def mean_loss(logits: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]) -> float:
    """Mean cross-entropy of the true shift over every position."""
    return float(-eindex(logits.log_softmax(-1), labels, "batch seq [batch]").mean())


def loss_recovered(loss_clean: float, loss_scrub: float, loss_control: float) -> float:
    """(L_control - L_scrub) / (L_control - L_clean): 1 = the scrub costs nothing, 0 = as bad as the control."""
    return (loss_control - loss_scrub) / (loss_control - loss_clean)


# ---------------------------------------------------------------------------------------------------------
# The scrubs
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ScrubResult:
    """Losses of one scrub: keep[slot] = how many letters of its word each slot's source keeps (A, B, C, space).

    control: the same scrub with keep 0 everywhere (every word redrawn, the shift kept); random: keys and values
    of unrelated sequences (words and shift redrawn)."""

    keep: tuple[int, int, int, int]
    loss_clean: float
    loss_scrub: float
    loss_control: float
    loss_random: float

    @property
    def recovered(self) -> float:
        """Loss recovered against the control that redraws the word but keeps the shift."""
        return loss_recovered(self.loss_clean, self.loss_scrub, self.loss_control)

    @property
    def recovered_vs_random(self) -> float:
        """Loss recovered against keys and values of unrelated sequences."""
        return loss_recovered(self.loss_clean, self.loss_scrub, self.loss_random)


class Scrubber:
    """Resample ablation of layer 1's keys and values on one model and dataset; source activations are sampled
    once per keep level (seeded) and reused by every scrub."""

    def __init__(self, model: HookedTransformer, dataset, seed: int = 0):
        self.model, self.dataset, self.seed = model, dataset, seed
        self.table = WordTable.of(dataset)
        self.words = word_indices(dataset.toks_raw, self.table)
        self.toks, self.labels = dataset.toks.to(model.cfg.device), dataset.labels.to(model.cfg.device)
        self._kv: dict[int, tuple[Tensor, Tensor]] = {}
        self._loss: dict[tuple[int, ...], Tensor] = {}
        with torch.inference_mode():
            self.loss_clean = mean_loss(model(self.toks), self.labels)
        g = torch.Generator().manual_seed(seed + 1000)
        other = self.toks[torch.randperm(len(self.toks), generator=g)]
        other = rotate_tokens(other, torch.randint(0, 26, (len(other),), generator=g).to(other.device))
        self.loss_random = mean_loss(run_with_patched_kv(model, self.toks, *layer1_kv(model, other)), self.labels)

    def kv(self, n_keep: int) -> tuple[Tensor, Tensor]:
        """Keys and values where every word's positions come from a source keeping its first n_keep letters."""
        if n_keep not in self._kv:
            # far from the small seeds datasets use: a generator seeded like the dataset would redraw the same words
            g = torch.Generator().manual_seed(7919 * (self.seed + 1) + n_keep)
            sources = sample_sources(self.words, self.dataset.labels, self.table, n_keep, g, self.toks.shape[1])
            self._kv[n_keep] = tuple(assemble_by_word(x) for x in source_kv(self.model, sources))
        return self._kv[n_keep]

    def patched_kv(self, keep: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Keys and values whose slot-s positions come from sources keeping keep[s] letters of their word."""
        slot = slot_of_position(self.toks.shape[1]).to(self.toks.device).view(1, -1, 1, 1)
        k, v = (torch.zeros_like(x) for x in self.kv(keep[0]))
        for s, n_keep in enumerate(keep):
            k_n, v_n = self.kv(n_keep)
            k, v = torch.where(slot == s, k_n, k), torch.where(slot == s, v_n, v)
        return k, v

    def loss_by_position(self, keep: Sequence[int]) -> Float[Tensor, "seq"]:
        """Mean loss at each position under the scrub `keep` (computed once per keep)."""
        keep = check_keep(keep)
        if keep not in self._loss:
            logits = run_with_patched_kv(self.model, self.toks, *self.patched_kv(keep))
            self._loss[keep] = -eindex(logits.log_softmax(-1), self.labels, "batch seq [batch]").mean(0).cpu()
        return self._loss[keep]

    def loss(self, keep: Sequence[int]) -> float:
        return float(self.loss_by_position(keep).mean())

    def __call__(self, keep: Sequence[int]) -> ScrubResult:
        keep = check_keep(keep)
        return ScrubResult(keep, self.loss_clean, self.loss(keep), self.loss((0, 0, 0, 0)), self.loss_random)


def check_keep(keep: Sequence[int]) -> tuple[int, int, int, int]:
    """keep must give, for slots A, B, C and the space, how many letters (0-3) of the word each source keeps."""
    keep = tuple(int(k) for k in keep)
    if len(keep) != N_SLOTS or not all(0 <= k <= 3 for k in keep):
        raise ValueError(f"keep must be 4 numbers from 0 to 3 (letters kept for slots A, B, C, space), got {keep}.")
    return keep


def check_scrub_claim(scrubber: Scrubber, keep: Sequence[int], low: float, high: float) -> bool:
    """Run the scrub `keep` and say whether its loss recovered lies in [low, high], as claimed. Never raises for a
    claim that fails: a refuted claim is a result."""
    keep = check_keep(keep)
    if not low <= high:
        raise ValueError(f"Claim a range with low <= high, got low={low}, high={high}.")
    result = scrubber(keep)
    holds = low <= result.recovered <= high
    verdict = "holds" if holds else "is refuted"
    print(f"Scrub keep={keep}: loss {result.loss_clean:.4f} clean, {result.loss_scrub:.4f} scrubbed, "
          f"{result.loss_control:.4f} control; loss recovered {result.recovered:.3f}. "
          f"Your claim [{low}, {high}] {verdict}.")
    return holds


# ---------------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------------


def ablated_query_logits(
    model: HookedTransformer,
    toks: Int[Tensor, "batch seq"],
    method: Literal["mean", "resample"],
    perm: Int[Tensor, "batch"] | None = None,
) -> Float[Tensor, "batch seq 26"]:
    """Logits with layer 1's queries replaced: by their mean over the batch at each position and head ("mean"),
    or by those of sequence perm[b] at the same position ("resample")."""

    def hook(q: Float[Tensor, "batch seq head d_head"], hook) -> Float[Tensor, "batch seq head d_head"]:
        if method == "mean":
            return q.mean(0, keepdim=True).expand_as(q).clone()
        if method == "resample":
            return q[perm.to(q.device)]
        raise ValueError(f"method must be 'mean' or 'resample', got {method!r}.")

    with torch.inference_mode():
        return model.run_with_hooks(toks, fwd_hooks=[(Q_HOOK, hook)])


# ---------------------------------------------------------------------------------------------------------
# Rotation symmetry
# ---------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def word_rotation_probs(model: HookedTransformer, word_toks: Int[Tensor, "n_words 3"]) -> Float[Tensor, "n_words 26"]:
    """The model's p(correct shift) after reading each word (its 3rd letter, opening a sequence), encoded with each
    of the 26 shifts."""
    shifts = torch.arange(26, device=word_toks.device)
    rotated = (word_toks[:, None, :] + shifts[None, :, None]) % 26  # [word shift letter]
    logits = model(einops.rearrange(rotated, "w s c -> (w s) c").to(model.cfg.device))[:, 2]
    probs = einops.rearrange(logits.softmax(-1).cpu(), "(w s) shift -> w s shift", s=26)
    return eindex(probs, shifts.cpu(), "w s [s]")


def bayes_word_posterior(word_toks: Int[Tensor, "n_words 3"], table: WordTable) -> Float[Tensor, "n_words"]:
    """The ideal reader's p(correct shift) after a whole word opening a sequence: p(word) / sum over shifts s of
    p(word rotated by s). The same for all 26 encodings of a word, which is why it has no shift axis."""
    rotated = (word_toks[:, None, :] + torch.arange(26)[None, :, None]) % 26  # [word s letter]
    match = (rotated.unsqueeze(2) == table.toks.view(1, 1, -1, 3)).all(-1)  # [word s vocab]
    p = einops.einsum(match.to(table.probs.dtype), table.probs, "w s v, v -> w s")
    return p[:, 0] / p.sum(-1)


def rank_correlation(a: Float[Tensor, "n"], b: Float[Tensor, "n"]) -> float:
    """Spearman's rank correlation (ties broken by order)."""
    ranks = torch.stack([x.argsort().argsort().double() for x in (a, b)])
    return float(torch.corrcoef(ranks)[0, 1])


def rotation_spread(probs: Float[Tensor, "n_words 26"]) -> Float[Tensor, "n_words"]:
    """How much p(correct) varies over a word's 26 encodings: max minus min."""
    return probs.max(-1).values - probs.min(-1).values


# ---------------------------------------------------------------------------------------------------------
# Starter code for the open problem: train a variant, then measure its rotation spread
# ---------------------------------------------------------------------------------------------------------


def train_variant(
    mode: str = "medium", steps: int = 3000, weight_decay: float = 1e-3, word_list_size: int = 100, seed: int = 0
) -> HookedTransformer:
    """A model trained like utils.train's (AdamW, warm-up then linear decay, loss at every position) but with
    another weight decay or a shorter word list (the shipped table holds 100 words). Minutes on a CPU."""
    from .data import load_word_table, sample_word_batch
    from .model import create_model
    from .train import TrainConfig, lr_at

    cfg = TrainConfig(mode=mode, steps=steps, weight_decay=weight_decay, seed=seed, warmup_steps=min(300, steps // 10))
    table = load_word_table(size=word_list_size)
    generator = torch.Generator().manual_seed(seed)
    model = create_model(mode, device="cpu", seed=seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=weight_decay)
    for step in tqdm(range(steps), desc=f"train {mode}, wd {weight_decay}, {word_list_size} words", mininterval=1.0):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        _, toks, labels = sample_word_batch(table, mode, cfg.batch_size, cfg.seq_len, generator)
        loss = torch.nn.functional.cross_entropy(model(toks).flatten(0, 1), labels.repeat_interleave(cfg.seq_len))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()
