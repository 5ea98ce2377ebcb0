"""Fast tests of the grader's parts (no kernel): finding submissions, reading notebooks, rebuilding what a kernel
sends, finding the library version of an exercise and noticing a call to it, the records, the command line."""

from __future__ import annotations

import io
import os
import sys
import zipfile

import pytest
from pathlib import Path
import torch

import utils.checks  # noqa: F401
from utils import analysis, grade
from utils.checks.core import REGISTRY, Case
from utils.grading import kernel, records, reports, sandbox, scoring, submissions
from utils.grading.records import ExerciseRun, NotebookRun, Progress


def nb_bytes(tag: str = "") -> bytes:
    return ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "%s"}' % tag).encode()


# ---------------------------------------------------------------------------------------------------------
# Submissions: one row each, under a recognizable name, every skip and merge reported
# ---------------------------------------------------------------------------------------------------------


def test_names_that_clean_alike_stay_apart(tmp_path):
    for name in ["Bob Smith", "Bob_Smith", "bob smith", "Иван Петров", "Δημήτρης", "Дмитрий", "_underscore"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_dataset.ipynb").write_bytes(nb_bytes(name))
    subs, skipped = submissions.find_submissions(tmp_path)
    assert sorted(s.learner for s in subs) == sorted(
        ["Bob Smith", "Bob_Smith", "bob smith", "Иван Петров", "Δημήτρης", "Дмитрий", "_underscore"])
    keys = [s.key.casefold() for s in subs]
    assert len(set(keys)) == len(keys), keys  # distinct file names, even on a case-insensitive disk
    by = {s.learner: s for s in subs}
    assert by["Иван Петров"].key == "Иван_Петров" and by["Δημήτρης"].key == "Δημήτρης"  # other scripts kept
    for name in ("Bob Smith", "Bob_Smith", "bob smith"):
        assert by[name].key.startswith("Bob_Smith-") or by[name].key.startswith("bob_smith-")
        assert any(tag == "renamed" for tag, _ in by[name].notes)
    assert not skipped


def test_folder_and_zip_of_one_learner_are_merged_and_reported(tmp_path):
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "01_dataset.ipynb").write_bytes(nb_bytes("folder"))
    with zipfile.ZipFile(tmp_path / "carol.zip", "w") as zf:
        zf.writestr("work/02_model_loading.ipynb", nb_bytes("zip"))
    subs, _ = submissions.find_submissions(tmp_path)
    assert [s.learner for s in subs] == ["carol"]
    notebooks, problems = subs[0].read()
    assert sorted(notebooks) == ["01_dataset.ipynb", "02_model_loading.ipynb"]
    assert problems[0][0] == "merged" and "carol and carol.zip" in problems[0][1]


def test_second_download_name_and_newest_copy(tmp_path):
    d = tmp_path / "dave"
    d.mkdir()
    (d / "01_dataset.ipynb").write_bytes(nb_bytes("old"))
    (d / "01_dataset (1).ipynb").write_bytes(nb_bytes("new"))
    os.utime(d / "01_dataset.ipynb", (1_000_000, 1_000_000))
    (d / "03_position_frequencies (2).ipynb").write_bytes(nb_bytes("only"))
    notebooks, problems = submissions.Submission("dave", "dave", [d]).read()
    assert notebooks == {"01_dataset.ipynb": nb_bytes("new"), "03_position_frequencies.ipynb": nb_bytes("only")}
    assert [tag for tag, _ in problems] == ["duplicate"] and "01_dataset (1).ipynb" in problems[0][1]


def test_lms_folder_with_one_zip(tmp_path):
    d = tmp_path / "Erin Example_12345_assignsubmission_file_"
    d.mkdir()
    with zipfile.ZipFile(d / "submission.zip", "w") as zf:
        zf.writestr("notebooks/01_dataset.ipynb", nb_bytes())
        zf.writestr("__MACOSX/notebooks/._01_dataset.ipynb", "junk")
    subs, _ = submissions.find_submissions(tmp_path)
    notebooks, problems = subs[0].read()
    assert list(notebooks) == ["01_dataset.ipynb"] and not problems


def test_every_skip_is_reported(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    (tmp_path / "01_dataset.ipynb").write_bytes(nb_bytes())
    (tmp_path / ".DS_Store").write_text("")
    (tmp_path / "frank").mkdir()
    subs, skipped = submissions.find_submissions(tmp_path)
    assert [s.learner for s in subs] == ["frank"]
    assert len(skipped) == 3 and any("outside any learner's folder" in s for s in skipped)
    assert subs[0].read()[1][0][0] == "no-notebooks"


def test_zip_reading_is_safe(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("../../evil/01_dataset.ipynb", "{}")
        zf.writestr("a/.ipynb_checkpoints/02_model-checkpoint.ipynb", "{}")
        zf.writestr("readme.txt", "hi")
    notebooks, problems = grade.Submission("z", "z", [tmp_path / "z.zip"]).read()
    assert list(notebooks) == ["01_dataset.ipynb"] and not problems
    assert not (tmp_path.parent / "evil").exists()
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    assert grade.Submission("b", "b", [tmp_path / "bad.zip"]).read()[1][0][0] == "invalid-zip"


# ---------------------------------------------------------------------------------------------------------
# What a kernel sends is rebuilt before it is compared
# ---------------------------------------------------------------------------------------------------------


def saved(value) -> bytes:
    buf = io.BytesIO()
    torch.save({"status": "ok", "value": value}, buf)
    return buf.getvalue()


def test_planted_tensor_attributes_do_not_survive(tmp_path):
    """A wrong scalar with planted attributes (torch.load(weights_only=True) restores a tensor's __dict__) is
    rebuilt as a plain tensor and fails the comparison with an ordinary message."""
    wrong = torch.tensor(5.0)
    wrong.detach = torch.tensor(3.0)
    wrong.item = 3.0
    path = tmp_path / "0.pt"
    path.write_bytes(saved([wrong, {"k": wrong}]))
    record = scoring.load_answer(path, 2**20)
    got = record["value"]
    for t in (got[0], got[1]["k"]):
        assert type(t) is torch.Tensor and not t.__dict__ and t.item() == 5.0
    ex = REGISTRY["word_probabilities"]
    status, message = scoring.case_outcome(ex, Case(), [torch.tensor(3.0), {"k": torch.tensor(3.0)}], record)
    assert status == "fail" and "expected 3, got 5" in message, message
    naive = torch.load(path, weights_only=True)["value"][0]
    assert "detach" in naive.__dict__  # what the rebuild removes


def test_rebuild_refuses_other_types():
    with pytest.raises(TypeError):
        scoring.rebuild(object())
    assert scoring.rebuild((1, [2.5, "x", None, True], {"a": torch.ones(2)}))[1] == [2.5, "x", None, True]


def test_unreadable_and_oversized_answers(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"not a pickle")
    assert scoring.load_answer(tmp_path / "a.pt", 2**20)["status"] == "unreadable"
    (tmp_path / "b.pt").write_bytes(saved(torch.zeros(1000)))
    assert scoring.load_answer(tmp_path / "b.pt", 100)["status"] == "unreadable"


def test_answer_key_tells_apart_every_difference():
    """Two answers share a key (and so a cached outcome) only when they are the same values of the same types."""
    base = {"a": [1, 2.0, "x", None, True], "t": torch.tensor([1.0, 2.0])}
    variants = [
        {"a": [1, 2.0, "x", None, False], "t": torch.tensor([1.0, 2.0])},
        {"a": [True, 2.0, "x", None, True], "t": torch.tensor([1.0, 2.0])},  # True is not 1
        {"a": [1.0, 2.0, "x", None, True], "t": torch.tensor([1.0, 2.0])},  # nor is 1.0
        {"a": (1, 2.0, "x", None, True), "t": torch.tensor([1.0, 2.0])},  # a tuple is not a list
        {"t": torch.tensor([1.0, 2.0]), "a": [1, 2.0, "x", None, True]},  # key order
        {"a": [1, 2.0, "x", None, True], "t": torch.tensor([1.0, 2.0], dtype=torch.float64)},
        {"a": [1, 2.0, "x", None, True], "t": torch.tensor([[1.0, 2.0]])},
        {"a": [1, 2.0, "x", None, True], "t": torch.tensor([1.0, -0.0 + 2.0000002])},
        {"a": [[1, 2.0], "x", None, True], "t": torch.tensor([1.0, 2.0])},  # nesting
        {"a": [1, 2.0, "x\0", None, True], "t": torch.tensor([1.0, 2.0])},
    ]
    key = scoring.answer_key(base)
    assert scoring.answer_key(scoring.rebuild(base)) == key
    assert len({scoring.answer_key(v) for v in variants} | {key}) == len(variants) + 1
    assert scoring.answer_key([torch.tensor([0.0])]) != scoring.answer_key([torch.tensor([-0.0])])


def test_each_distinct_answer_is_compared_once_per_run(monkeypatch):
    """Learners who give the same answer share its outcome (a judgement exercise's fresh-data measurement runs once);
    a different answer is compared on its own; a comparison that raised is not kept."""
    import dataclasses

    calls = []

    def compare(expected, got, case):
        calls.append(got)
        if got == "boom":
            raise RuntimeError("x")
        return None if got == expected else f"expected {expected}"

    ex = dataclasses.replace(REGISTRY["rotate_text"], name="_counted", compare=compare, mistakes=())
    refs = scoring.References(0)
    refs._cache[ex.name] = ([Case(("a",)), Case(("b",))], ["right", "right"], "")
    ok = lambda v: {"status": "ok", "value": v}  # noqa: E731
    assert refs.outcome(ex, 0, ok("right")) == ("pass", "")
    assert refs.outcome(ex, 0, ok("right")) == ("pass", "") and len(calls) == 1
    assert refs.outcome(ex, 1, ok("right")) == ("pass", "") and len(calls) == 2  # another case
    assert refs.outcome(ex, 0, ok("wrong"))[0] == "fail" and len(calls) == 3
    assert refs.outcome(ex, 0, ok("boom"))[0] == "fail" and len(calls) == 4  # case_outcome reports it
    assert refs.outcome(ex, 0, {"status": "missing"})[0] == "missing" and len(calls) == 4
    monkeypatch.setattr(scoring, "diagnose", lambda *a: 1 / 0)  # the outcome raised: not kept
    with pytest.raises(ZeroDivisionError):
        refs.outcome(ex, 0, ok("other"))
    monkeypatch.setattr(scoring, "diagnose", lambda *a: "")
    assert refs.outcome(ex, 0, ok("other"))[0] == "fail" and len(calls) == 6


# ---------------------------------------------------------------------------------------------------------
# Library versions of exercises
# ---------------------------------------------------------------------------------------------------------


def test_library_versions_are_derived_from_the_references():
    assert scoring.library_versions(REGISTRY["first_char_probs"]) == [["utils.analysis", "first_char_probs"]]
    assert scoring.library_versions(REGISTRY["rotation_averaged_probs"]) == []  # written in utils/reference
    assert scoring.library_versions(REGISTRY["rotate_text"]) == []
    backed = [n for n, ex in REGISTRY.items() if scoring.library_versions(ex)]
    assert len(backed) >= 10  # about half the exercises (lessons 03-06)
    for name in backed:
        module, qualname = scoring.library_versions(REGISTRY[name])[0]
        assert module.startswith(scoring.LIBRARY_PREFIXES) and not module.startswith(scoring.NOT_LIBRARY), module
        assert callable(getattr(sys.modules[module], qualname))


def test_the_kernel_no_longer_watches_calls():
    """The library rule is decided outside the kernel (library_rule.py, tests/test_grade_library_rule.py): the
    kernel only calls the function and sends its output back."""
    assert not hasattr(kernel, "Watch") and not hasattr(kernel, "library_codes")
    ex = REGISTRY["letter_freqs_by_position"]
    case = ex.cases(0)[0]
    assert kernel.call_one(ex, analysis.letter_freqs_by_position, {"args": case.args, "kwargs": case.kwargs})["status"] == "ok"


def test_library_case_scores_zero_with_a_reason():
    ex = REGISTRY["first_char_probs"]
    entry = scoring.empty_entry(ex, 2)
    entry["cases"] = [{"case": "a", "status": "pass", "message": ""},
                      {"case": "b", "status": "library", "message": "your `first_char_probs` calls the course library"}]
    scoring.finish_entry(ex, entry, ["pass", "library"], ExerciseRun([None, None]))
    assert entry["score"] == 0 and "library" in entry["problem"]
    result = {"learner": "x", "exercises": {"first_char_probs": entry}, "problems": [],
              "notebooks": {"03_x.ipynb": {"lesson": "03"}}}
    reports.summarize(result)
    assert "library-version" in result["status"]
    assert "calls the course library" in reports.feedback_markdown(result)


# ---------------------------------------------------------------------------------------------------------
# Records, course copy, command line
# ---------------------------------------------------------------------------------------------------------


def test_progress_round_trip():
    p = Progress(notebooks={"01_x.ipynb": NotebookRun(exercises={"a": ExerciseRun(["0.pt", None], "slow")})}, done=True)
    back = records.progress_from_json(records.to_json(p))
    assert back == p and isinstance(back.notebooks["01_x.ipynb"].exercises["a"], ExerciseRun)


def test_course_copy_has_no_answers(tmp_path):
    course = sandbox.make_course(tmp_path / "course")
    every = {str(p.relative_to(course)) for p in course.rglob("*") if p.is_file()}
    files = {f for f in every if "__pycache__" not in f}
    assert not any("reference" in f for f in every)
    assert {f for f in files if f.startswith("utils/grading/")} == {f"utils/grading/{n}" for n in sandbox.KERNEL_SIDE}
    # byte-compiled by the grader for the kernels (which can't write there), and only what was copied
    compiled = {f.split("/__pycache__/")[0] + "/" + Path(f).name.split(".")[0] + ".py" for f in every - files}
    assert "utils/data.py" in compiled and compiled <= files
    assert "utils/grade.py" not in files and "utils/checks/core.py" in files and "data/model_card.json" in files


def test_points_table_is_the_registry():
    table = {n: (lesson, pts) for lesson, n, pts in grade.points_table()}
    assert table == {n: (ex.lesson, ex.points) for n, ex in REGISTRY.items()}


def test_cli_lists_points(capsys):
    assert grade.main(["--list"]) == 0
    assert "encode_tokens" in capsys.readouterr().out


def test_refuses_without_bwrap(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    (tmp_path / "subs").mkdir()
    assert grade.main([str(tmp_path / "subs"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bubblewrap" in err and "--no-sandbox" in err


def test_write_atomic(tmp_path):
    p = tmp_path / "a" / "x.json"
    grade.write_atomic(p, "1")
    grade.write_atomic(p, "2")
    assert p.read_text() == "2" and [q.name for q in p.parent.iterdir()] == ["x.json"]
