"""The generic behaviour of every learner check (utils.checks.core): side effects, types, messages, diagnosis."""

import numpy as np
import pytest
import torch

from helpers import LIKELY, accepts, not_diagnosed, rejects
from utils.checks import core
from utils.checks.core import REGISTRY, Case, CheckFailed, Exercise, Mistake, Ref, check, diagnose, register


@pytest.fixture
def exercise():
    """Register a throw-away exercise (lesson "99") and remove it afterwards."""
    names = []

    def make(name, reference, cases, **kwargs):
        names.append(name)
        return register(Exercise(name, "99", reference, lambda seed: cases, **kwargs))

    yield make
    for name in names:
        REGISTRY.pop(name, None)


def _vec():
    return torch.arange(6, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------------
# Mutation of inputs
# ---------------------------------------------------------------------------------------------------------


def test_in_place_change_of_an_input_tensor_fails_with_its_name(exercise):
    exercise("_double", lambda x: x * 2, [Case((_vec(),))])
    accepts("_double", lambda x: x + x)

    def in_place(x):
        x *= 2
        return x

    message = rejects("_double", in_place, match="changed its input `x` in place")
    assert "clone" in message
    assert f"{LIKELY} an in-place operation on an input" in message  # the cause, named (tests/test_checks_causes.py)


def test_in_place_change_of_a_list_or_dict_fails(exercise):
    exercise("_sorted", lambda xs: sorted(xs), [Case(([3, 1, 2],))])
    exercise("_keys", lambda d: sorted(d), [Case(({"b": 1, "a": 2},))])

    def sort_in_place(xs):
        xs.sort()
        return xs

    def pop_key(d):
        out = sorted(d)
        d.pop("a")
        return out

    rejects("_sorted", sort_in_place, match="changed the list `xs`")
    rejects("_keys", pop_key, match="changed the dict `d`")


def test_changed_attribute_of_a_dataset_fails(exercise):
    exercise("_first_label", lambda ds: int(ds.labels[0]), [Case((Ref("dataset", "easy", 10, 0),))])

    def overwrite(ds):
        ds.labels = ds.labels + 1
        return int(ds.labels[0]) - 1

    def write_into(ds):
        ds.toks[0, 0] = 99
        return int(ds.labels[0])

    accepts("_first_label", lambda ds: int(ds.labels[0].item()))
    rejects("_first_label", overwrite, match="attribute(s) labels of `ds`")
    rejects("_first_label", write_into, match="`ds.toks` in place")


def test_every_call_gets_fresh_inputs():
    ref = Ref("model", "easy")
    model, again = core.materialize((ref, ref))
    assert model is again  # one case: one model
    assert model is not core.materialize(ref) and model is not core._build_ref(ref)  # never the cached one


# ---------------------------------------------------------------------------------------------------------
# State left on a model, and torch's global state
# ---------------------------------------------------------------------------------------------------------


TOKS = torch.randint(0, 27, (3, 8), generator=torch.Generator().manual_seed(0))


def _logits(model, toks):
    with torch.inference_mode():
        return model(toks)


def _left_hook(model, toks):
    model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z)  # harmless, but never removed
    return _logits(model, toks)


def _zeroed_head(model, toks):
    with torch.no_grad():
        model.blocks[0].attn.W_O[1] = 0.0  # (model.W_O is a stacked copy: writing there changes nothing)
    out = _logits(model, toks)
    return out


def _zeroed_head_restored_output(model, toks):
    out = _logits(model, toks)  # the right answer, computed first ...
    with torch.no_grad():
        model.blocks[0].attn.W_O[1] = 0.0  # ... then the model is damaged anyway
    return out


def _train_mode(model, toks):
    model.train()
    return _logits(model, toks)


def _pytorch_hook(model, toks):
    model.blocks[0].register_forward_hook(lambda module, args, out: out)
    return _logits(model, toks)


def _frozen(model, toks):
    model.W_U.requires_grad_(False)  # model.W_U is the parameter itself (W_O is a stacked copy)
    return _logits(model, toks)


def _config_change(model, toks):
    model.set_use_attn_result(False)
    return _logits(model, toks)


@pytest.mark.parametrize("wrong, match", [
    (_left_hook, "left 1 hook(s)"),
    (_pytorch_hook, "left 1 hook(s)"),
    (_zeroed_head, "weights of `model` changed (blocks.0.attn.W_O)"),
    (_zeroed_head_restored_output, "weights of `model` changed"),
    (_train_mode, "in training mode"),
    (_config_change, "use_attn_result"),
    (_frozen, "require gradients"),
])
def test_state_left_on_the_model_fails_and_does_not_reach_later_checks(exercise, wrong, match):
    exercise("_logits", _logits, [Case((Ref("model", "easy"), TOKS), label="easy model")])
    pristine = {k: v.clone() for k, v in core._build_ref(Ref("model", "easy")).state_dict().items()}
    rejects("_logits", wrong, match=match)
    accepts("_logits", _logits, seeds=(0,))  # the next check sees an intact model
    cached = core._build_ref(Ref("model", "easy"))
    assert all(torch.equal(v, pristine[k]) for k, v in cached.state_dict().items())
    assert not core._module_hooks(cached) and not cached.training


def test_reference_is_computed_on_its_own_model(exercise):
    """A learner that damages the model and returns the damaged output must not match a damaged reference."""
    exercise("_logits2", _logits, [Case((Ref("model", "easy"), TOKS))])
    message = rejects("_logits2", _zeroed_head)
    assert "values differ" in message and "weights" in message


def test_global_torch_settings_are_reported_and_restored(exercise):
    exercise("_sum", lambda x: x.sum(), [Case((_vec(),))])

    def no_grad_forever(x):
        torch.set_grad_enabled(False)
        return x.sum()

    def default_double(x):
        torch.set_default_dtype(torch.float64)
        return x.sum()

    rejects("_sum", no_grad_forever, match="gradients disabled")
    assert torch.is_grad_enabled()
    rejects("_sum", default_double, match="default dtype")
    assert torch.get_default_dtype() == torch.float32


# ---------------------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------------------


def test_strict_types_want_python_numbers(exercise):
    exercise("_mean", lambda x: x.mean().item(), [Case((_vec(),))], strict_types=True)
    exercise("_count", lambda x: int((x > 2).sum()), [Case((_vec(),))], strict_types=True)
    exercise("_loose_mean", lambda x: x.mean().item(), [Case((_vec(),))])
    accepts("_mean", lambda x: float(sum(x.tolist()) / len(x)))
    accepts("_mean", lambda x: np.float32(x.mean().item()))  # numpy scalars behave as numbers
    accepts("_count", lambda x: sum(v > 2 for v in x.tolist()))
    rejects("_mean", lambda x: x.mean(), match="return x.item()")
    rejects("_count", lambda x: float((x > 2).sum()), match="expected an int")
    rejects("_count", lambda x: (x > 2).sum(), match="Python number")
    accepts("_loose_mean", lambda x: x.mean())  # without strict_types a 0-d tensor still passes


def test_sets_compare_as_sets(exercise):
    exercise("_set", lambda x: {int(v) for v in x if v > 3}, [Case((_vec(),))], strict_types=True)
    accepts("_set", lambda x: frozenset([4, 5]))
    rejects("_set", lambda x: [4, 5], match="expected a set")
    rejects("_set", lambda x: {torch.tensor(4), torch.tensor(5)}, match=".item()")
    rejects("_set", lambda x: {4}, match="expected [4, 5]")


# ---------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------


def test_transformed_comparison_shows_what_the_learner_returned(exercise):
    logprobs = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64).log()
    exercise("_logprobs", lambda: logprobs.clone(), [Case(())], transform=torch.exp)
    accepts("_logprobs", lambda: torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64).log() + 1e-9)
    message = rejects("_logprobs", lambda: logprobs.exp())  # probabilities instead of log-probs
    assert "expected -0.693147, got 0.5" in message, message
    assert "compared after exp" in message


def test_steps_report_the_first_that_differs(exercise):
    steps = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "logits": _vec()}
    exercise("_load", lambda: dict(steps), [Case(())],
             explain={"center_unembed": "the unembedding is not centred (center_unembed)"})
    message = rejects("_load", lambda: {**steps, "center_unembed": False, "logits": _vec() + 1})
    assert "Problem: the unembedding is not centred (center_unembed)" in message


def test_learner_exception_is_reported_with_its_line(exercise):
    exercise("_double2", lambda x: x * 2, [Case((_vec(),))])
    rejects("_double2", lambda x: x @ torch.ones(3), match="your function raised RuntimeError")


# ---------------------------------------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------------------------------------

_MISTAKES = {
    "_halve__times_two": lambda x: x * 2,
    "_halve__floor": lambda x: x // 2,
    "_halve__broken": lambda x: 1 / 0,  # a catalogued mistake that raises is skipped, never a crash
}


@pytest.fixture
def halve(exercise, monkeypatch):
    monkeypatch.setattr(core, "mistake_function", lambda ex, m: _MISTAKES[f"{ex.name}__{m.name}"])
    mistakes = (Mistake("broken", "never shown"), Mistake("times_two", "you multiply by 2: look at the operator."),
                Mistake("floor", "integer division drops the halves: look at the operator."))
    cases = [Case((torch.tensor([1.0, 3.0, 4.0]),)), Case((torch.tensor([5.0, -1.0]),))]
    return exercise("_halve", lambda x: x / 2, cases, mistakes=mistakes)


def test_a_matched_mistake_is_named_on_its_own_line(halve):
    message = rejects("_halve", lambda x: x + x)
    assert "Likely mistake: you multiply by 2: look at the operator." in message.splitlines()
    message = rejects("_halve", lambda x: torch.div(x, 2, rounding_mode="floor"))
    assert "Likely mistake: integer division drops the halves: look at the operator." in message.splitlines()


def test_no_diagnosis_for_correct_or_unmatched_answers(halve, capsys):
    accepts("_halve", lambda x: x * 0.5)
    assert LIKELY not in capsys.readouterr().out
    not_diagnosed("_halve", lambda x: x / 3)
    not_diagnosed("_halve", lambda x: x.sum())


def test_diagnose_for_the_grader(halve):
    case = halve.cases(0)[0]
    assert diagnose("_halve", case, torch.tensor([2.0, 6.0, 8.0])) == "Likely mistake: you multiply by 2: look at the operator."
    assert diagnose(halve, case, torch.tensor([0.0, 0.0, 0.0])) is None
    assert diagnose(halve, case, halve.expected(case) + 7) is None


def test_diagnosis_is_silent_where_the_catalogue_is_absent(halve, monkeypatch):
    def missing(ex, m):
        raise ModuleNotFoundError("no utils.reference in a learner's sandbox")

    monkeypatch.setattr(core, "mistake_function", missing)
    not_diagnosed("_halve", lambda x: x * 2)


def test_every_catalogued_mistake_has_its_implementation():
    """For every lesson: each Mistake names a function `<exercise>__<name>` in utils/reference/lessonNN_mistakes.py."""
    for ex in REGISTRY.values():
        for mistake in ex.mistakes:
            assert callable(core.mistake_function(ex, mistake)), (ex.name, mistake.name)
        assert len({m.name for m in ex.mistakes}) == len(ex.mistakes), f"{ex.name}: two mistakes share a name"
        assert all(m.message and not m.message.startswith("Likely") for m in ex.mistakes)


def test_the_grader_names_keep_working():
    for name in ("REGISTRY", "Exercise", "Case", "Ref", "materialize", "call_learner", "run_cases", "format_failure",
                 "diagnose", "call_and_inspect", "check", "make_test", "reference", "register", "Mistake"):
        assert hasattr(core, name), name
    ex = REGISTRY["loss_per_position"]
    case = ex.cases(0)[0]
    exp = ex.expected(case)
    assert ex.check_output(case, exp, core.call_learner(ex.reference, case)) is None
    value, problems = core.call_and_inspect(ex.reference, case.args, case.kwargs)
    assert problems == [] and ex.check_output(case, exp, value) is None
    with pytest.raises(CheckFailed):
        check("loss_per_position", lambda logits, labels: exp * 0, seed=0)
