"""Shared test helpers: assert that a check accepts correct answers, rejects wrong ones, and names the mistake."""

from __future__ import annotations

from typing import Callable

import pytest

from utils.checks.core import ALSO, REGISTRY, CheckFailed, check, mistake_function

LIKELY = "Likely mistake:"


def accepts(name: str, fn: Callable, seeds=(0, 1)) -> None:
    """The check passes `fn` on every seed (it raises CheckFailed otherwise, so no "Likely mistake" either)."""
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


def mistake_message(name: str, mistake_name: str) -> str:
    matches = [m for m in REGISTRY[name].mistakes if m.name == mistake_name]
    assert matches, f"{name} has no catalogued mistake {mistake_name!r}"
    return matches[0].message


def diagnoses(name: str, wrong_fn: Callable, mistake_name: str, seed: int = 0) -> str:
    """The check rejects `wrong_fn` and its message names that mistake: the line "Likely mistake: <its message>",
    or, where other catalogued mistakes give the same outputs on every case, one of the lines that name each."""
    message = rejects(name, wrong_fn, seed=seed)
    text = mistake_message(name, mistake_name)
    lines = message.splitlines()
    assert any(line.startswith(LIKELY) for line in lines), f"no diagnosis in:\n{message}"
    assert f"{LIKELY} {text}" in lines or f"{ALSO} {text}" in lines, f"expected {text!r} named in:\n{message}"
    return message


def diagnosis_lines(message: str) -> list[str]:
    """The lines of a check's message that name catalogued mistakes."""
    return [line for line in message.splitlines() if line.startswith(LIKELY) or line.startswith(ALSO)]


def not_diagnosed(name: str, wrong_fn: Callable, seed: int = 0, match: str | None = None) -> str:
    """The check rejects `wrong_fn` without naming a catalogued mistake (for wrong answers outside the catalogue)."""
    message = rejects(name, wrong_fn, seed=seed, match=match)
    assert LIKELY not in message, message
    return message


def catalogue(lesson: str) -> list[tuple[str, str]]:
    """(exercise, mistake) for every catalogued mistake of a lesson ("04"), for pytest.mark.parametrize."""
    return [(ex.name, m.name) for ex in REGISTRY.values() if ex.lesson == lesson for m in ex.mistakes]


def catalogued(name: str, mistake_name: str) -> Callable:
    """The wrong implementation of a catalogued mistake (utils/reference/lessonNN_mistakes.py)."""
    exercise = REGISTRY[name]
    return mistake_function(exercise, [m for m in exercise.mistakes if m.name == mistake_name][0])


def reference_of(name: str) -> Callable:
    return REGISTRY[name].reference


def writes_into(fn: Callable, arg: int) -> Callable:
    """`fn`, but afterwards it also changes its positional argument `arg` in place (a tensor, or a dataset's toks):
    the output stays right, so only the in-place check can reject it."""

    def mutant(*args, **kwargs):
        out = fn(*args, **kwargs)
        target = args[arg].toks if hasattr(args[arg], "toks") else args[arg]
        if target.dtype.is_floating_point:
            target.mul_(1.5).add_(0.25)
        else:
            target.add_(1)
        return out

    return mutant


def headless_chromium():
    """A headless Chromium (utils/pages/browser.py) for the page tests, or a skip that says what to install."""
    from utils.pages.browser import Chromium, find_chromium

    if find_chromium() is None:
        pytest.skip("headless Chromium not found: install the Debian package `chromium` (apt-get install chromium)")
    pytest.importorskip("websocket", reason="needs websocket-client (installed with Jupyter)")
    return Chromium()
