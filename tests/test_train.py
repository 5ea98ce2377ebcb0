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


def test_model_card_markdown_is_rendered_from_the_json_by_one_renderer():
    """data/MODEL_CARD.md is exactly what utils.train renders from data/model_card.json (benchmarks/bench_models.py
    --card uses the same renderer): the headline figures stay through a re-render."""
    from utils.train import MODEL_CARD_PATH, render_model_card

    card = json.loads(MODEL_CARD_PATH.read_text())
    assert render_model_card(card) == MODEL_CARD_PATH.with_name("MODEL_CARD.md").read_text()


def test_retraining_one_mode_drops_only_its_headline(tmp_path):
    """A retrained mode's headline is stale (other weights): it goes; the other modes' headlines stay."""
    from utils.train import MODEL_CARD_PATH, update_model_card

    path = tmp_path / "model_card.json"
    card = json.loads(MODEL_CARD_PATH.read_text())
    path.write_text(json.dumps(card))
    retrained = {k: v for k, v in card["easy"].items() if k != "headline"}
    update_model_card("easy", retrained, path)
    md = path.with_name("MODEL_CARD.md").read_text()
    medium = card["medium"]["headline"]
    assert f"| medium | {medium['sequences']:,} ({medium['seed']})" in md
    assert "| easy | " in md and not any(line.startswith("| easy | ") and "±" in line for line in md.splitlines())
