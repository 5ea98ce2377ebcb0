"""Every lesson-07 check accepts the reference and correct answers written differently, and rejects each
catalogued mistake, a function that changes its inputs in place, and one that leaves hooks on the model."""

import pytest
import torch

import utils.checks as checks
from utils.checks.core import REGISTRY, CheckFailed
from utils.reference import lesson07_mistakes as mistakes

NAMES = ["prefix_match_weights", "run_with_patched_kv", "word_rotation_probs"]


def run_check(name, fn, seed=0):
    """The learner's own entry point, `test_<name>(fn)`, on a fixed seed."""
    test = getattr(checks, f"test_{name}")
    torch.manual_seed(seed)
    import random

    random.seed(seed)
    test(fn)


def rejects(name, fn, match=None):
    with pytest.raises(CheckFailed) as info:
        run_check(name, fn)
    message = str(info.value)
    assert name in message
    if match:
        assert match in message, message
    return message


def reference_of(name):
    return REGISTRY[name].reference


@pytest.mark.parametrize("name", NAMES)
def test_accepts_reference(name):
    for seed in (0, 1):
        run_check(name, reference_of(name), seed)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_every_catalogued_mistake(name):
    exercise = REGISTRY[name]
    assert len(exercise.mistakes) >= 3, f"{name} catalogues too few mistakes"
    for mistake in exercise.mistakes:
        rejects(name, getattr(mistakes, f"{name}__{mistake.name}"))


def test_every_mistake_has_an_implementation():
    for name in NAMES:
        for mistake in REGISTRY[name].mistakes:
            assert callable(getattr(mistakes, f"{name}__{mistake.name}", None)), (name, mistake.name)


# ---- in-place mutation and leftover hooks ------------------------------------------------------------------


def test_rejects_changing_an_input_in_place():
    def patched_mutating_new_k(model, toks, new_k, new_v, mask=None):
        new_k[:, ~mask.bool()] = 0.0  # right answer, but it wipes the caller's keys
        return reference_of("run_with_patched_kv")(model, toks, new_k, new_v, mask)

    rejects("run_with_patched_kv", patched_mutating_new_k, match="in place")

    def prefix_mutating_probs(word_toks, word_probs, n_keep):
        out = reference_of("prefix_match_weights")(word_toks, word_probs, n_keep)
        word_probs /= 2
        return out

    rejects("prefix_match_weights", prefix_mutating_probs, match="in place")


def test_rejects_leaving_hooks_on_the_model():
    message = rejects("run_with_patched_kv", mistakes.run_with_patched_kv__leaves_hooks, match="hook(s)")
    assert "run_with_hooks" in message



# ---- correct answers written differently -------------------------------------------------------------------


def test_accepts_alternatives():
    def prefix_loop(word_toks, word_probs, n_keep):
        out = torch.zeros(len(word_toks), len(word_toks), dtype=word_probs.dtype)
        for i in range(len(word_toks)):
            for j in range(len(word_toks)):
                if torch.equal(word_toks[i, :n_keep], word_toks[j, :n_keep]):
                    out[i, j] = word_probs[j]
        return out / out.sum(1, keepdim=True)

    run_check("prefix_match_weights", prefix_loop)

    def patched_in_hook(model, toks, new_k, new_v, mask=None):
        def hook(new):
            def fn(act, hook):
                where = torch.ones(act.shape[1], dtype=torch.bool) if mask is None else mask.bool()
                act[:, where] = new[:, where]  # writing into the activation is fine in a hook

            return fn

        with model.hooks(fwd_hooks=[("blocks.1.attn.hook_k", hook(new_k)), ("blocks.1.attn.hook_v", hook(new_v))]):
            with torch.inference_mode():
                return model(toks)

    run_check("run_with_patched_kv", patched_in_hook)

    def rotation_loop(model, word_toks):
        out = torch.zeros(len(word_toks), 26)
        with torch.inference_mode():
            for s in range(26):
                probs = model((word_toks + s) % 26)[:, -1].softmax(-1)
                out[:, s] = probs[:, s]
        return out

    run_check("word_rotation_probs", rotation_loop)


# ---- the library behind the lesson (utils.causal) -----------------------------------------------------------


def test_library_kv_matches_the_hooks_and_patching_with_clean_kv_changes_nothing():
    from utils import causal
    from utils.data import CodeBreakingDataset
    from utils.model import load_model

    model = load_model("easy", device="cpu")
    toks = CodeBreakingDataset("easy", size=20, seed=2).toks
    with torch.inference_mode():
        logits, cache = model.run_with_cache(toks)
    k, v = causal.layer1_kv(model, toks)
    torch.testing.assert_close(k, cache["k", 1])
    torch.testing.assert_close(v, cache["v", 1])
    # the library runs without per-head results (faster; sums in another order): equal to float32 rounding
    torch.testing.assert_close(causal.run_with_patched_kv(model, toks, k, v), logits, atol=1e-4, rtol=1e-5)
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


@pytest.mark.slow
def test_train_variant_runs():
    from utils import causal

    model = causal.train_variant(mode="medium", steps=2, word_list_size=10)
    assert not model.training and model.cfg.d_model == 48
