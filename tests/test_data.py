"""Dataset invariants and error messages."""

import pytest
import torch

from utils.data import (
    VOCAB_EASY,
    VOCAB_HARD,
    VOCAB_OUT,
    CodeBreakingDataset,
    clean_text,
    decode,
    encode,
    load_corpus,
    load_word_table,
    rotate,
    strip_markdown,
    vocab,
)


def test_vocabularies_match_the_original_token_order():
    assert len(VOCAB_EASY) == 27 and VOCAB_EASY[:26] == list("abcdefghijklmnopqrstuvwxyz") and VOCAB_EASY[26] == " "
    assert len(VOCAB_HARD) == 36 and VOCAB_HARD[26:] == ["\n", " ", ".", ",", ":", ";", "?", "!", "'", '"']
    assert VOCAB_OUT == [str(i) for i in range(26)]
    assert vocab("medium") == VOCAB_EASY


@pytest.mark.parametrize("shift", [0, 1, 13, 25])
def test_rotation_round_trip(shift):
    text = "the quick brown fox, jumps: over the lazy dog!"
    assert rotate(rotate(text, shift), 26 - shift) == text
    assert rotate("abz", 1) == "bca" and rotate("a b.", 3) == "d e."


def test_encode_decode_round_trip():
    text = "to be, or not to be:\nthat is the question?"
    assert decode(encode(text, "hard"), "hard") == text
    assert encode("the", "easy").dtype == torch.int64


@pytest.mark.parametrize("mode", ["easy", "medium", "hard"])
def test_label_is_the_shift_at_every_position(mode):
    d = CodeBreakingDataset(mode, size=200, seed=3)
    assert d.toks.shape == (200, 32) and d.toks.dtype == torch.int64 and d.labels.shape == (200,)
    letters = d.toks_raw < 26
    assert torch.equal(d.toks >= 26, ~letters)  # non-letters are never rotated
    diff = (d.toks - d.toks_raw) % 26
    assert torch.equal(torch.where(letters, diff, d.labels[:, None].expand_as(diff)), d.labels[:, None].expand_as(diff))
    for i in range(5):
        assert "".join(d.str_toks[i]) == rotate("".join(d.str_toks_raw[i]), int(d.labels[i]))
        assert d.str_labels[i] == str(int(d.labels[i]))


def test_easy_layout_is_three_letters_then_a_space():
    d = CodeBreakingDataset("easy", size=100, seed=0)
    assert (d.toks[:, 3::4] == 26).all() and (d.toks[:, [0, 1, 2, 4, 5, 6]] < 26).all()
    words = "".join(d.str_toks_raw[0]).split()
    assert all(w in d.word_list for w in words)


def test_seed_determinism_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b = CodeBreakingDataset("easy", size=50, seed=7), CodeBreakingDataset("easy", size=50, seed=7)
    c = CodeBreakingDataset("easy", size=50, seed=8)
    assert torch.equal(a.toks, b.toks) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.toks, c.toks)
    assert torch.equal(state, torch.get_rng_state())


def test_easy_draws_by_count_medium_uniformly():
    table = dict(load_word_table())
    share_the = table["the"] / sum(table.values())
    for mode, expected in [("easy", share_the), ("medium", 0.01)]:
        d = CodeBreakingDataset(mode, size=4000, seed=1)
        words = [w for row in d.str_toks_raw for w in "".join(row).split()[:8]]
        observed = words.count("the") / len(words)
        assert abs(observed - expected) < 0.01, (mode, observed, expected)
    labels = CodeBreakingDataset("medium", size=26000, seed=2).labels
    counts = torch.bincount(labels, minlength=26).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.1


def test_words_freq_and_word_list():
    easy, medium = CodeBreakingDataset("easy", size=1), CodeBreakingDataset("medium", size=1)
    assert easy.word_list[:4] == ["the", "and", "was", "you"] and len(easy.word_list) == 100
    assert abs(sum(f for _, f in easy.words_freq) - 1) < 1e-9 and abs(easy.words_freq[0][1] - 1985 / 7084) < 1e-9
    assert all(abs(f - 0.01) < 1e-12 for _, f in medium.words_freq)


def test_hard_text_sources(tmp_path):
    d = CodeBreakingDataset("hard", size=100, seed=0)
    assert d.toks.max() < 36 and d.word_list is None
    path = tmp_path / "t.txt"
    path.write_text("Hello, World! THE END; " * 10)
    from_path = CodeBreakingDataset("hard", size=5, path=path)
    from_text = CodeBreakingDataset("hard", size=5, text="Hello, World! THE END; " * 10)
    assert torch.equal(from_path.toks, from_text.toks)
    assert set("".join(from_text.str_toks_raw[0])) <= set("helo, wrd!thn;")
    assert load_corpus(split="train") != load_corpus(split="test")


def test_clean_text_and_strip_markdown():
    assert clean_text("Tab\tHere: 42 Ünïcode!") == "tabhere:  ncode!"
    md = "# Play\n## ACT I\n_Enter HAMLET_\n\n**HAMLET**  \nTo be, or not _Aside_ to be.  \n"
    assert strip_markdown(md) == "To be, or not  to be."


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="expert"), "choose one of 'easy', 'medium', 'hard'"),
        (dict(mode="easy", seq_len=33), "n_ctx"),
        (dict(mode="easy", seq_len=0), "seq_len"),
        (dict(mode="easy", size=0), "size"),
        (dict(mode="hard", text=""), "empty"),
        (dict(mode="hard", text="abc"), "fewer than seq_len"),
        (dict(mode="hard", path="/no/such/file.txt"), "No text file"),
        (dict(mode="easy", text="abc"), "hard mode"),
    ],
)
def test_clear_errors(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        CodeBreakingDataset(**kwargs)


def test_character_outside_vocabulary():
    with pytest.raises(ValueError, match="not in the easy vocabulary"):
        encode("Hello", "easy")
    with pytest.raises(ValueError, match="clean_text"):
        encode("tab\there", "hard")
