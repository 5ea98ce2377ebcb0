"""The code-breaking transformer: its config, creating it, and loading the shipped weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .data import DATA_DIR, N_CTX, check_mode, vocab


def weights_path(mode: str) -> Path:
    """Where the trained weights of a mode live: data/caesar_cipher_model_{mode}.pt."""
    return DATA_DIR / f"caesar_cipher_model_{check_mode(mode)}.pt"


def default_device() -> str:
    """"cuda" where a GPU is there (Colab's GPU runtime), else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_config(mode: str = "easy", device: str | None = None, seed: int = 42) -> HookedTransformerConfig:
    """2 layers x 2 heads, attention only, d_model 48, LayerNorm, causal, learned positions, n_ctx 32."""
    return HookedTransformerConfig(
        n_layers=2,
        n_heads=2,
        d_model=48,
        d_head=24,
        d_mlp=None,
        attn_only=True,
        act_fn=None,
        normalization_type="LN",
        positional_embedding_type="standard",
        attention_dir="causal",
        n_ctx=N_CTX,
        d_vocab=len(vocab(mode)),
        d_vocab_out=26,
        seed=seed,
        device=device or default_device(),
    )


def create_model(mode: str = "easy", device: str | None = None, seed: int = 42) -> HookedTransformer:
    """A freshly initialised (untrained) model for `mode`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer(model_config(mode, device, seed))


def rebuild_command(mode: str) -> str:
    return f"python -m utils.train --mode {mode}"


def load_state_dict(mode: str = "easy", path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The raw (unprocessed) state dict of a trained model, loaded safely (weights_only=True)."""
    p = Path(path) if path is not None else weights_path(mode)
    if not p.exists():
        raise FileNotFoundError(
            f"No weights at {p}. Restore the shipped file with `git checkout -- {p.name}` from the data/ folder, "
            f"or rebuild it with `{rebuild_command(mode)}`."
        )
    try:
        state_dict = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, pickled code...
        raise RuntimeError(
            f"Could not read weights from {p} ({e.__class__.__name__}: {str(e)[:200]}). The file is damaged: "
            f"rebuild it with `{rebuild_command(mode)}`."
        ) from None
    if not isinstance(state_dict, dict) or "embed.W_E" not in state_dict:
        raise RuntimeError(f"{p} is not a state dict of this model: rebuild it with `{rebuild_command(mode)}`.")
    return state_dict


def load_model(
    mode: str = "easy",
    device: str | None = None,
    path: str | Path | None = None,
    process: bool = True,
) -> HookedTransformer:
    """The trained model of `mode`, in eval mode.

    With process=True (the default, as in the original write-up) the weights are centred and LayerNorm and
    value biases are folded in. None of this changes the log-probs; it makes the residual stream and the
    heads' outputs easier to read (see notebook 02).
    """
    model = create_model(mode, device)
    state_dict = load_state_dict(mode, path)
    expected = model.embed.W_E.shape
    if state_dict["embed.W_E"].shape != expected:
        raise RuntimeError(
            f"Weights at {path or weights_path(mode)} have embedding shape {tuple(state_dict['embed.W_E'].shape)}, "
            f"but a {mode} model needs {tuple(expected)}: is that file for another mode?"
        )
    if process:
        model.load_and_process_state_dict(
            state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True
        )
    else:
        model.load_state_dict(state_dict)
    model.set_use_attn_result(True)  # so that cache["result", layer] holds each head's output
    model.to(model.cfg.device, print_details=False)
    return model.eval()
