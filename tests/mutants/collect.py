"""What a held-out set (heldout3.py, heldout4.py) fills: its lists of wrong and right answers, and the decorators
that fill them."""

from __future__ import annotations

from typing import Callable


class HeldOut:
    """`WRONG`: (exercise, id, function, cause), `cause` the set's own words for the mistake; `RIGHT`: (exercise, id,
    function), answers that must pass."""

    def __init__(self) -> None:
        self.WRONG: list[tuple[str, str, Callable, str]] = []
        self.RIGHT: list[tuple[str, str, Callable]] = []

    def wrong(self, exercise: str, cause: str) -> Callable[[Callable], Callable]:
        def add(fn: Callable) -> Callable:
            self.WRONG.append((exercise, fn.__name__, fn, cause))
            return fn
        return add

    def right(self, exercise: str) -> Callable[[Callable], Callable]:
        def add(fn: Callable) -> Callable:
            self.RIGHT.append((exercise, fn.__name__, fn))
            return fn
        return add
