"""Shared test helpers: assert that a check accepts the reference and rejects a wrong answer."""

from __future__ import annotations

from typing import Callable

import pytest

from utils.checks.core import REGISTRY, CheckFailed, check


def accepts(name: str, fn: Callable, seeds=(0, 1)) -> None:
    for seed in seeds:
        check(name, fn, seed=seed)


def rejects(name: str, fn: Callable, seed: int = 0, match: str | None = None) -> str:
    """The check must raise CheckFailed for `fn`; returns the message (optionally matched)."""
    with pytest.raises(CheckFailed) as info:
        check(name, fn, seed=seed)
    message = str(info.value)
    assert name in message
    if match:
        assert match in message, message
    return message


def reference_of(name: str) -> Callable:
    return REGISTRY[name].reference
