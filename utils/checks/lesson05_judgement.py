"""Judgement exercises of notebook 05: decisions a researcher makes, graded by their consequences on a fresh
dataset seed (the grader runs `compare` in its own process, on the learner's plain returned values).

- `key_input_control`: a control for the "0A lowered" intervention that keeps 0A's key input in distribution
  (a key input some real position has, of the real norm) yet changes it by a comparable amount, so that it could
  have failed.
- `discriminating_swap`: a swap of one part of the 3rd letters' keys on which the two stated hypotheses (head 1.0
  finds 3rd letters by their positional part / by what layer 0 wrote there) predict different outcomes, and the
  verdict the measurement gives.
"""

from __future__ import annotations

import dataclasses

import torch

from .core import Case, Exercise, Judged, Ref, _build_ref, make_test, reference, register

R = "lesson05_judgement"
N_SEQUENCES = 100
MIN_SIZE = 1 / 3  # a control must move 0A's key input by at least this fraction of what "0A lowered" moves it


def _resid(seed: int) -> torch.Tensor:
    return _build_ref(Ref("cache", "easy", N_SEQUENCES, seed))["resid_pre", 1].detach().cpu().clone()


def _control_cases(seed: int) -> list[Case]:
    return [Case((_resid(s),), label=f"the stream entering layer 1 on {N_SEQUENCES} fresh sequences (dataset seed {s})")
            for s in (seed % 10_000 + 1000, seed % 10_000 + 2000)]


def compare_control(expected, got, case: Case) -> str | None:
    """Judge a control by what it does: only 0A changes; 0A's key input stays one a real position has (so its
    norm and direction are in distribution); and it moves that input by a comparable amount to the blow-up."""
    from .. import circuits

    resid = case.args[0]
    if not isinstance(got, torch.Tensor) or got.shape != resid.shape:
        return (f"return the whole stream, a tensor of shape {tuple(resid.shape)} like `resid`, with your control "
                f"applied; got {type(got).__name__} {tuple(getattr(got, 'shape', ()))}")
    got = got.detach().cpu().float()
    if not torch.isfinite(got).all():
        return "your stream holds NaN or infinite values"
    moved = (got[:, 1:] - resid[:, 1:]).abs().amax((0, 2)) > 1e-4 * resid.abs().max()
    if moved.any():
        return Judged(f"your control changes positions other than 0A (e.g. position {int(moved.nonzero()[0]) + 1}): a control "
                      "for an intervention at 0A changes 0A's key input and nothing else",
                      "a control that changes positions other than 0A, not only 0A's key input")
    key_input = circuits.layer_norm_pre(got[:, 0])
    change = circuits.change_at_0A(resid, key_input)
    blowup = circuits.change_at_0A(resid, circuits.lowered_0A_input(resid))
    if change.mean() < 1e-3:
        return Judged("after LayerNorm, 0A's key input is exactly the clean one (LayerNorm undoes any rescaling of a "
                      "position's stream): this control is the unmodified model, so it cannot fail",
                      "a rescaling of 0A's stream, which LayerNorm undoes: the key input does not change, so the control is the unmodified model")
    far = circuits.nearest_real_key_input(resid, key_input) > 1e-2
    if far.any():
        return Judged(f"in {int(far.sum())} of {len(far)} sequences 0A's key input is not one any real position has: the "
                      "head never meets such a key, so what it does with it says little (out of distribution)",
                      'a key input that no real position has (out of distribution)')
    if change.mean() < MIN_SIZE * blowup.mean():
        return Judged(f"your control moves 0A's normalized key input by {change.mean():.1f} on average, against "
                      f"{blowup.mean():.1f} for '0A lowered': a change this small could hardly come out the other way, so "
                      "its null result would say little. Choose a larger change that stays in distribution.",
                      "a change to 0A's key input much smaller than the blow-up's, so its null result says little")
    return None


def compare_swap(expected, got, case: Case) -> str | None:
    """Judge a swap by its consequences: the two hypotheses must predict different outcomes for it, and the
    verdict must be the one the swap's measurement gives on a fresh dataset seed."""
    from .. import circuits

    if not isinstance(got, dict) or not {"part", "donor", "verdict"} <= set(got):
        return 'return a dict with the keys "part", "donor" and "verdict"'
    part, donor, verdict = got["part"], got["donor"], got["verdict"]
    if part not in circuits.SWAP_PARTS:
        return f'"part" must be one of {list(circuits.SWAP_PARTS)}; got {part!r}'
    if donor not in circuits.DONOR_OFFSETS:
        return f'"donor" must be one of {list(circuits.DONOR_OFFSETS)}; got {donor!r}'
    if verdict not in circuits.HYPOTHESES:
        return f'"verdict" must be one of {list(circuits.HYPOTHESES)}; got {verdict!r}'
    predicted = circuits.predicted_outcomes(part, donor)
    if len(set(predicted.values())) == 1:
        return Judged(f"both hypotheses predict that head 1.0's share on 3rd letters {predicted['position']} under this "
                      "swap: whatever it measures cannot tell them apart",
                      'a swap on which both hypotheses predict the same outcome, so it cannot tell them apart')
    model = _build_ref(Ref("model", "easy"))
    cache = _build_ref(Ref("cache", "easy", N_SEQUENCES, case.seed))
    outcome, change = circuits.measured_outcome(model, cache, part, donor)
    picked = [h for h, p in predicted.items() if p == outcome][0]
    if verdict != picked:
        return Judged(f"on fresh sequences your swap changes head 1.0's share on 3rd letters by {change} (\"falls\" means a "
                      f"drop of more than 0.15 at 2 SE); compare that with what each hypothesis predicted for your swap: "
                      f"it does not support {verdict!r}",
                      'the verdict names the hypothesis that the measured change contradicts')
    return None


@dataclasses.dataclass
class _SwapCase(Case):
    """The learner's function takes no argument: the dataset seed the check runs the swap on stays here, in the
    checker's process."""

    seed: int = 0


def _swap_cases(seed: int) -> list[Case]:
    s = seed % 10_000 + 3000
    return [_SwapCase(label=f"your swap, run on {N_SEQUENCES} fresh sequences (dataset seed {s})", seed=s)]


register(Exercise("key_input_control", "05", reference(R, "key_input_control"), _control_cases, points=2,
                  kind="judgement", compare=compare_control))
register(Exercise("discriminating_swap", "05", reference(R, "discriminating_swap"), _swap_cases, points=2,
                  kind="judgement", compare=compare_swap))

test_key_input_control = make_test("key_input_control")
test_discriminating_swap = make_test("discriminating_swap")

__all__ = ["test_key_input_control", "test_discriminating_swap"]
