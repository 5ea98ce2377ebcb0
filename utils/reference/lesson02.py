"""Reference answers for notebook 02 (loading the model and measuring how well it breaks the code)."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from eindex import eindex
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from ..data import LETTERS
from ..model import model_config, weights_path


def make_config(mode: str) -> HookedTransformerConfig:
    """The code-breaking model's config: 2 layers x 2 heads, attention only, d_model 48, d_head 24, LayerNorm,
    learned positions, causal attention, n_ctx 32, 27 input tokens (36 in hard mode) and 26 outputs."""
    return model_config(mode, device="cpu")  # the library's config (utils.model), spelled out in the notebook


def load_trained_model(mode: str, device: str = "cpu") -> HookedTransformer:
    """The trained model of `mode`: weights loaded safely and processed (LayerNorm folded, writing weights and
    unembedding centred, value biases folded), in eval mode."""
    cfg = make_config(mode)  # built on the CPU, loaded there, then moved: as the notebook's solution does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    state_dict = torch.load(weights_path(mode), map_location="cpu", weights_only=True)
    model.load_and_process_state_dict(
        state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True
    )
    return model.to(device, print_details=False).eval()


def correct_logprobs(
    logprobs: Float[Tensor, "batch seq 26"], labels: Int[Tensor, "batch"]
) -> Float[Tensor, "batch seq"]:
    """logprobs[b, s, labels[b]]: the log-prob of the true shift of sequence b at every position s."""
    return eindex(logprobs, labels, "batch seq [batch]")


def summary_stats(logprobs_correct: Float[Tensor, "batch seq"]) -> dict[str, float]:
    """Cross-entropy (minus the mean log-prob of the true shift) and the mean, median and minimum
    probability of the true shift, over every sequence and position."""
    probs = logprobs_correct.exp()
    return {
        "ce": -logprobs_correct.mean().item(),
        "mean_p": probs.mean().item(),
        "median_p": probs.median().item(),
        "min_p": probs.min().item(),
    }


def first_word_posterior(
    toks: Int[Tensor, "3"], words_freq: Sequence[tuple[str, float]]
) -> Float[Tensor, "3 26"]:
    """log p(shift | the first 1, 2, 3 encoded letters of a word) as float64, for a uniform prior over the 26 shifts.

    Row j: p(shift) is proportional to the total frequency of the words whose first j+1 letters are the encoded
    letters moved back by `shift`.
    """
    shifts = torch.arange(26)
    plain = (toks.cpu().unsqueeze(0) - shifts.unsqueeze(1)) % 26  # [shift 3]: the letters decoded with each shift
    likelihood = torch.zeros(3, 26, dtype=torch.float64)  # [n_letters_seen shift]
    for word, freq in words_freq:
        word_toks = torch.tensor([LETTERS.index(c) for c in word])
        matches = torch.cumprod((plain == word_toks).long(), dim=1)  # [shift 3]: first j+1 letters all match
        likelihood += freq * matches.T
    return (likelihood / likelihood.sum(-1, keepdim=True)).log()


def rebuild_b_O(state_dict: dict[str, Tensor], layer: int) -> Float[Tensor, "d_model"]:
    """The processed model's `b_O` of `layer`, rebuilt by hand from the trained (unprocessed) state dict: the value
    bias that reaches each head (b_V plus LayerNorm's bias read through W_V), pushed through W_O and added to b_O,
    then centred over d_model (centring the writing weights)."""
    p = f"blocks.{layer}"
    b_V = state_dict[f"{p}.attn.b_V"] + torch.einsum("d, h d k -> h k", state_dict[f"{p}.ln1.b"], state_dict[f"{p}.attn.W_V"])
    b_O = state_dict[f"{p}.attn.b_O"] + torch.einsum("h k, h k d -> d", b_V, state_dict[f"{p}.attn.W_O"])
    return b_O - b_O.mean()
