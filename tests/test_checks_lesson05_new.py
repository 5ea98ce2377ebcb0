"""Lesson 05's new checks (a layer-1 head's attention scores and output split into the parts of its input): each
accepts correct answers written differently and rejects every catalogued mistake, also when it mutates its inputs;
and on the real model the parts add up to what the model computes."""

import einops
import pytest
import torch

from helpers import accepts, reference_of, rejects
from utils import attribution
from utils.checks.core import REGISTRY
from utils.data import CodeBreakingDataset
from utils.model import load_model
from utils.reference import lesson05_mistakes

NAMES = ["key_score_components", "head_output_parts"]
CASES = [(name, m.name) for name in NAMES for m in REGISTRY[name].mistakes]


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference_and_library(name):
    accepts(name, reference_of(name))
    accepts(name, getattr(attribution, name))


def test_key_scores_accepts_a_loop_over_parts():
    def loop(q, parts, key_scale, W_K):
        out = []
        for part in parts:  # [batch src d_model]
            k = torch.einsum("bsd,hde->bhse", part / key_scale, W_K)
            out.append(q @ k.transpose(-1, -2) / (W_K.shape[-1] ** 0.5))
        return torch.stack(out)

    accepts("key_score_components", loop)


def test_output_parts_accepts_mixing_before_the_OV_circuit():
    """Mixing the sources first and applying W_OV afterwards is the same linear map, written the other way round."""

    def mix_first(parts, ln_scale, pattern, W_OV):
        mixed = einops.einsum(pattern, parts / ln_scale, "b h d s, p b s i -> p b h d i")
        return einops.einsum(mixed, W_OV, "p b h d i, h i o -> p b h d o")

    accepts("head_output_parts", mix_first)


def test_rejects_right_answers_that_write_into_their_inputs():
    def scores_in_place(q, parts, key_scale, W_K):
        parts /= key_scale
        q /= W_K.shape[-1] ** 0.5
        return einops.einsum(q, einops.einsum(parts, W_K, "p b s d, h d e -> p b h s e"), "b h q e, p b h s e -> p b h q s")

    def outputs_in_place(parts, ln_scale, pattern, W_OV):
        parts /= ln_scale
        return einops.einsum(pattern, einops.einsum(parts, W_OV, "p b s i, h i o -> p b h s o"), "b h d s, p b h s o -> p b h d o")

    assert "changed its input `parts` in place" in rejects("key_score_components", scores_in_place)
    assert "changed its input `parts` in place" in rejects("head_output_parts", outputs_in_place)


@pytest.mark.parametrize("name, mistake", CASES)
def test_rejects_each_mistake(name, mistake):
    rejects(name, getattr(lesson05_mistakes, f"{name}__{mistake}"))


@pytest.mark.parametrize("name, mistake", CASES)
def test_rejects_each_mistake_when_it_mutates_its_inputs(name, mistake):
    wrong = getattr(lesson05_mistakes, f"{name}__{mistake}")

    def mutating(*args):
        out = wrong(*args)
        for a in args:
            a.mul_(0.5)
        return out

    rejects(name, mutating)


def test_every_mistake_has_a_message():
    for name in NAMES:
        assert all(len(m.message) > 20 for m in REGISTRY[name].mistakes)


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
