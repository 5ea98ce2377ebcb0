"""Bad input never stops the batch, and reports escape what learners choose (issue 21, items 4 and 5).

Unit-level: the submissions reader, the report writers, and `build_reports` on results made here (no kernel)."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import zipfile
from pathlib import Path

import pytest

from utils.grading import reports, submissions
from utils.grading.reports import build_reports, csv_cell, feedback_markdown, md_text, summarize, terminal


def nb_bytes(tag: str = "") -> bytes:
    return ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "%s"}' % tag).encode()


def raw_zip_with_name(path: Path, name: bytes, data: bytes, utf8_flag: bool) -> None:
    """A one-member stored zip whose member name is the given bytes (zipfile itself always writes valid names)."""
    import zlib

    flags = 0x800 if utf8_flag else 0
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, 0, 0, 0, crc, len(data), len(data),
                          len(name), 0, 0, 0, 0, 0, 0)
    body = local + name + data
    cd = central + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(body), 0)
    path.write_bytes(body + cd + end)


# ---------------------------------------------------------------------------------------------------------
# Item 4: any bytes give a row with a message, never a crash
# ---------------------------------------------------------------------------------------------------------


def test_zip_member_names_that_are_not_utf8(tmp_path):
    raw_zip_with_name(tmp_path / "flagged.zip", b"01_dataset\xff\xfe.ipynb", nb_bytes(), utf8_flag=True)
    notebooks, problems = submissions.Submission("a", "a", [tmp_path / "flagged.zip"]).read()
    assert notebooks == {} and problems[0][0] == "invalid-zip" and "UTF-8" in problems[0][1]
    raw_zip_with_name(tmp_path / "legacy.zip", b"caf\xe9/01_dataset.ipynb", nb_bytes(), utf8_flag=False)
    notebooks, problems = submissions.Submission("b", "b", [tmp_path / "legacy.zip"]).read()
    assert list(notebooks) == ["01_dataset.ipynb"] and not problems


def test_a_corrupt_deflate_byte_costs_that_notebook_only(tmp_path):
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("01_dataset.ipynb", nb_bytes("x" * 2000) * 5)
        zf.writestr("02_model_loading.ipynb", nb_bytes("ok"))
    data = bytearray(path.read_bytes())
    start = data.index(b"01_dataset.ipynb") + len("01_dataset.ipynb")
    for i in range(start + 5, start + 25):  # inside the first member's deflate stream
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))
    notebooks, problems = submissions.Submission("z", "z", [path]).read()
    assert list(notebooks) == ["02_model_loading.ipynb"]
    assert [t for t, _ in problems] == ["invalid-notebook"] and "01_dataset.ipynb" in problems[0][1]


def test_truncated_and_empty_zips(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as zf:
        zf.writestr("01_dataset.ipynb", nb_bytes())
    (tmp_path / "t.zip").write_bytes((tmp_path / "t.zip").read_bytes()[:40])
    (tmp_path / "e.zip").write_bytes(b"")
    for name in ("t.zip", "e.zip"):
        notebooks, problems = submissions.Submission(name, name, [tmp_path / name]).read()
        assert notebooks == {} and problems[0][0] == "invalid-zip"


def latin1_dir(root: Path, raw: bytes) -> Path:
    path = Path(os.fsdecode(root).encode() and os.fsdecode(os.fsencode(root) + b"/" + raw))
    path.mkdir()
    return path


def test_latin1_folder_names_get_rows_and_reports(tmp_path):
    subs_dir, out = tmp_path / "subs", tmp_path / "out"
    subs_dir.mkdir()
    for raw in (b"Ren\xe9e", b"Ren\xe8e", b"Ren\xc3\xa9e"):  # two Latin-1 names and the UTF-8 'Renée'
        d = latin1_dir(subs_dir, raw)
        (d / "01_dataset.ipynb").write_bytes(nb_bytes())
        inner = Path(os.fsdecode(os.fsencode(d) + b"/sub\xff"))
        inner.mkdir()
        (inner / "02_model_loading.ipynb").write_bytes(nb_bytes())
    subs, skipped = submissions.find_submissions(subs_dir)
    names = sorted(s.learner for s in subs)
    assert names == ["Ren\\xe8e", "Ren\\xe9e", "Renée"] and not skipped  # distinct, shown with the bytes escaped
    assert len({s.key.casefold() for s in subs}) == 3
    results = []
    for s in subs:
        notebooks, problems = s.read()
        assert sorted(notebooks) == ["01_dataset.ipynb", "02_model_loading.ipynb"], problems
        results.append(fake_result(s.learner, s.key, problems))
    write_results(out, results)
    build_reports(out, [s.key for s in subs])
    assert set(json.loads((out / "grades.json").read_text())) == set(names)
    assert len(list(csv.reader(io.StringIO((out / "grades.csv").read_text())))) == 4
    assert len(list((out / "feedback").glob("*.md"))) == 3


def test_a_learners_uploads_are_capped_in_total(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_SUBMISSION_BYTES", 3000)
    d = tmp_path / "many"
    d.mkdir()
    for i in range(5):  # five zips of ~1 kB each, every one a different lesson
        with zipfile.ZipFile(d / f"part{i}.zip", "w") as zf:
            zf.writestr(f"0{i + 1}_x.ipynb", nb_bytes("y" * 1000))
    sub = submissions.Submission("many", "many", [d])
    original = submissions.Budget.__init__.__defaults__
    monkeypatch.setattr(submissions.Budget.__init__, "__defaults__", (3000, original[1]))
    notebooks, problems = sub.read()
    assert 1 <= len(notebooks) <= 2 and ["too-large"] == [t for t, _ in problems if t == "too-large"]


def test_too_many_files_are_not_walked(tmp_path, monkeypatch):
    d = tmp_path / "deep"
    d.mkdir()
    for i in range(30):
        (d / f"junk{i}.txt").write_text("")
    monkeypatch.setattr(submissions.Budget.__init__, "__defaults__", (2**20, 10))
    notebooks, problems = submissions.Submission("deep", "deep", [d]).read()
    assert problems[0][0] == "too-large"


def test_renamed_keys_never_meet_another_learners_key(tmp_path):
    import hashlib

    digest = hashlib.sha256("Bob Smith".encode()).hexdigest()[:6]
    for name in ["Bob Smith", "Bob_Smith", f"Bob_Smith-{digest}"]:  # the third is what the first is renamed to
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_dataset.ipynb").write_bytes(nb_bytes(name))
    subs, _ = submissions.find_submissions(tmp_path)
    keys = [s.key.casefold() for s in subs]
    assert len(set(keys)) == 3, keys
    assert {s.learner for s in subs} == {"Bob Smith", "Bob_Smith", f"Bob_Smith-{digest}"}  # original names in rows


def test_long_names_give_short_distinct_keys(tmp_path):
    for c in "ab":
        (tmp_path / ("x" * 200 + c)).mkdir()
    subs, _ = submissions.find_submissions(tmp_path)
    assert len({s.key for s in subs}) == 2 and all(len(s.key) < 100 for s in subs)


# ---------------------------------------------------------------------------------------------------------
# Item 5: what learners choose is escaped for CSV, Markdown and the terminal
# ---------------------------------------------------------------------------------------------------------

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2", "@SUM(A1:A9)", "\tx", "\rx",
           "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))",
           "\x1b[2J\x1b]0;pwned\x07name"]


def fake_result(learner: str, key: str, problems=()) -> dict:
    r = {"learner": learner, "key": key, "exercises": {}, "notebooks": {"01_x.ipynb": {"lesson": "01", "cell_errors": [
        {"cell": 3, "error": "ValueError: <img src=x onerror=alert(1)> ```\n# heading"}]}},
         "problems": [list(p) for p in problems] + [["invalid-notebook", "<script>x</script> [a](javascript:b)"]]}
    summarize(r)
    return r


def write_results(out: Path, results: list[dict]) -> None:
    (out / "results").mkdir(parents=True)
    for r in results:
        (out / "results" / f"{r['key']}.json").write_text(json.dumps(r))


def test_csv_cells_never_start_a_formula(tmp_path):
    results = [fake_result(name, f"k{i}") for i, name in enumerate(HOSTILE)]
    rows = list(csv.reader(io.StringIO(reports.grades_csv(results))))[1:]
    for row, name in zip(rows, HOSTILE):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
            assert "\x1b" not in cell
        assert row[0].lstrip("'").replace("\\x1b", "\x1b").replace("\\x07", "\x07").replace("\\t", "\t") \
            .replace("\\r", "\r") == name  # the original name, kept
    assert csv_cell("-1") == "'-1" and csv_cell(3) == 3


def test_feedback_markdown_is_escaped():
    for name in HOSTILE:
        md = feedback_markdown(fake_result(name, "k"))
        for raw in ("<script", "<img", "](javascript", "\x1b"):
            assert raw not in md, (raw, md)
    md = feedback_markdown(fake_result("x", "k"))
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in md
    assert md_text("a\n# b") == "a \\# b"  # one line: no heading, no new block


def test_a_message_cannot_close_its_code_fence():
    from utils.checks.core import REGISTRY

    name = next(iter(REGISTRY))
    e = {"lesson": "01", "points": 1, "score": 0, "passed": 0, "total": 1,
         "cases": [{"case": "`x`", "status": "fail", "message": "```\n<script>alert(1)</script>\n```"}]}
    lines = reports.exercise_feedback(name, e)
    fence = next(line for line in lines if line.startswith("```"))
    assert len(fence) >= 4 and lines.count(fence) == 2


def test_terminal_text_has_no_control_characters():
    assert terminal("\x1b[31mred\x1b[0m \x1b]0;title\x07ok\x07\x9b\u202e!") == "red ok!"
    assert terminal("a\nb\rc") == "a bc"


def test_a_hostile_submissions_folder_grades_to_the_end(tmp_path, capsys):
    """End to end without kernels (no readable notebook anywhere): every entry gets a row with a message, the
    reports are escaped, and nothing raw reaches the terminal."""
    from utils import grade

    subs = tmp_path / "subs"
    subs.mkdir()
    latin = Path(os.fsdecode(os.fsencode(subs) + b"/Jos\xe9"))
    latin.mkdir()
    raw_zip_with_name(latin / "work.zip", b"01_dataset\xff.ipynb", nb_bytes(), utf8_flag=True)
    (subs / '=HYPERLINK("x","click")').mkdir()
    with zipfile.ZipFile(subs / '=HYPERLINK("x","click")' / "a.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("01_dataset.ipynb", nb_bytes("x" * 3000))
    data = bytearray((subs / '=HYPERLINK("x","click")' / "a.zip").read_bytes())
    data[60] ^= 0xFF  # a corrupt deflate byte
    (subs / '=HYPERLINK("x","click")' / "a.zip").write_bytes(bytes(data))
    (subs / "\x1b[31mred<script>").mkdir()
    out = tmp_path / "out"
    assert grade.main([str(subs), "--out", str(out), "--no-sandbox"]) == 0
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert len(rows) == 4 and all(not c.startswith(("=", "+", "-", "@")) for row in rows for c in row)
    learners = set(json.loads((out / "grades.json").read_text()))
    assert learners == {"Jos\\xe9", '=HYPERLINK("x","click")', "\x1b[31mred<script>"}
    for md in (out / "feedback").glob("*.md"):
        assert "<script" not in md.read_text() and "\x1b" not in md.read_text()
    captured = capsys.readouterr()
    assert "\x1b[31m" not in captured.out + captured.err
