"""The architecture, loading the shipped weights, weight processing, and loading errors."""

import pickle

import pytest
import torch

from utils.data import CodeBreakingDataset
from utils.model import create_model, load_model, load_state_dict, weights_path


@pytest.mark.parametrize("mode, d_vocab", [("easy", 27), ("medium", 27), ("hard", 36)])
def test_architecture(mode, d_vocab):
    model = create_model(mode, device="cpu")
    cfg = model.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.n_ctx) == (2, 2, 48, 24, 32)
    # TransformerLens fills in d_mlp = 4 * d_model even for attention-only models: check that no MLP exists
    assert cfg.attn_only and cfg.normalization_type == "LN"
    assert not any("mlp" in name for name, _ in model.named_parameters())
    assert cfg.positional_embedding_type == "standard" and cfg.attention_dir == "causal"
    assert (cfg.d_vocab, cfg.d_vocab_out) == (d_vocab, 26)


@pytest.mark.parametrize("mode", ["easy", "medium", "hard"])
def test_processed_model_gives_the_same_logprobs(mode):
    toks = CodeBreakingDataset(mode, size=64, seed=0).toks
    processed, raw = load_model(mode, device="cpu"), load_model(mode, device="cpu", process=False)
    assert processed.cfg.normalization_type == "LNPre"
    with torch.inference_mode():
        lp, lp_raw = processed(toks).log_softmax(-1), raw(toks).log_softmax(-1)
    assert torch.allclose(lp, lp_raw, atol=1e-4)
    assert processed.W_U.mean(-1).abs().max() < 1e-5  # unembed centred
    assert processed.W_E.mean(-1).abs().max() < 1e-5  # writing weights centred


def test_hooks_of_the_write_up_exist():
    model = load_model("easy", device="cpu")
    _, cache = model.run_with_cache(CodeBreakingDataset("easy", size=4).toks)
    assert cache["result", 0].shape == (4, 32, 2, 48)
    assert cache["scale"].shape == (4, 32, 1) and cache["scale", 1, "ln1"].shape == (4, 32, 1)


def test_missing_weights_name_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.train --mode medium"):
        load_model("medium", path=tmp_path / "nope.pt")


def test_corrupt_weights_name_the_rebuild_command(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(weights_path("easy").read_bytes()[:500])
    with pytest.raises(RuntimeError, match="python -m utils.train --mode easy"):
        load_model("easy", path=bad)


def test_weights_from_another_mode_are_refused():
    with pytest.raises(RuntimeError, match="another mode"):
        load_model("easy", path=weights_path("hard"))


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("import sys; sys.modules['evil_ran'] = 1",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"embed.W_E": Evil()}, f)
    with pytest.raises(RuntimeError, match="damaged"):
        load_state_dict("easy", path)
    import sys

    assert "evil_ran" not in sys.modules


def test_unknown_mode():
    with pytest.raises(ValueError, match="choose one of"):
        load_model("nightmare")


@pytest.mark.parametrize("mode", ["easy", "medium", "hard"])
def test_shipped_weights_are_the_ones_on_the_card(mode):
    """data/model_card.json describes the shipped file (SHA-256) and records that it meets the quality bar."""
    import hashlib
    import json

    entry = json.loads((weights_path(mode).parent / "model_card.json").read_text())[mode]
    assert hashlib.sha256(weights_path(mode).read_bytes()).hexdigest() == entry["sha256"]
    held_out = entry["held_out"]
    if mode == "hard":
        assert held_out["model"]["ce"] < 0.8 * held_out["letter_frequency_baseline"]["ce"]
    else:
        assert held_out["ratio_to_bayes"] <= {"easy": 1.15, "medium": 1.25}[mode]
