"""Shared machinery of tests/test_checks_lesson01-03.py: every catalogued mistake is rejected and named by the
framework's diagnosis, in-place and state-leaving variants are rejected with a message that says so.
"""

from __future__ import annotations

import importlib

import pytest

from helpers import rejects
from utils.checks import core
from utils.checks.core import REGISTRY, CheckFailed, check

# The framework diagnoses (core.diagnose) and detects changed inputs and models (core.call_and_inspect): these
# names are imported, so that a framework without them fails here rather than skipping the assertions.
from utils.checks.core import call_and_inspect, diagnose  # noqa: E402,F401

DIAGNOSES = DETECTS_MUTATION = DETECTS_MODEL_STATE = True
NO_DIAGNOSIS = NO_MUTATION = NO_STATE = ""


def mistakes_module(lesson: str):
    return importlib.import_module(f"utils.reference.lesson{lesson}_mistakes")


def mistake_params(names: list[str]) -> list:
    return [pytest.param(n, m, id=f"{n}__{m.name}") for n in names for m in REGISTRY[n].mistakes]


def wrong_fn(lesson: str, name: str, mistake_name: str):
    return getattr(mistakes_module(lesson), f"{name}__{mistake_name}")


def assert_rejected(lesson: str, name: str, mistake) -> str:
    return rejects(name, wrong_fn(lesson, name, mistake.name))


def assert_named(lesson: str, name: str, mistake) -> None:
    message = assert_rejected(lesson, name, mistake)
    assert f"Likely mistake: {mistake.message}" in message, message


def assert_catalogue_complete(lesson: str, names: list[str]) -> None:
    """Each exercise has a catalogue, each entry has its wrong implementation, and every function of the mistakes
    module is catalogued (in-place variants are not mistakes of value but of side effect: tested separately)."""
    module = mistakes_module(lesson)
    catalogued = {f"{n}__{m.name}" for n in names for m in REGISTRY[n].mistakes}
    assert all(REGISTRY[n].mistakes for n in names), [n for n in names if not REGISTRY[n].mistakes]
    defined = {k for k, v in vars(module).items() if "__" in k and callable(v) and not k.startswith("_")}
    assert catalogued <= defined, catalogued - defined
    assert {d for d in defined if not d.endswith("__in_place")} <= catalogued, defined - catalogued
    for n in names:
        for m in REGISTRY[n].mistakes:
            assert m.message and "Likely mistake" not in m.message


def assert_side_effect_rejected(name: str, fn, detected: bool, reason: str, words: tuple[str, ...]) -> None:
    """`fn` returns right values but changes its inputs or the model: the check must reject it with a message that
    says so. (`detected` and `reason` are kept for the callers' signature.)"""
    with pytest.raises(CheckFailed) as info:
        check(name, fn, seed=0)
    assert any(w in str(info.value).lower() for w in words), str(info.value)


@pytest.fixture
def fresh_models():
    """Tests that damage a cached model rebuild it afterwards, so that no later test sees the damage."""
    yield
    core._build_ref.cache_clear()
