"""Lesson 05's layer-1 decomposition in the library (the exercises that wrote it are now given code): on the real
model the parts of a layer-1 head's attention scores and output add up to what the model computes."""

import einops
import pytest
import torch

from utils import attribution
from utils.data import CodeBreakingDataset
from utils.model import load_model


@pytest.fixture(scope="module")
def run():
    model = load_model("easy", device="cpu")
    dataset = CodeBreakingDataset("easy", size=64, seed=5)
    with torch.inference_mode():
        _, cache = model.run_with_cache(dataset.toks)
    return model, dataset, cache


@torch.inference_mode()
def test_parts_add_up_on_the_model(run):
    """The decompositions are exact: parts of the stream, of every score and of every head output add up."""
    model, _, cache = run
    parts = attribution.layer1_stream_parts(model, cache)
    resid = cache["resid_pre", 1]
    torch.testing.assert_close(parts.sum(0), resid - resid.mean(-1, keepdim=True), atol=1e-4, rtol=1e-4)
    scale = cache["scale", 1, "ln1"]
    q = einops.rearrange(cache["q", 1], "b s h e -> b h s e")
    scores = attribution.key_score_components(q, parts, scale, model.W_K[1]).sum(0)
    scores = scores + einops.einsum(q, model.b_K[1], "b h q e, h e -> b h q").unsqueeze(-1) / model.cfg.d_head**0.5
    causal = torch.ones(32, 32).tril().bool()
    torch.testing.assert_close(scores[..., causal], cache["attn_scores", 1][..., causal], atol=1e-3, rtol=1e-3)
    W_OV = model.W_V[1] @ model.W_O[1]
    out = attribution.head_output_parts(parts, scale, cache["pattern", 1], W_OV).sum(0)
    torch.testing.assert_close(einops.rearrange(out, "b h d o -> b d h o"), cache["result", 1], atol=1e-3, rtol=1e-3)


def test_key_stream_intervention_keeps_the_norm_and_reproduces_the_model(run):
    model, _, cache = run
    resid = cache["resid_pre", 1]
    torch.testing.assert_close(attribution.pattern_from_key_stream(model, cache, resid), cache["pattern", 1], atol=1e-5, rtol=1e-4)
    assert torch.allclose(attribution.layer_norm_pre(resid * 3 + 1).norm(dim=-1), torch.tensor(48**0.5), atol=1e-3)
