"""Plausible wrong answers to lesson 04's exercises, one function `<exercise>__<mistake>` per `Mistake` registered in
utils/checks/lesson04.py. Tests import them to show that each check rejects each one."""

from __future__ import annotations

import einops
import torch

# --- dla_margin ------------------------------------------------------------------------------------------------


def _margin_dla(components, scale, W_U, wrong, labels, centre=True):
    centred = components - components.mean(dim=1, keepdim=True) if centre else components
    direction = W_U.T[labels].unsqueeze(1) - W_U.T[wrong]
    return einops.einsum(centred / scale, direction, "c b s d, b s d -> c b s")


def dla_margin__max_includes_correct(components, scale, W_U, logits, labels):
    return _margin_dla(components, scale, W_U, logits.argmax(-1), labels)


def dla_margin__runner_up_per_component(components, scale, W_U, logits, labels):
    centred = components - components.mean(dim=1, keepdim=True)
    own = (centred / scale) @ W_U  # [comp batch seq 26]
    correct = own.gather(-1, labels.view(1, -1, 1, 1).expand(*own.shape[:3], 1)).squeeze(-1)
    is_correct = torch.nn.functional.one_hot(labels, 26).bool().view(1, -1, 1, 26)
    return correct - own.masked_fill(is_correct, float("-inf")).max(-1).values


def dla_margin__no_mean_subtraction(components, scale, W_U, logits, labels):
    wrong = logits.masked_fill(torch.nn.functional.one_hot(labels, 26).bool().unsqueeze(1), float("-inf")).argmax(-1)
    return _margin_dla(components, scale, W_U, wrong, labels, centre=False)


def dla_margin__no_final_scale(components, scale, W_U, logits, labels):
    wrong = logits.masked_fill(torch.nn.functional.one_hot(labels, 26).bool().unsqueeze(1), float("-inf")).argmax(-1)
    return _margin_dla(components, torch.ones_like(scale), W_U, wrong, labels)


def dla_margin__sign_flipped(components, scale, W_U, logits, labels):
    wrong = logits.masked_fill(torch.nn.functional.one_hot(labels, 26).bool().unsqueeze(1), float("-inf")).argmax(-1)
    return -_margin_dla(components, scale, W_U, wrong, labels)
