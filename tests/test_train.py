"""A short training run lowers the loss, deterministically; the model card entry is complete."""

import json

import torch

from utils.train import TrainConfig, lr_at, main, train


def test_short_run_lowers_the_loss_and_is_deterministic():
    cfg = TrainConfig(mode="easy", steps=40, batch_size=64, warmup_steps=5)
    model_a, losses = train(cfg, progress=False)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5, losses
    model_b, _ = train(cfg, progress=False)
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name


def test_hard_mode_trains():
    _, losses = train(TrainConfig(mode="hard", steps=10, batch_size=32, warmup_steps=2), progress=False)
    assert all(l == l for l in losses)  # no NaN


def test_schedule_warms_up_then_decays_to_zero():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0)
    assert lr_at(0, cfg) == 0.1 and lr_at(9, cfg) == 1.0 and lr_at(100, cfg) == 0.0
    assert lr_at(55, cfg) == 0.5


def test_cli_writes_weights_and_card(tmp_path, monkeypatch):
    import utils.train as train_module

    card = tmp_path / "card.json"
    monkeypatch.setattr(train_module, "MODEL_CARD_PATH", card)
    out = tmp_path / "m.pt"
    assert main(["--mode", "medium", "--steps", "5", "--batch-size", "16", "--out", str(out), "--eval-size", "50"]) == 0
    entry = json.loads(card.read_text())["medium"]
    assert out.exists() and len(entry["sha256"]) == 64
    assert entry["train_config"]["steps"] == 5 and "torch" in entry["versions"]
    assert entry["held_out"]["bayes_optimal"]["ce"] > 0 and entry["held_out"]["ratio_to_bayes"] > 1
