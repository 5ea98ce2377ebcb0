"""Scoring: eindex-based indexing agrees with torch.gather; summary statistics."""

import torch

from utils.evaluate import correct_logprobs, summarize


def test_correct_logprobs_matches_gather():
    logprobs = torch.randn(7, 5, 26).log_softmax(-1)
    labels = torch.randint(0, 26, (7,))
    expected = logprobs.gather(-1, labels[:, None, None].expand(7, 5, 1)).squeeze(-1)
    assert torch.equal(correct_logprobs(logprobs, labels), expected)


def test_summarize():
    lp = torch.tensor([[0.0, -1.0], [-2.0, -3.0]])
    s = summarize(lp)
    assert abs(s["ce"] - 1.5) < 1e-12 and abs(s["min_p"] - torch.tensor(-3.0).exp().item()) < 1e-7
    assert s["ce_by_pos"] == [1.0, 2.0]
