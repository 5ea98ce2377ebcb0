"""Every lesson-07 check accepts the reference and correct answers written differently, and rejects each
catalogued mistake, a function that changes its inputs in place, and one that leaves hooks on the model."""

import einops
import pytest
import torch

import utils.checks as checks
from utils.checks.core import REGISTRY, CheckFailed
from utils.reference import lesson07_mistakes as mistakes

NAMES = ["prefix_match_weights", "source_tokens", "run_with_patched_kv", "scrub_loss_recovered",
         "ablated_query_logits", "word_rotation_probs"]


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
    rejects("source_tokens", mistakes.source_tokens__mutates_fresh_words, match="in place")

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

    def queries_leaving_hooks(model, toks, method, perm=None):
        model.add_hook("blocks.1.attn.hook_q", lambda q, hook: q.mean(0, keepdim=True).expand_as(q).clone())
        with torch.inference_mode():
            return model(toks)

    rejects("ablated_query_logits", queries_leaving_hooks, match="hook(s)")
    # and the hooks are gone afterwards: the reference passes again
    run_check("ablated_query_logits", reference_of("ablated_query_logits"))


def test_rejects_changing_the_weights():
    def ablate_by_weights(model, toks, method, perm=None):
        with torch.no_grad():
            model.blocks[1].attn.W_Q.zero_()
        return reference_of("ablated_query_logits")(model, toks, method, perm)

    rejects("ablated_query_logits", ablate_by_weights, match="weights")
    run_check("ablated_query_logits", reference_of("ablated_query_logits"))  # the cached model was rebuilt


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

    def source_loop(fresh_words, kept_words, word, word_toks, shifts, seq_len=32):
        rows = []
        for b in range(len(fresh_words)):
            ws = fresh_words[b].tolist()
            ws[word] = int(kept_words[b])
            chars = []
            for w in ws:
                chars += [(int(t) + int(shifts[b])) % 26 for t in word_toks[w]] + [26]
            rows.append(chars[:seq_len])
        return torch.tensor(rows)

    run_check("source_tokens", source_loop)

    def patched_in_hook(model, toks, new_k, new_v, mask=None):
        def hook(new):
            def fn(act, hook):
                act[:, mask.bool()] = new[:, mask.bool()]  # writing into the activation is fine in a hook

            return fn

        with model.hooks(fwd_hooks=[("blocks.1.attn.hook_k", hook(new_k)), ("blocks.1.attn.hook_v", hook(new_v))]):
            with torch.inference_mode():
                return model(toks)

    run_check("run_with_patched_kv", patched_in_hook)

    def recovered_via_cross_entropy(logits_clean, logits_scrub, logits_control, labels):
        def ce(x):
            return torch.nn.functional.cross_entropy(
                einops.rearrange(x, "b s v -> (b s) v"), labels.repeat_interleave(x.shape[1])).item()

        return (ce(logits_control) - ce(logits_scrub)) / (ce(logits_control) - ce(logits_clean))

    run_check("scrub_loss_recovered", recovered_via_cross_entropy)

    def queries_by_cache(model, toks, method, perm=None):
        with torch.inference_mode():
            _, cache = model.run_with_cache(toks, names_filter="blocks.1.attn.hook_q")
            q = cache["blocks.1.attn.hook_q"]
            new = einops.repeat(q.mean(0), "s h d -> b s h d", b=len(q)) if method == "mean" else q[perm]
            return model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_q", lambda act, hook: new)])

    run_check("ablated_query_logits", queries_by_cache)

    def rotation_loop(model, word_toks):
        out = torch.zeros(len(word_toks), 26)
        with torch.inference_mode():
            for s in range(26):
                probs = model((word_toks + s) % 26)[:, -1].softmax(-1)
                out[:, s] = probs[:, s]
        return out

    run_check("word_rotation_probs", rotation_loop)


# ---- the library behind the lesson (utils.causal) -----------------------------------------------------------


def test_library_sources_keep_the_word_and_shift_and_redraw_the_rest():
    from utils import causal
    from utils.data import CodeBreakingDataset

    dataset = CodeBreakingDataset("easy", size=60, seed=5)
    table = causal.WordTable.of(dataset)
    words = causal.word_indices(dataset.toks_raw, table)
    for n_keep in (0, 1, 2, 3):
        sources = causal.sample_sources(words, dataset.labels, table, n_keep, torch.Generator().manual_seed(0))
        assert sources.shape == (8, 60, 32)
        for w in range(8):
            span = slice(4 * w, 4 * w + n_keep)
            assert torch.equal(sources[w, :, span], dataset.toks[:, span])  # the kept letters, under the same shift
            assert torch.equal(sources[w, :, 3::4], dataset.toks[:, 3::4])  # spaces where spaces were
        others = sources[0, :, 4:]
        assert (others != dataset.toks[:, 4:]).any(-1).float().mean() > 0.9  # the other words are redrawn
    with pytest.raises(ValueError, match="keep must be 4 numbers"):
        causal.check_keep((1, 2, 3))


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
    torch.testing.assert_close(causal.run_with_patched_kv(model, toks, k, v), logits)
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


@pytest.mark.slow
def test_train_variant_runs():
    from utils import causal

    model = causal.train_variant(mode="medium", steps=2, word_list_size=10)
    assert not model.training and model.cfg.d_model == 48
