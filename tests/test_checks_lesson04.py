"""Every lesson-04 check accepts the reference and rejects plausible wrong answers."""

import einops
import pytest
import torch
from eindex import eindex

from helpers import accepts, reference_of, rejects

NAMES = ["dla_correct", "attention_slot_shares", "loss_per_position", "ablated_logits", "ablation_loss_change"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


def test_dla_correct_rejects_no_mean_subtraction():
    def wrong(components, scale, W_U, labels):
        return eindex((components / scale) @ W_U, labels, "comp batch seq [batch]")

    rejects("dla_correct", wrong)


def test_dla_correct_rejects_multiplying_by_scale():
    def wrong(components, scale, W_U, labels):
        centred = components - components.mean(1, keepdim=True)
        return eindex((centred * scale) @ W_U, labels, "comp batch seq [batch]")

    rejects("dla_correct", wrong)


def test_attention_slot_shares_rejects_swapped_slots():
    ref = reference_of("attention_slot_shares")
    rejects("attention_slot_shares", lambda pattern: ref(pattern).transpose(-1, -2))


def test_attention_slot_shares_rejects_counting_dest_by_seq_len():
    def wrong(pattern):
        seq_len = pattern.shape[-1]
        slots = torch.arange(seq_len) % 4
        onehot = torch.nn.functional.one_hot(slots, 4).float()
        summed = einops.einsum(pattern, onehot, onehot, "b h dest src, src k, dest d -> h d k")
        return summed / (pattern.shape[0] * (seq_len // 4))

    rejects("attention_slot_shares", wrong)


def test_loss_per_position_rejects_averaging_over_positions():
    ref = reference_of("loss_per_position")
    rejects("loss_per_position", lambda logits, labels: ref(logits, labels).mean().expand(logits.shape[1]))


def test_loss_per_position_rejects_raw_logits():
    rejects("loss_per_position", lambda logits, labels: -eindex(logits, labels, "batch seq [batch]").mean(0))


def test_ablated_logits_rejects_mean_over_positions_too():
    def wrong(model, toks, layer, head, method):
        def hook(z, hook):
            z[:, :, head] = 0.0 if method == "zero" else z[:, :, head].mean((0, 1), keepdim=True)
            return z

        with torch.inference_mode():
            return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])

    rejects("ablated_logits", wrong)


def test_ablated_logits_rejects_ablating_the_whole_layer():
    def wrong(model, toks, layer, head, method):
        def hook(z, hook):
            return torch.zeros_like(z) if method == "zero" else z.mean(0, keepdim=True).expand_as(z)

        with torch.inference_mode():
            return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])

    rejects("ablated_logits", wrong)


def test_ablation_loss_change_rejects_flipped_sign():
    ref = reference_of("ablation_loss_change")
    rejects("ablation_loss_change", lambda model, toks, labels, method: -ref(model, toks, labels, method))


def test_analysis_agrees_with_reference():
    """utils.analysis (used by later lessons on other modes) computes what the lesson-04 references compute."""
    from utils import analysis
    from utils.data import CodeBreakingDataset
    from utils.model import create_model

    model = create_model("easy", device="cpu").eval()  # any weights will do: the two must agree
    dataset = CodeBreakingDataset("easy", size=50, seed=3)
    with torch.inference_mode():
        logits, cache = model.run_with_cache(dataset.toks)
    components = analysis.residual_components(cache)
    reconstructed = components.sum(0) + model.b_O.detach().sum(0)
    torch.testing.assert_close(reconstructed, cache["resid_post", 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        analysis.component_dla(model, cache, dataset.labels),
        reference_of("dla_correct")(components, cache["scale"], model.W_U.detach(), dataset.labels),
    )
    for layer in range(2):
        torch.testing.assert_close(analysis.attention_slot_shares(cache["pattern", layer]),
                                   reference_of("attention_slot_shares")(cache["pattern", layer]))
    torch.testing.assert_close(analysis.loss_per_position(logits, dataset.labels),
                               reference_of("loss_per_position")(logits, dataset.labels))
    for method in ("mean", "zero"):
        torch.testing.assert_close(analysis.ablation_loss_change(model, dataset.toks, dataset.labels, method),
                                   reference_of("ablation_loss_change")(model, dataset.toks, dataset.labels, method))
