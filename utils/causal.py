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

import contextlib
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
from .stats import Estimate, bootstrap, from_values, mean_se

SPACE = VOCAB_EASY.index(" ")
N_SLOTS = 4  # A, B, C (the three letters of a word) and the space after it
KV_HOOKS = ("blocks.1.attn.hook_k", "blocks.1.attn.hook_v")
Q_HOOK = "blocks.1.attn.hook_q"
L0_HOOK = "blocks.0.hook_attn_out"
ALL_HOOKS = (L0_HOOK, *KV_HOOKS, Q_HOOK)


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
    context_shifts: Int[Tensor, "batch"] | None = None,
) -> Int[Tensor, "batch seq"]:
    """Encoded source sequences: the fresh words everywhere, except kept_words at word position `word`; each word
    followed by a space, cropped to seq_len, encoded with the clean sequence's shift (the other words with
    `context_shifts` instead, when given: a source whose context carries no evidence for the true shift)."""
    words = fresh_words.clone()
    words[:, word] = kept_words
    letters = word_toks[words]  # [batch n_words 3]
    space = torch.full((*words.shape, 1), SPACE, dtype=letters.dtype, device=letters.device)
    plain = einops.rearrange(torch.cat([letters, space], -1), "b w c -> b (w c)")[:, :seq_len]
    encoded = rotate_tokens(plain, shifts)
    if context_shifts is None:
        return encoded
    in_word = (torch.arange(plain.shape[1], device=plain.device) // N_SLOTS) == word
    return torch.where(in_word, encoded, rotate_tokens(plain, context_shifts))


def slot_of_position(seq_len: int) -> Int[Tensor, "seq"]:
    """0, 1, 2, 3 (A, B, C, space) at each position."""
    return torch.arange(seq_len) % N_SLOTS


def layer1_kv(
    model: HookedTransformer, toks: Int[Tensor, "batch seq"]
) -> tuple[Float[Tensor, "batch seq head d_head"], Float[Tensor, "batch seq head d_head"]]:
    """Layer 1's keys and values (what blocks.1.attn.hook_k / hook_v hold), computed from the residual stream
    before layer 1 without running layer 1's attention: half the cost of a full run."""
    attn = model.blocks[1].attn
    with torch.inference_mode(), fast_forward(model):
        resid = model(toks.to(model.cfg.device), stop_at_layer=1)
        x = model.blocks[1].ln1(resid)
        k = einops.einsum(x, attn.W_K, "b s d, h d e -> b s h e") + attn.b_K
        v = einops.einsum(x, attn.W_V, "b s d, h d e -> b s h e") + attn.b_V
    return k, v


@contextlib.contextmanager
def fast_forward(model: HookedTransformer):
    """Run without per-head results (cfg.use_attn_result, which the course's models switch on for caches): the same
    logits up to float rounding, three times faster on a CPU. The setting is put back afterwards."""
    old = model.cfg.use_attn_result
    model.cfg.use_attn_result = False
    try:
        yield model
    finally:
        model.cfg.use_attn_result = old


@torch.inference_mode()
def layer_acts(model: HookedTransformer, toks: Int[Tensor, "batch seq"]) -> dict[str, Tensor]:
    """What the hooks ALL_HOOKS hold on `toks` (layer 0's attention output; layer 1's keys, values, queries),
    computed through layer 0 only."""
    with fast_forward(model):
        resid = model(toks, stop_at_layer=1)
    attn = model.blocks[1].attn
    x = model.blocks[1].ln1(resid)
    qkv = {h: einops.einsum(x, W, "b s d, h d e -> b s h e") + b for h, W, b in
           ((KV_HOOKS[0], attn.W_K, attn.b_K), (KV_HOOKS[1], attn.W_V, attn.b_V), (Q_HOOK, attn.W_Q, attn.b_Q))}
    return {L0_HOOK: resid - model.embed(toks) - model.pos_embed(toks), **qkv}


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


def loss_per_sequence(logits: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]) -> Float[Tensor, "batch seq"]:
    """Cross-entropy of the true shift at every sequence and position (the unit a bootstrap resamples is the row)."""
    return -eindex(logits.log_softmax(-1), labels, "batch seq [batch]")


Keep = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Scrub:
    """What a scrub resamples. kv (layer 1's keys and values), q (layer 1's queries) and l0 (layer 0's attention
    output) are each None (left clean) or four keep levels, one per slot (A, B, C, space): the activation at a slot-s
    position of word w comes from a source sequence that keeps the first keep[s] letters of word w, redraws every
    other word, and keeps the shift.

    leak_free: the source's other words are encoded with other shifts (word w with the true one), so that nothing
    but word w carries the shift. split: every slot draws its own source (its own context and its own redrawn word),
    so the slots of one word come from different words; without it, all slots with the same keep level share a
    source, and every source shares its context words with the other keep levels (paired)."""

    kv: Keep | None = None
    q: Keep | None = None
    l0: Keep | None = None
    leak_free: bool = False
    split: bool = False

    def __post_init__(self):
        groups = {name: getattr(self, name) for name in ("kv", "q", "l0")}
        if all(keep is None for keep in groups.values()):
            raise ValueError("A scrub resamples something: give kv=, q= or l0= as four keep levels (slots A, B, C, space).")
        for name, keep in groups.items():
            if keep is not None:
                object.__setattr__(self, name, check_keep(keep))

    @classmethod
    def of(cls, keep: "Scrub | Sequence[int]") -> "Scrub":
        """A Scrub as given, or four keep levels meaning a scrub of layer 1's keys and values."""
        return keep if isinstance(keep, Scrub) else cls(kv=check_keep(keep))

    def control(self) -> "Scrub":
        """The same scrub with every word redrawn (keep 0 in every slot): what the scrub is measured against."""
        zero = (0, 0, 0, 0)
        return dataclasses.replace(self, **{n: zero for n in ("kv", "q", "l0") if getattr(self, n) is not None})

    def patches(self) -> list[tuple[str, Keep]]:
        """(hook name, keep levels) for every resampled activation."""
        hooks = {"kv": KV_HOOKS, "q": (Q_HOOK,), "l0": (L0_HOOK,)}
        return [(h, getattr(self, n)) for n in ("l0", "kv", "q") if getattr(self, n) is not None for h in hooks[n]]

    def __str__(self) -> str:
        names = {"kv": "K/V", "q": "Q", "l0": "layer 0"}
        parts = [f"{names[n]} {''.join(map(str, getattr(self, n)))}" for n in ("kv", "q", "l0") if getattr(self, n)]
        return " + ".join(parts) + (", leak-free" if self.leak_free else "") + (", split slots" if self.split else "")


def check_keep(keep: Sequence[int]) -> Keep:
    """keep must give, for slots A, B, C and the space, how many letters (0-3) of the word each source keeps."""
    try:
        keep = tuple(int(k) for k in keep)
    except (TypeError, ValueError):
        raise ValueError(f"keep must be 4 integers from 0 to 3 (letters kept for slots A, B, C, space), got {keep!r}.") from None
    if len(keep) != N_SLOTS or not all(0 <= k <= 3 for k in keep):
        raise ValueError(f"keep must be 4 integers from 0 to 3 (letters kept for slots A, B, C, space), got {keep}.")
    return keep


class Scrubber:
    """Resample ablations (`Scrub`s) on one model and dataset, repeated over source seeds.

    For every seed, word position w and stream (one per slot for split scrubs), the sources share their context words
    and one uniform draw across keep levels, so the scrub and its control differ only in how much of word w they keep
    (paired), and a word redrawn with 2 letters kept is the same draw as with 1 where it can be (coupled). Losses are
    kept per sequence and position, so every figure gets a bootstrap error over sequences and a spread over seeds."""

    def __init__(self, model: HookedTransformer, dataset, seeds: Sequence[int] = range(5)):
        self.model, self.dataset, self.seeds = model, dataset, tuple(seeds)
        if len(self.seeds) < 2:
            raise ValueError("Give at least two source seeds: a spread over seeds needs two.")
        self.table = WordTable.of(dataset)
        self.words = word_indices(dataset.toks_raw, self.table)  # [batch n_words]
        self.toks, self.labels = dataset.toks.to(model.cfg.device), dataset.labels.to(model.cfg.device)
        self._loss: dict[tuple[Scrub, int], Tensor] = {}
        with torch.inference_mode():
            self.loss_clean_seq = loss_per_sequence(model(self.toks), self.labels).cpu()  # [batch seq]
        self.loss_clean = float(self.loss_clean_seq.mean())

    # sources ------------------------------------------------------------------------------------------------

    def _draws(self, seed: int, stream: int) -> tuple[Tensor, Tensor, Tensor]:
        """Context words [n_words batch n_words], uniforms [n_words batch] and other shifts [n_words batch]: shared by
        every keep level (and by the leak-free sources) of one seed and stream."""
        # far from the small seeds datasets use: a generator seeded like the dataset would redraw its very words
        g = torch.Generator().manual_seed(7919 * (seed + 1) + 104729 * stream)
        batch, n_words = self.words.shape
        fresh = torch.multinomial(self.table.probs.float(), n_words * batch * n_words, replacement=True, generator=g)
        u = torch.rand(n_words, batch, generator=g, dtype=torch.float64)
        other = (self.dataset.labels + torch.randint(1, 26, (n_words, batch), generator=g)) % 26
        return fresh.view(n_words, batch, n_words), u, other

    def kept_words(self, seed: int, n_keep: int, stream: int = 0) -> Int[Tensor, "n_words batch"]:
        """The word each source puts at word position w (one draw per sequence, by inverse CDF of the uniforms)."""
        _, u, _ = self._draws(seed, stream)
        cdf = prefix_match_weights(self.table.toks, self.table.probs, n_keep).cumsum(-1)  # [vocab vocab]
        cdf = cdf[self.words.T].contiguous()  # [n_words batch vocab]
        return torch.searchsorted(cdf, u.unsqueeze(-1)).squeeze(-1).clamp(max=len(self.table.probs) - 1)

    def sources(self, seed: int, n_keep: int, leak_free: bool = False, stream: int = 0) -> Int[Tensor, "n_words batch seq"]:
        fresh, _, other = self._draws(seed, stream)
        kept = self.kept_words(seed, n_keep, stream)
        shifts = self.dataset.labels
        seq = self.toks.shape[1]
        return torch.stack([source_tokens(fresh[w], kept[w], w, self.table.toks, shifts, seq,
                                          context_shifts=other[w] if leak_free else None) for w in range(len(fresh))])

    def activations(self, sources: Int[Tensor, "n_words batch seq"]) -> dict[str, Tensor]:
        """Layer 0's attention output and layer 1's keys, values and queries at every position, each position taken
        from the source of its word. Source w is run only up to the end of word w (a causal model's earlier
        positions do not depend on later ones), and only through layer 0."""
        n_words, _, seq = sources.shape
        out: dict[str, Tensor] = {}
        for w in range(n_words):
            start, end = N_SLOTS * w, seq if w == n_words - 1 else min(seq, N_SLOTS * (w + 1))
            for hook, x in layer_acts(self.model, sources[w, :, :end].to(self.model.cfg.device)).items():
                if hook not in out:
                    out[hook] = torch.zeros((sources.shape[1], seq, *x.shape[2:]), device=x.device)
                out[hook][:, start:end] = x[:, start:end]
        return out

    # running scrubs -----------------------------------------------------------------------------------------

    def run(self, scrubs: Sequence["Scrub | Sequence[int]"]) -> None:
        """Compute the per-sequence losses of every scrub on every seed (sources shared within a seed)."""
        scrubs = [Scrub.of(s) for s in scrubs]
        todo = [(s, seed) for seed in self.seeds for s in scrubs if (s, seed) not in self._loss]
        for seed in self.seeds:
            acts: dict[tuple, dict[str, Tensor]] = {}
            for scrub, _ in [(s, sd) for s, sd in todo if sd == seed]:
                new = {}
                for hook, keep in scrub.patches():
                    slot_acts = []
                    for s, n_keep in enumerate(keep):
                        key = (n_keep, scrub.leak_free, s if scrub.split else 0)
                        if key not in acts:
                            src = self.sources(seed, n_keep, scrub.leak_free, key[2])
                            acts[key] = self.activations(src)
                        slot_acts.append(acts[key][hook])
                    slot = slot_of_position(self.toks.shape[1]).to(slot_acts[0].device)
                    new[hook] = torch.stack(slot_acts)[slot, :, torch.arange(len(slot))].transpose(0, 1)
                with torch.inference_mode(), fast_forward(self.model):
                    logits = self.model.run_with_hooks(
                        self.toks, fwd_hooks=[(h, lambda act, hook, x=x: x) for h, x in new.items()])
                self._loss[(scrub, seed)] = loss_per_sequence(logits, self.labels).cpu()

    def losses(self, scrub: "Scrub | Sequence[int]") -> Float[Tensor, "seeds batch seq"]:
        scrub = Scrub.of(scrub)
        self.run([scrub])
        return torch.stack([self._loss[(scrub, seed)] for seed in self.seeds])

    def loss_by_position(self, scrub: "Scrub | Sequence[int]") -> Float[Tensor, "seq"]:
        """Mean loss at each position, over sequences and seeds."""
        return self.losses(scrub).mean((0, 1))

    # estimates ----------------------------------------------------------------------------------------------

    def recovered(
        self, scrub: "Scrub | Sequence[int]", control: "Scrub | Sequence[int] | None" = None, positions=slice(None)
    ) -> Estimate:
        """Loss recovered, (L_control - L_scrub) / (L_control - L_clean), over `positions`: the mean over seeds, with
        the spread over seeds and the bootstrap error over sequences in quadrature."""
        scrub = Scrub.of(scrub)
        control = scrub.control() if control is None else Scrub.of(control)
        self.run([scrub, control])
        clean = self.loss_clean_seq[:, positions].mean(-1).double()
        s, c = (self.losses(x)[:, :, positions].mean(-1).double() for x in (scrub, control))
        ratio = lambda k, a, b: (b.mean() - a.mean()) / (b.mean() - k.mean())  # noqa: E731
        seeds = from_values([ratio(clean, s[i], c[i]) for i in range(len(self.seeds))])
        return Estimate.of_seeds_and_sequences(seeds, bootstrap(ratio, clean, s.mean(0), c.mean(0), n_boot=N_BOOT))

    def recovered_difference(self, a: "Scrub | Sequence[int]", b: "Scrub | Sequence[int]") -> Estimate:
        """recovered(a) - recovered(b), each against its own control, paired over seeds and sequences."""
        a, b = Scrub.of(a), Scrub.of(b)
        self.run([a, a.control(), b, b.control()])
        clean = self.loss_clean_seq.mean(-1).double()
        la, ca, lb, cb = (self.losses(x).mean(-1).double() for x in (a, a.control(), b, b.control()))
        diff = lambda k, s, c, t, d: (c.mean() - s.mean()) / (c.mean() - k.mean()) - (d.mean() - t.mean()) / (d.mean() - k.mean())  # noqa: E731
        seeds = from_values([diff(clean, la[i], ca[i], lb[i], cb[i]) for i in range(len(self.seeds))])
        seqs = bootstrap(diff, clean, la.mean(0), ca.mean(0), lb.mean(0), cb.mean(0), n_boot=N_BOOT)
        return Estimate.of_seeds_and_sequences(seeds, seqs)

    def recovered_by_seed(self, scrub: "Scrub | Sequence[int]", control=None) -> list[float]:
        scrub = Scrub.of(scrub)
        control = scrub.control() if control is None else Scrub.of(control)
        clean = self.loss_clean_seq.mean()
        return [float((c.mean() - s.mean()) / (c.mean() - clean))
                for s, c in zip(self.losses(scrub), self.losses(control))]

    def cost(self, scrub: "Scrub | Sequence[int]", baseline: "Scrub | Sequence[int] | None" = None,
             positions=slice(None)) -> Estimate:
        """Mean loss of `scrub` minus that of `baseline` (the clean run when None), in nats: over seeds and
        sequences as in `recovered`."""
        s = self.losses(scrub)[:, :, positions].mean(-1).double()
        b = (self.loss_clean_seq[:, positions].mean(-1).double().expand_as(s) if baseline is None
             else self.losses(baseline)[:, :, positions].mean(-1).double())
        seeds = from_values([float(s[i].mean() - b[i].mean()) for i in range(len(self.seeds))])
        return Estimate.of_seeds_and_sequences(seeds, mean_se(s.mean(0) - b.mean(0)))

    def denominator_by_position(self, control: "Scrub | Sequence[int]" = (0, 0, 0, 0)) -> list[Estimate]:
        """L_control - L_clean at each position (the denominator of loss recovered, position by position)."""
        gap = self.losses(control).mean(0) - self.loss_clean_seq  # [batch seq]
        return [mean_se(gap[:, p]) for p in range(gap.shape[1])]

    def changed_share(self, n_keep: int) -> Estimate:
        """Power of a keep level: the share of (sequence, word) whose source holds another word than the clean one."""
        return from_values([float((self.kept_words(seed, n_keep) != self.words.T).double().mean()) for seed in self.seeds])

    def loss_random(self) -> Estimate:
        """Mean loss when layer 1's keys and values come from unrelated sequences under other shifts."""
        g = torch.Generator().manual_seed(1000 + self.seeds[0])
        other = self.toks[torch.randperm(len(self.toks), generator=g)]
        other = rotate_tokens(other, torch.randint(0, 26, (len(other),), generator=g).to(other.device))
        return mean_se(loss_per_sequence(run_with_patched_kv(self.model, self.toks, *layer1_kv(self.model, other)),
                                         self.labels).cpu())


def check_scrub_claim(scrubber: Scrubber, keep: "Scrub | Sequence[int]", low: float, high: float,
                      size: int = 500) -> bool:
    """Test a learner's claim "the scrub `keep` recovers between low and high of the loss" on a FRESH dataset (not
    the one the claim was read from) over five source seeds, with its error. A claim too vague to be wrong (a half
    width above half the claimed midpoint, plus 0.1: the rule of `utils.claims`) is refused before anything runs.
    Returns True when the measured value lies in the range; a refuted claim is a result, so it never raises for one."""
    scrub = Scrub.of(keep)
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high):
        raise ValueError(f"Claim a range with two numbers, low <= high, got low={low!r}, high={high!r}.")
    middle, half = (low + high) / 2, (high - low) / 2
    if half > 0.5 * abs(middle) + 0.1:
        raise ValueError(
            f"[{low}, {high}] is too wide for a value near {middle:.2f}: a claim that almost any measurement satisfies "
            f"tests nothing. Commit to a range at most {2 * (0.5 * abs(middle) + 0.1):.2f} wide around your value.")
    data = scrubber.dataset
    fresh = type(data)(data.mode, size=size, seed=data.seed + FRESH_SEED_OFFSET, seq_len=data.seq_len)
    est = Scrubber(scrubber.model, fresh, seeds=range(5)).recovered(scrub)
    holds = low <= est.value <= high
    verdict = ("holds" if est.low >= low and est.high <= high else "holds, within its error") if holds else (
        "is refuted" if est.high < low or est.low > high else "is refuted, though the range is within 2 SE")
    print(f"Scrub {scrub} on {size} fresh sequences (dataset seed {fresh.seed}), 5 source seeds: loss recovered "
          f"{est} (SE over seeds and sequences). Your claim [{low}, {high}] {verdict}.")
    return holds


FRESH_SEED_OFFSET = 1000  # a claim read from dataset seed s is tested on seed s + 1000
N_BOOT = 300  # bootstrap resamples per loss-recovered figure: enough for a standard error to about 5%


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


# ---------------------------------------------------------------------------------------------------------
# Rotation symmetry without the ceiling: nulls for the spread-vs-frequency link
# ---------------------------------------------------------------------------------------------------------


def _ranks(x: Tensor) -> Tensor:
    return x.argsort().argsort().double()


def partial_rank_correlation(a: Float[Tensor, "n"], b: Float[Tensor, "n"], given: Float[Tensor, "n"]) -> float:
    """Spearman correlation of a and b after removing from each (by least squares on ranks) what `given` explains:
    whether a and b are linked beyond what they both owe to `given`."""
    ra, rb, rg = _ranks(a), _ranks(b), _ranks(given)
    design = torch.stack([torch.ones_like(rg), rg], -1)
    resid = [r - design @ torch.linalg.lstsq(design, r.unsqueeze(-1)).solution.squeeze(-1) for r in (ra, rb)]
    return float(torch.corrcoef(torch.stack(resid))[0, 1])


def logit_spread(probs: Float[Tensor, "n_words 26"], eps: float = 1e-4) -> Float[Tensor, "n_words"]:
    """Max minus min over a word's 26 encodings of logit p(correct): a spread that does not shrink near p = 1."""
    p = probs.double().clamp(eps, 1 - eps)
    logit = (p / (1 - p)).log()
    return logit.max(-1).values - logit.min(-1).values


def variance_shares(probs: Float[Tensor, "n_words 26"], eps: float = 1e-4) -> Float[Tensor, "2"]:
    """How the variance of logit p(correct) over (word, encoding) splits: [between words (the word is read as well,
    or as badly, under every shift), within a word across its encodings (which ciphertext letters it became)]."""
    p = probs.double().clamp(eps, 1 - eps)
    logit = (p / (1 - p)).log()
    total = ((logit - logit.mean()) ** 2).mean()
    between = ((logit.mean(-1) - logit.mean()) ** 2).mean()
    return torch.stack([between / total, 1 - between / total])
