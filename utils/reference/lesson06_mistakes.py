"""Plausible wrong answers to the lesson-06 exercises, one function `<exercise>__<mistake>` per catalogued
`Mistake` (utils/checks/lesson06.py). The checks run them to name a learner's mistake; tests/ runs them to show
that each is rejected and named. Never shipped to a learner's sandbox."""

from __future__ import annotations


import torch

from ..circuits import loss_by_letters_seen
from .lesson06 import frequency_baseline_logprobs

# frequency_baseline_logprobs(toks, letter_freqs)


def _evidence(toks, letter_freqs, sign=-1, letters_only=True):
    plain = (toks.unsqueeze(-1) + sign * torch.arange(26)) % 26
    evidence = letter_freqs.double().log()[plain]
    return torch.where((toks < 26).unsqueeze(-1), evidence, 0.0) if letters_only else evidence


def frequency_baseline_logprobs__punctuation_as_letters(toks, letter_freqs):
    return torch.cumsum(_evidence(toks, letter_freqs, letters_only=False), dim=1).log_softmax(-1)


def frequency_baseline_logprobs__shifts_the_wrong_way(toks, letter_freqs):
    return torch.cumsum(_evidence(toks, letter_freqs, sign=+1), dim=1).log_softmax(-1)


def frequency_baseline_logprobs__only_the_current_letter(toks, letter_freqs):
    return _evidence(toks, letter_freqs).log_softmax(-1)


def frequency_baseline_logprobs__not_normalised(toks, letter_freqs):
    return torch.cumsum(_evidence(toks, letter_freqs), dim=1)


def frequency_baseline_logprobs__input_dtype(toks, letter_freqs):
    return frequency_baseline_logprobs(toks, letter_freqs).to(letter_freqs.dtype)


# loss_by_letters_seen(logprobs_correct, toks, max_letters=26)


def loss_by_letters_seen__counts_before_the_position(logprobs_correct, toks, max_letters=26):
    shifted = torch.cat([torch.full_like(toks[:, :1], 26), toks[:, :-1]], dim=1)
    return loss_by_letters_seen(logprobs_correct, shifted, max_letters)


def loss_by_letters_seen__position_instead_of_letters(logprobs_correct, toks, max_letters=26):
    return loss_by_letters_seen(logprobs_correct, torch.zeros_like(toks), max_letters)


def loss_by_letters_seen__mean_logprob(logprobs_correct, toks, max_letters=26):
    return -loss_by_letters_seen(logprobs_correct, toks, max_letters)


def loss_by_letters_seen__overflow_dropped(logprobs_correct, toks, max_letters=26):
    n = torch.cumsum((toks < 26).long(), dim=1).flatten()
    loss = -logprobs_correct.flatten().double()
    keep = n <= max_letters
    total = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n[keep], loss[keep])
    count = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n[keep], torch.ones_like(loss[keep]))
    return total / count


def loss_by_letters_seen__empty_bucket_zero(logprobs_correct, toks, max_letters=26):
    return loss_by_letters_seen(logprobs_correct, toks, max_letters).nan_to_num(0.0)


# nonletter_attention_share(pattern, toks)


def nonletter_attention_share__destination_mask(pattern, toks):
    return (pattern.sum(-1) * (toks >= 26).unsqueeze(1)).mean((0, 2))


def nonletter_attention_share__mean_over_sources(pattern, toks):
    return (pattern * (toks >= 26)[:, None, None, :]).mean(-1).mean((0, 2))


def nonletter_attention_share__space_only(pattern, toks):
    return (pattern * (toks == 27)[:, None, None, :]).sum(-1).mean((0, 2))


def nonletter_attention_share__letters(pattern, toks):
    return (pattern * (toks < 26)[:, None, None, :]).sum(-1).mean((0, 2))


import torch


# ---------------------------------------------------------------------------------------------------------
# reliability_bins
# ---------------------------------------------------------------------------------------------------------


def _bins(confidence, correct, index, n_bins, keep=None):
    keep = torch.ones_like(confidence, dtype=torch.bool) if keep is None else keep
    zeros = torch.zeros(n_bins, dtype=torch.float64)
    count = zeros.index_add(0, index[keep], torch.ones_like(confidence[keep]))
    return torch.stack([
        zeros.index_add(0, index[keep], confidence[keep]) / count,
        zeros.index_add(0, index[keep], correct[keep]) / count,
        count / len(confidence),
    ])


def reliability_bins__confidence_of_the_target(probs, targets, n_bins=10):
    """Bins by p(correct shift) instead of the probability of the model's own top choice."""
    probs = probs.double()
    confidence = probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    correct = (probs.argmax(-1) == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    return _bins(confidence, correct, index, n_bins)


def reliability_bins__upper_edge_dropped(probs, targets, n_bins=10):
    """Confidence exactly 1 falls outside the bins (index n_bins) and is dropped."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long()
    keep = index < n_bins
    return _bins(confidence, correct, index.clamp(max=n_bins - 1), n_bins, keep)


def reliability_bins__edges_to_lower_bin(probs, targets, n_bins=10):
    """Bins closed on the right: a confidence on an edge (0.5) goes into the bin below."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = ((confidence * n_bins).ceil().long() - 1).clamp(0, n_bins - 1)
    return _bins(confidence, correct, index, n_bins)


def reliability_bins__counts_not_shares(probs, targets, n_bins=10):
    """Third row: the number of predictions per bin instead of the share."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    table = _bins(confidence, correct, index, n_bins)
    table[2] = table[2] * len(confidence)
    return table


def reliability_bins__empty_bins_zero(probs, targets, n_bins=10):
    """Empty bins report confidence and accuracy 0 instead of NaN."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    return _bins(confidence, correct, index, n_bins).nan_to_num(0.0)


def reliability_bins__accuracy_of_all_predictions(probs, targets, n_bins=10):
    """Row 1 is the overall accuracy in every bin, not the accuracy of that bin's predictions."""
    confidence, predicted = probs.double().max(-1)
    correct = (predicted == targets).double()
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    table = _bins(confidence, correct, index, n_bins)
    table[1] = torch.where(table[2] > 0, correct.mean(), torch.nan)
    return table


# --- catalogue grown from the classes of issue 19 ---
import einops  # noqa: E402

from . import lesson06 as ref  # noqa: E402


def nonletter_attention_share__spaces_only(pattern, toks):
    nonletter = (toks == 26).to(pattern.dtype)
    return einops.einsum(pattern, nonletter, 'b h d s, b s -> b h d').mean((0, 2))


def loss_by_letters_seen__current_letter_not_counted(logprobs_correct, toks, max_letters=26):
    letters = (toks < 26).long()
    seen = (letters.cumsum(1) - letters).clamp(max=max_letters)
    expected = ref.loss_by_letters_seen(logprobs_correct, toks, max_letters)
    out = torch.full((max_letters + 1,), float('nan'), dtype=expected.dtype)
    for n in range(max_letters + 1):
        sel = seen == n
        if sel.any():
            out[n] = -logprobs_correct[sel].mean()
    return out


# ece_difference_verdict(model_probs, baseline_probs, labels) (a judgement exercise: the error and the verdict)


def _ece_verdict(difference: float, se: float, z: float = 2.0, signed: bool = False) -> dict:
    real = (difference if signed else abs(difference)) > z * se
    return {"difference": float(difference), "se": float(se), "real": bool(real)}


def _ece_bins(model_probs, baseline_probs, labels):
    from ..calibration import per_sequence_bins

    return per_sequence_bins(model_probs, labels), per_sequence_bins(baseline_probs, labels)


def ece_difference_verdict__predictions_resampled(model_probs, baseline_probs, labels):
    from ..calibration import ece_difference

    seq = model_probs.shape[1]
    flat = lambda p: p.reshape(-1, 1, p.shape[-1])  # noqa: E731  (each prediction its own "window")
    a, b = _ece_bins(flat(model_probs), flat(baseline_probs), labels.repeat_interleave(seq))
    est = ece_difference(a, b, n_boot=200)
    return _ece_verdict(est.value, est.se)


def ece_difference_verdict__unpaired(model_probs, baseline_probs, labels):
    from ..calibration import cluster_bootstrap, ece_of_sums

    a, b = _ece_bins(model_probs, baseline_probs, labels)
    value = (ece_of_sums(a.sum(0)) - ece_of_sums(b.sum(0))).item()
    se_a, se_b = (ece_of_sums(cluster_bootstrap(x, seed=s)).std().item() for x, s in ((a, 0), (b, 1)))
    return _ece_verdict(value, (se_a ** 2 + se_b ** 2) ** 0.5)


def ece_difference_verdict__baseline_minus_model(model_probs, baseline_probs, labels):
    from .lesson06_judgement import ece_difference_verdict

    return ece_difference_verdict(baseline_probs, model_probs, labels)


def ece_difference_verdict__signed_verdict(model_probs, baseline_probs, labels):
    from .lesson06_judgement import ece_difference_verdict

    out = ece_difference_verdict(model_probs, baseline_probs, labels)
    return _ece_verdict(out["difference"], out["se"], signed=True)


# --- issue 19 (lessons 04-07): more classes from the exercise text ---


def frequency_baseline_logprobs__excludes_current_token(toks, letter_freqs):
    evidence = torch.cumsum(_evidence(toks, letter_freqs), dim=1)
    before = torch.cat([torch.zeros_like(evidence[:, :1]), evidence[:, :-1]], dim=1)
    return before.log_softmax(-1)


def frequency_baseline_logprobs__probabilities(toks, letter_freqs):
    return frequency_baseline_logprobs(toks, letter_freqs).exp()


def frequency_baseline_logprobs__normalised_over_positions(toks, letter_freqs):
    return torch.cumsum(_evidence(toks, letter_freqs), dim=1).log_softmax(1)


def nonletter_attention_share__space_not_counted(pattern, toks):
    return (pattern * (toks > 27)[:, None, None, :] + pattern * (toks == 26)[:, None, None, :]).sum(-1).mean((0, 2))


def nonletter_attention_share__newline_not_counted(pattern, toks):
    return (pattern * (toks > 26)[:, None, None, :]).sum(-1).mean((0, 2))


def nonletter_attention_share__summed_over_destinations(pattern, toks):
    return (pattern * (toks >= 26)[:, None, None, :]).sum(-1).sum(2).mean(0)


def loss_by_letters_seen__float32(logprobs_correct, toks, max_letters=26):
    return loss_by_letters_seen(logprobs_correct, toks, max_letters).float()


def loss_by_letters_seen__ignores_max_letters(logprobs_correct, toks, max_letters=26):
    return loss_by_letters_seen(logprobs_correct, toks, 26)


def loss_by_letters_seen__summed_not_averaged(logprobs_correct, toks, max_letters=26):
    n = (toks < 26).long().cumsum(1).clamp(max=max_letters).flatten()
    total = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n, -logprobs_correct.flatten().double())
    count = torch.zeros(max_letters + 1, dtype=torch.float64).index_add_(0, n, torch.ones(n.shape, dtype=torch.float64))
    return torch.where(count > 0, total, torch.nan)


def reliability_bins__float32(probs, targets, n_bins=10):
    from .lesson06 import reliability_bins

    return reliability_bins(probs, targets, n_bins).float()


def reliability_bins__ignores_n_bins(probs, targets, n_bins=10):
    from .lesson06 import reliability_bins

    return reliability_bins(probs, targets, 10)


def reliability_bins__accuracy_is_target_prob(probs, targets, n_bins=10):
    from .lesson06 import reliability_bins

    table = reliability_bins(probs, targets, n_bins)
    confidence = probs.double().max(-1).values
    index = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    target_p = probs.double().gather(-1, targets.view(-1, 1)).squeeze(-1)
    total = torch.zeros(n_bins, dtype=torch.float64).index_add(0, index, target_p)
    count = torch.zeros(n_bins, dtype=torch.float64).index_add(0, index, torch.ones_like(target_p))
    table[1] = total / count
    return table


def frequency_baseline_logprobs__freqs_not_logged(toks, letter_freqs):
    plain = (toks.unsqueeze(-1) - torch.arange(26)) % 26
    evidence = torch.where((toks < 26).unsqueeze(-1), letter_freqs.double()[plain], 0.0)
    return torch.cumsum(evidence, dim=1).log_softmax(-1)


def loss_by_letters_seen__one_bucket_short(logprobs_correct, toks, max_letters=26):
    return loss_by_letters_seen(logprobs_correct, toks, max_letters - 1)
