"""Lesson 04's judgement exercises, checked by their consequences on fresh data.

- `discriminating_ablation`: the learner picks an intervention at position 1 and says which of two stated accounts
  its outcome supports. The check works out what each account predicts for that intervention, refuses one for which
  they predict the same, runs it on a fresh dataset and confirms that the measured outcome (with its error) picks
  the account the learner named.
- `shares_differ`: the learner computes the difference of two components' shares of the margin attribution with its
  standard error over sequences and says whether it is real. Checked on fresh data against the paired bootstrap.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..analysis import COMPONENT_NAMES
from ..data import CodeBreakingDataset
from .core import Case, Exercise, Judged, Mistake, make_test, read_verdict, reference, register

__all__ = ["test_discriminating_ablation", "test_shares_differ"]

R = "lesson04_judgement"
POSITION = 1
DROP, NO_CHANGE = 0.10, 0.05  # top-1 drop that counts as "a drop"; a change within this counts as "no change"
HYPOTHESES = {
    "filter": "head 1.1's direct path narrows the shift to those consistent with the two letters, and the direct "
              "paths of the embeddings, layer 0 and head 1.0 choose among them",
    "alone": "head 1.1's direct path picks the shift by itself; the other components matter at position 1 only "
             "through what layer 1 reads",
}


@dataclasses.dataclass
class FreshCase(Case):
    """A case whose check runs on a fresh dataset of its own (seed `data_seed`), not on the learner's."""

    data_seed: int = 0


def _fresh_seed(seed: int) -> int:
    return 10_000 + seed % 100_000  # never the lessons' seeds (0-100)


@torch.inference_mode()
def _model_and_cache(data_seed: int, size: int):
    from .core import Ref, materialize

    model = materialize(Ref("model", "easy"))  # a private copy: the grader may judge answers in parallel threads
    dataset = CodeBreakingDataset("easy", size=size, seed=data_seed)
    logits, cache = model.run_with_cache(dataset.toks)
    return model, dataset, logits, cache


# ---------------------------------------------------------------------------------------------------------
# discriminating_ablation
# ---------------------------------------------------------------------------------------------------------


def predictions(components: list[str], path: str) -> dict[str, str]:
    """What each account predicts for top-1 at position 1: "drop" or "no change"."""
    if path == "total":
        return {"filter": "drop", "alone": "drop"}  # both accounts need layer 0 and head 1.1 through layer 1
    return {"filter": "drop", "alone": "drop" if "1.1" in components else "no change"}


def _read_choice(got) -> tuple[list[str], str, str] | str:
    """(components, path, verdict) from the learner's dict, or a message saying what to change."""
    if not isinstance(got, dict) or not {"components", "path", "verdict"} <= set(got):
        return ("return a dict with the keys 'components' (a list of component names), 'path' ('direct' or "
                f"'total') and 'verdict' ('filter' or 'alone'); got {got!r}")
    comps = got["components"]
    comps = [comps] if isinstance(comps, str) else list(comps) if isinstance(comps, (list, tuple)) else None
    if not comps or any(c not in COMPONENT_NAMES for c in comps) or len(set(comps)) != len(comps):
        return f"'components' must be a non-empty list of distinct names from {COMPONENT_NAMES}; got {got['components']!r}"
    path, verdict = str(got["path"]).strip().lower(), str(got["verdict"]).strip().lower()
    if path not in ("direct", "total"):
        return f"'path' must be 'direct' or 'total'; got {got['path']!r}"
    if path == "total" and "embed" in comps:
        return "a total (mean) ablation is defined for heads only: the embeddings are the input itself"
    if verdict not in HYPOTHESES:
        return f"'verdict' must be one of {list(HYPOTHESES)}; got {got['verdict']!r}"
    return comps, path, verdict


@torch.inference_mode()
def run_intervention(components: list[str], path: str, data_seed: int, size: int = 600):
    """Top-1 at position 1, clean minus intervened, per sequence (for its error), on a fresh dataset."""
    from ..attribution import direct_path_ablated_logits, outcomes

    model, dataset, logits, cache = _model_and_cache(data_seed, size)
    idx = [COMPONENT_NAMES.index(c) for c in components]
    if path == "direct":
        after = direct_path_ablated_logits(model, cache, idx, POSITION)
    else:  # total: every chosen head mean-ablated at once, its effect through later layers included
        hooks = []
        for c in components:
            layer, head = map(int, c.split("."))
            hooks.append((f"blocks.{layer}.attn.hook_z", _mean_hook(head)))
        after = model.run_with_hooks(dataset.toks, fwd_hooks=hooks)[:, POSITION]
    clean_right, _ = outcomes(logits[:, POSITION], dataset.labels)
    right, _ = outcomes(after, dataset.labels)
    return clean_right - right  # [batch]: 1 where the intervention made a right prediction wrong


def _mean_hook(head: int):
    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = z[:, :, head].mean(0, keepdim=True)
        return z

    return hook


def measured_outcome(drop: torch.Tensor) -> tuple[str, float, float]:
    """("drop" | "no change" | "inconclusive", mean drop, its SE)."""
    value, se = drop.double().mean().item(), drop.double().std().item() / math.sqrt(len(drop))
    if value - 2 * se > DROP:
        return "drop", value, se
    if abs(value) + 2 * se < NO_CHANGE:
        return "no change", value, se
    return "inconclusive", value, se


def compare_ablation(expected, got, case: FreshCase) -> str | None:
    choice = _read_choice(got)
    if isinstance(choice, str):
        return choice
    comps, path, verdict = choice
    predicted = predictions(comps, path)
    if predicted["filter"] == predicted["alone"]:
        return Judged(f"for a {path} ablation of {comps}, both accounts predict the same outcome ({predicted['filter']} "
                      "in top-1 at position 1): whatever it measures, it cannot tell them apart. Look for an intervention "
                      "on which the two accounts disagree.",
                      'an intervention on which both accounts predict the same outcome, so it cannot tell them apart')
    drop = run_intervention(comps, path, case.data_seed)
    outcome, value, se = measured_outcome(drop)
    measured = f"on {len(drop)} fresh sequences (seed {case.data_seed}) top-1 at position 1 falls by {value:.2f} ± {se:.2f}"
    if outcome == "inconclusive":
        return (f"the two accounts disagree on this intervention, but {measured}: neither clearly a drop (over "
                f"{DROP:.0%} beyond 2 SE) nor clearly no change (within {NO_CHANGE:.0%}). It has too little power; "
                "choose one where the account that predicts a drop predicts a large one.")
    supported = [h for h, p in predicted.items() if p == outcome][0]
    if verdict != supported:
        return Judged(f"{measured}, which is what the '{supported}' account predicts ({predicted[supported]}), not the "
                      f"'{verdict}' account ({predicted[verdict]}).",
                      'the verdict names the account that the measured outcome contradicts')
    return None


def _ablation_cases(seed: int) -> list[Case]:
    return [FreshCase((), label=f"your choice, run on a fresh dataset (seed {_fresh_seed(seed)})",
                      data_seed=_fresh_seed(seed))]


register(Exercise(
    "discriminating_ablation", "04", reference(R, "discriminating_ablation"), _ablation_cases, points=2,
    kind="judgement", compare=compare_ablation,
    hint="For each account, write down what it predicts for your intervention before you run anything; a test is "
         "only worth running where the two predictions differ.",
))
test_discriminating_ablation = make_test("discriminating_ablation")


# ---------------------------------------------------------------------------------------------------------
# shares_differ
# ---------------------------------------------------------------------------------------------------------

SHARE_CASES = (  # (group a, group b, sequences, what-if |difference| / SE or None for the data as it is)
    ([4], [3], 1000, None),  # 1.1 vs 1.0: a clear difference (negative)
    ([0, 1, 2], [3, 4], 1000, None),  # embeddings + layer 0 vs layer 1: about half each
    ([1], [2], 1000, 1.4),  # 0.0 vs 0.1, moved apart to 1.4 SE: not real
    ([1], [2], 1000, 2.8),  # ... and to 2.8 SE: real
)
SE_RATIO = (0.8, 1.25)  # the learner's SE may differ from the reference's by bootstrap noise, not by a factor √2
AMBIGUOUS = (1.7, 2.3)  # |difference| / SE in this band: either decision is accepted


@torch.inference_mode()
def margin_dla_at_position_1(data_seed: int, size: int) -> torch.Tensor:
    """[component batch]: the margin DLA (the lesson's definition) at position 1 on a fresh dataset."""
    from ..analysis import residual_components
    from ..attribution import dla_margin

    model, dataset, logits, cache = _model_and_cache(data_seed, size)
    comps = residual_components(cache)
    return dla_margin(comps, cache["scale"], model.W_U, logits, dataset.labels)[:, :, POSITION].cpu().clone()


def moved_apart(dla: torch.Tensor, a: int, b: int, z: float) -> torch.Tensor:
    """A what-if copy of `dla` whose share difference a - b is `z` of its standard errors: a constant moved from
    component b to component a on every sequence (the total, and so every share's denominator, is unchanged)."""
    from ..attribution import share_difference

    out = dla.clone()
    for _ in range(4):  # the SE moves a little with the constant: a few fixed-point steps
        est = share_difference(out, [a], [b])
        shift = (z * est.se - est.value) * out.mean(1).sum() / 2
        out[a] += shift
        out[b] -= shift
    return out


def _share_cases(seed: int) -> list[Case]:
    dla = margin_dla_at_position_1(_fresh_seed(seed), max(size for *_, size, _ in SHARE_CASES))
    names = lambda g: "+".join(COMPONENT_NAMES[i] for i in g)  # noqa: E731
    cases = []
    for a, b, size, z in SHARE_CASES:
        data = dla[:, :size] if z is None else moved_apart(dla[:, :size], a[0], b[0], z)
        what = "" if z is None else f" (what-if: {names(a)} given a constant more, {names(b)} less)"
        cases.append(Case((data, a, b), label=f"margin DLA at position 1, {size} fresh sequences: {names(a)} vs {names(b)}{what}"))
    return cases


def compare_shares(expected: dict, got, case: Case) -> str | None:
    verdict = read_verdict(got)
    if isinstance(verdict, str):
        return verdict
    diff, se, _ = verdict
    if not math.isclose(diff, expected["difference"], abs_tol=1e-3):
        return (f"difference {diff:.4f}, expected {expected['difference']:.4f}: check how a group's share is formed "
                "(from the mean attribution over sequences) and which group is subtracted from which")
    ratio = se / expected["se"] if expected["se"] > 0 else math.inf
    if not SE_RATIO[0] <= ratio <= SE_RATIO[1]:
        return (f"standard error {se:.4f}, expected about {expected['se']:.4f} ({ratio:.2f} times it): the error of "
                "a difference between two shares of the same sequences is not the error of either share, nor their "
                "errors combined as if independent")
    z = abs(expected["difference"]) / expected["se"]
    if AMBIGUOUS[0] <= z <= AMBIGUOUS[1]:
        return None
    if got["real"] != (z > 2):
        return (f"you said real={got['real']}, but the difference is {abs(expected['difference']) / se:.1f} of your "
                "standard errors from zero: decide by the difference's size relative to its error")
    return None


register(Exercise(
    "shares_differ", "04", reference(R, "shares_differ"), _share_cases, points=2, kind="judgement",
    compare=compare_shares,
    mistakes=(
        Mistake("independent_errors", "your standard error combines the two shares' errors as if they were "
                "independent; both shares come from the same sequences (and share a denominator), so resample the "
                "difference itself."),
        Mistake("b_minus_a", "the difference is group_b's share minus group_a's; the exercise asks for a minus b."),
        Mistake("se_of_group_a", "your standard error is that of group_a's share alone; the question is about the "
                "difference of the two shares."),
        Mistake("per_sequence_se", "your standard error is that of per-sequence share differences (each sequence's "
                "own ratio); a share is a ratio of means, so resample the sequences and recompute the difference of "
                "shares on each resample."),
    ),
    hint="Both shares come from the same sequences: the error of their difference is the spread of the difference "
         "itself when the sequences are resampled.",
))
test_shares_differ = make_test("shares_differ")
