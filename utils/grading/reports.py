"""The reports an instructor reads: grades.csv (one row per learner), grades.json (every case and message),
feedback/<learner>.md (for the learner) and skipped.txt (entries of the submissions folder not graded, and why).

Learners choose their names, file names and error messages, so every report escapes them for where it goes:
CSV cells that a spreadsheet would read as a formula get a leading apostrophe (OWASP's CSV-injection rule),
Markdown gets text with HTML and Markdown syntax escaped and code in fences no content can close, and the
terminal gets text without control characters or escape sequences (`terminal`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
from pathlib import Path

from ..checks.core import REGISTRY
from .scoring import points_table

INFO_TAGS = ("merged", "renamed", "copied-library")  # reported in the notes; the learner's status stays "ok"
INSTRUCTOR_ONLY = ("copied-library",)  # in grades.csv's notes, not in the learner's feedback

ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\\\)?|[@-Z\\-_])")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~!<>&])")
HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def terminal(text: str) -> str:
    """`text` safe to print: escape sequences removed, other control characters (and bidi overrides) dropped."""
    return CONTROL.sub("", ESCAPE_SEQUENCE.sub("", str(text)).replace("\n", " ").replace("\t", " "))


def visible(text: str) -> str:
    """Control characters shown as escapes (\\x1b), so a name keeps every character but none acts."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text).replace("\n", "\\n"))


def csv_cell(value) -> str:
    """A text cell no spreadsheet reads as a formula (OWASP: prefix =, +, -, @, tab, CR with an apostrophe)."""
    text = visible(value) if isinstance(value, str) else value
    if isinstance(text, str) and text.startswith(FORMULA_START):
        return "'" + text
    return text


def md_text(text) -> str:
    """Plain text in Markdown: one line, HTML and Markdown syntax escaped (no tag, link or image survives)."""
    one_line = visible(" ".join(str(text).split()))
    return MARKDOWN_SPECIAL.sub(lambda m: HTML_ENTITIES.get(m.group(1), "\\" + m.group(1)), one_line)


def md_code(text) -> str:
    """An inline code span that no backtick in `text` can close."""
    one_line = visible(" ".join(str(text).split()))
    ticks = "`" * (max((len(r) for r in re.findall("`+", one_line)), default=0) + 1)
    return f"{ticks} {one_line} {ticks}" if "`" in one_line else f"{ticks}{one_line}{ticks}"


def md_block(text) -> list[str]:
    """A fenced code block that no line of `text` can close."""
    body = CONTROL.sub("", ESCAPE_SEQUENCE.sub("", str(text)))
    fence = "`" * max(3, max((len(r) for r in re.findall("`+", body)), default=0) + 1)
    return [fence, body, fence]


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary file next to `path`, then os.replace it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")  # a lone surrogate from a learner's message
    os.replace(tmp, path)


def summarize(result: dict) -> None:
    """Fill total, max, status and notes of a learner's result."""
    table = points_table()
    result["max"] = sum(p for *_, p in table)
    result["total"] = round(sum(e["score"] for e in result["exercises"].values()), 2)
    tags = []
    for tag, _ in result["problems"]:
        if tag not in tags and tag not in INFO_TAGS:
            tags.append(tag)
    if any(e.get("grader_error") for e in result["exercises"].values()) and "grader-error" not in tags:
        tags.append("grader-error")
    if any(e.get("library") or any(c["status"] == "library" for c in e["cases"]) for e in result["exercises"].values()):
        tags.append("library-version")
    result["status"] = "ok" if not tags else " ".join(tags)
    notes = [msg for _, msg in result["problems"]]
    submitted = {nb["lesson"] for nb in result["notebooks"].values()}
    missing = sorted({lesson for lesson, *_ in table} - submitted)
    if missing:
        notes.append("no notebook for lesson(s) " + ", ".join(missing))
    result["notes"] = "; ".join(dict.fromkeys(notes))


def exercise_feedback(name: str, e: dict) -> list[str]:
    lines = [f"### {md_code(name)}"]
    if e.get("problem"):
        lines.append(md_text(f"{e['problem'][0].upper()}{e['problem'][1:]}."))
        if e["problem"] in ("not implemented", "function not defined"):
            return lines + [""]
    failed = [c for c in e["cases"] if c["status"] != "pass"]
    if failed and failed[0]["status"] != "library":
        first = failed[0]
        lines += [f"Failed {len(failed)} of {e['total']} test cases. First failing input: {md_code(first['case'])}", "",
                  *md_block(first["message"])]
        hint = REGISTRY[name].hint if name in REGISTRY else ""
        if hint:
            lines.append(f"Hint: {md_text(hint)}")
    return lines + [""]


def feedback_markdown(result: dict) -> str:
    lines = [f"# Grading feedback: {md_text(result['learner'])}", "",
             f"**Total: {result['total']:g} / {result['max']:g} points.**", ""]
    if any(tag not in INSTRUCTOR_ONLY for tag, _ in result["problems"]):
        lines.append("Problems while running your notebooks:")
        lines += [f"- {md_text(msg)}" for tag, msg in dict.fromkeys(map(tuple, result["problems"]))
                  if tag not in INSTRUCTOR_ONLY]
        lines.append("")
    by_lesson: dict[str, list[str]] = {}
    for lesson, name, _ in points_table():
        by_lesson.setdefault(lesson, []).append(name)
    notebooks = {nb["lesson"]: (file, nb) for file, nb in result["notebooks"].items()}
    for lesson, names in by_lesson.items():
        if lesson not in notebooks:
            lines += [f"## Lesson {lesson}", "", "Not submitted.", ""]
            continue
        file, nb = notebooks[lesson]
        lines += [f"## Lesson {lesson} ({md_code(file)})", ""]
        lines += [f"- code cell {err['cell']} raised {md_text(err['error'].rstrip(': '))}"
                  for err in nb.get("cell_errors", [])[:10]]
        if nb.get("cell_errors"):
            lines.append("")
        lines += ["| exercise | points | tests passed |", "| --- | --- | --- |"]
        for name in names:
            e = result["exercises"].get(name)
            if e:
                lines.append(f"| {md_code(name)} | {e['score']:g} / {e['points']:g} | {e['passed']} / {e['total']} |")
        lines.append("")
        for name in names:
            e = result["exercises"].get(name)
            if e and (e["passed"] < e["total"] or e["score"] < e["points"]):
                lines += exercise_feedback(name, e)
    return "\n".join(lines).rstrip() + "\n"


def grades_csv(results: list[dict]) -> str:
    names = [name for _, name, _ in points_table()]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["learner", *names, "total", "max", "status", "notes", "file"])
    for r in results:
        cells = ["" if r["exercises"].get(n) is None else f"{r['exercises'][n]['score']:g}" for n in names]
        row = [r["learner"], *cells, f"{r['total']:g}", f"{r['max']:g}", r["status"], r["notes"], r.get("key", r["learner"])]
        writer.writerow([csv_cell(c) for c in row])
    return buf.getvalue()


def build_reports(out: Path, keys: list[str], skipped: list[str] = ()) -> list[dict]:
    """grades.csv, grades.json, feedback/*.md and skipped.txt from the per-learner results of `keys`."""
    results = []
    for key in keys:
        try:
            results.append(json.loads((out / "results" / f"{key}.json").read_text()))
        except (OSError, ValueError):
            continue
    write_atomic(out / "grades.csv", grades_csv(results))
    by_learner: dict[str, dict] = {}
    for r in results:  # names are distinct (submissions.display_name); never let one row replace another
        by_learner[r["learner"] if r["learner"] not in by_learner else f"{r['learner']} ({r.get('key')})"] = r
    write_atomic(out / "grades.json", json.dumps(by_learner, indent=1))
    for r in results:
        write_atomic(out / "feedback" / f"{r.get('key', r['learner'])}.md", feedback_markdown(r))
    write_atomic(out / "skipped.txt", "".join(f"{line}\n" for line in skipped))
    return results
