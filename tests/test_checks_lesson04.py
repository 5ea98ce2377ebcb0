"""Every lesson-04 check accepts correct answers, rejects plausible wrong ones (naming the catalogued mistakes),
in-place changes of inputs and models left changed."""

import einops
import pytest
import torch

from helpers import accepts, catalogue, catalogued, diagnoses, not_diagnosed, reference_of, rejects, writes_into

NAMES = ["dla_correct", "attention_slot_shares", "loss_per_position", "ablated_logits", "ablation_loss_change"]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    accepts(name, reference_of(name))


@pytest.mark.parametrize("name, mistake", catalogue("04"))
def test_catalogued_mistake_is_rejected_and_named(name, mistake):
    diagnoses(name, catalogued(name, mistake), mistake)


# Correct answers written differently


def test_dla_correct_accepts_gather():
    def dla(components, scale, W_U, labels):
        centred = components - components.mean(1, keepdim=True)
        logits = (centred / scale) @ W_U  # [comp batch seq 26]
        index = labels.view(1, -1, 1, 1).expand(*logits.shape[:3], 1)
        return logits.gather(-1, index).squeeze(-1)

    accepts("dla_correct", dla)


def test_attention_slot_shares_accepts_a_loop():
    def shares(pattern):
        slots = torch.arange(pattern.shape[-1]) % 4
        out = torch.zeros(pattern.shape[1], 4, 4)
        for d in range(4):
            rows = pattern[:, :, slots == d]  # [batch head n_dest src]
            for k in range(4):
                out[:, d, k] = rows[..., slots == k].sum(-1).mean((0, 2))
        return out

    accepts("attention_slot_shares", shares)


def test_loss_per_position_accepts_cross_entropy():
    def loss(logits, labels):
        target = labels.unsqueeze(1).expand(-1, logits.shape[1])
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(0)

    accepts("loss_per_position", loss)


def test_ablated_logits_accepts_a_hook_that_writes_into_z():
    def ablated(model, toks, layer, head, method):
        def hook(z, hook):
            z[:, :, head] = 0.0 if method == "zero" else z[:, :, head].mean(0)  # activations may be changed in place
            return z

        with torch.inference_mode():
            return model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])

    accepts("ablated_logits", ablated)


# Wrong answers outside the catalogue: rejected, not named


def test_attention_slot_shares_rejects_position_over_4_as_slot():
    def wrong(pattern):
        seq = pattern.shape[-1]
        onehot = torch.nn.functional.one_hot(torch.arange(seq) * 4 // seq, 4).float()
        summed = einops.einsum(pattern, onehot, onehot, "b h dest src, src k, dest d -> h d k")
        return summed / (onehot.sum(0) * pattern.shape[0]).view(1, 4, 1)

    not_diagnosed("attention_slot_shares", wrong)


# In-place changes and models left changed


@pytest.mark.parametrize("name, arg", [
    ("dla_correct", 0), ("dla_correct", 1), ("attention_slot_shares", 0), ("loss_per_position", 0),
    ("ablated_logits", 1), ("ablation_loss_change", 2),
])
def test_in_place_change_of_an_input_is_rejected(name, arg):
    rejects(name, writes_into(reference_of(name), arg), match="in place")


def test_dla_correct_rejects_centring_in_place():
    def centring_in_place(components, scale, W_U, labels):
        components -= components.mean(1, keepdim=True)  # right values, but the caller's tensor is changed
        logits = (components / scale) @ W_U
        return logits.gather(-1, labels.view(1, -1, 1, 1).expand(*components.shape[:3], 1)).squeeze(-1)

    rejects("dla_correct", centring_in_place, match="changed its input `components` in place")


def test_ablated_logits_rejects_a_hook_left_behind():
    def leaves_hook(model, toks, layer, head, method):
        out = reference_of("ablated_logits")(model, toks, layer, head, method)
        model.add_hook(f"blocks.{layer}.attn.hook_z", lambda z, hook: z)
        return out

    rejects("ablated_logits", leaves_hook, match="left 1 hook(s) on `model`")


def test_ablated_logits_rejects_zero_ablation_in_the_weights():
    """Zero ablation by writing W_O (value biases are folded into b_O, so the logits are right): the model stays
    damaged."""

    def writes_weights(model, toks, layer, head, method):
        if method == "mean":
            return reference_of("ablated_logits")(model, toks, layer, head, method)
        with torch.no_grad():
            model.blocks[layer].attn.W_O[head] = 0.0
            return model(toks)

    rejects("ablated_logits", writes_weights, match="weights of `model` changed")


def test_ablation_loss_change_rejects_a_model_left_in_training_mode():
    def train_mode(model, toks, labels, method):
        model.train()
        return reference_of("ablation_loss_change")(model, toks, labels, method)

    rejects("ablation_loss_change", train_mode, match="training mode")


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
