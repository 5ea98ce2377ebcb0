"""Finding every learner's submission and reading its notebooks.

SUBMISSIONS_DIR holds one entry per learner: a folder (notebooks at any depth, or zips inside, as an LMS
download gives) or a .zip. A folder and a zip with the same name are one learner (merged, and reported).
Every entry becomes exactly one row under the name the instructor sees in the folder; entries that are not
submissions are listed as skipped with the reason. Learners whose names clean to the same file name get
distinct file names (a short hash of the real name is appended) and the collision is reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import unicodedata
import zipfile
from pathlib import Path

MAX_NOTEBOOK_BYTES = 20 * 2**20  # a notebook file larger than this is not run
MAX_ZIP_BYTES = 200 * 2**20  # uncompressed notebooks read from one zip
NOTEBOOK_NAME = re.compile(r"^(\d\d)_(.*?)(?: ?\(\d+\)| copy(?: \d+)?)?\.ipynb$", re.IGNORECASE)
IGNORED_PARTS = (".ipynb_checkpoints", "__MACOSX")


def canonical_name(base: str) -> str | None:
    """'01_dataset (1).ipynb' (a browser's second download) -> '01_dataset.ipynb'; None if not NN_*.ipynb."""
    m = NOTEBOOK_NAME.match(base.strip())
    if not m or base.startswith("._"):
        return None
    return f"{m.group(1)}_{m.group(2).strip()}.ipynb"


def safe_name(name: str) -> str:
    """A file name for `name` that keeps letters of every script (NFC), replacing the rest by '_'."""
    name = unicodedata.normalize("NFC", name)
    return re.sub(r"[^\w.@+-]", "_", name).strip("._") or "learner"


@dataclasses.dataclass
class Candidate:
    name: str  # canonical file name (NN_*.ipynb)
    data: bytes
    mtime: float
    where: str  # where it was found, for reports


@dataclasses.dataclass
class Submission:
    learner: str  # the name the instructor sees (folder name, or zip name without .zip)
    key: str  # unique file-safe id: results/<key>.json, feedback/<key>.md
    paths: list[Path]
    notes: list[list[str]] = dataclasses.field(default_factory=list)  # merges and renames, reported

    def read(self) -> tuple[dict[str, bytes], list[list[str]]]:
        """The learner's notebooks {canonical file name: bytes}, one per lesson, and the problems found."""
        problems = [list(n) for n in self.notes]
        candidates: list[Candidate] = []
        for path in self.paths:
            if path.is_dir():
                read_folder(path, candidates, problems)
            else:
                read_zip(path, path.name, candidates, problems)
        chosen = choose_per_lesson(candidates, problems)
        if not chosen and not any(p[0] in ("invalid-zip", "invalid-notebook") for p in problems):
            problems.append(["no-notebooks", "no NN_*.ipynb notebook found in the submission"])
        return {c.name: c.data for c in chosen}, problems


def read_folder(folder: Path, out: list[Candidate], problems: list[list[str]]) -> None:
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or p.is_symlink() or any(part in IGNORED_PARTS for part in rel.parts):
            continue
        if p.suffix.lower() == ".zip":
            read_zip(p, str(rel), out, problems)
            continue
        name = canonical_name(p.name)
        if name is None:
            continue
        if p.stat().st_size > MAX_NOTEBOOK_BYTES:
            problems.append(["invalid-notebook", f"{rel} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB"])
            continue
        out.append(Candidate(name, p.read_bytes(), p.stat().st_mtime, str(rel)))


def read_zip(path: Path, where: str, out: list[Candidate], problems: list[list[str]]) -> None:
    """The NN_*.ipynb files in a zip (any depth; no extraction, so no path traversal; size-capped)."""
    try:
        with zipfile.ZipFile(path) as zf:
            total = 0
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                parts = info.filename.replace("\\", "/").split("/")
                name = canonical_name(parts[-1])
                if info.is_dir() or name is None or any(p in IGNORED_PARTS for p in parts):
                    continue
                total += info.file_size
                if info.file_size > MAX_NOTEBOOK_BYTES or total > MAX_ZIP_BYTES:
                    problems.append(["invalid-notebook", f"{where}: {info.filename} is too large"])
                    continue
                mtime = float(sum(v * m for v, m in zip(info.date_time, (3e7, 2.6e6, 8.7e4, 3600, 60, 1))))
                out.append(Candidate(name, zf.read(info), mtime, f"{where}: {info.filename}"))
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as e:
        problems.append(["invalid-zip", f"{where} is not a readable zip file ({e})"])


def choose_per_lesson(candidates: list[Candidate], problems: list[list[str]]) -> list[Candidate]:
    """One notebook per lesson: the newest (e.g. '01_dataset (1).ipynb', a second download); others reported."""
    by_lesson: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_lesson.setdefault(c.name[:2], []).append(c)
    chosen = []
    for lesson, group in sorted(by_lesson.items()):
        distinct = {hashlib.sha256(c.data).hexdigest(): c for c in sorted(group, key=lambda c: c.mtime)}
        best = max(group, key=lambda c: c.mtime)
        if len(distinct) > 1:
            others = ", ".join(c.where for c in group if c is not best)
            problems.append(["duplicate", f"{len(group)} notebooks for lesson {lesson}: graded the newest, "
                                          f"{best.where} (not {others})"])
        chosen.append(best)
    return chosen


# ---------------------------------------------------------------------------------------------------------
# The submissions folder
# ---------------------------------------------------------------------------------------------------------


def classify(p: Path) -> tuple[str | None, str]:
    """(learner name, "") for a submission entry, else (None, why it is skipped)."""
    if p.is_symlink():
        return None, "a symbolic link (copy the files instead)"
    if p.name.startswith(".") or p.name == "__MACOSX":
        return None, "a hidden or system entry"
    if p.is_dir():
        return p.name, ""
    if p.is_file() and p.suffix.lower() == ".zip":
        return p.name[: -len(p.suffix)], ""
    if p.is_file() and p.suffix.lower() == ".ipynb":
        return None, "a notebook outside any learner's folder (put each learner's notebooks in a folder or a zip)"
    return None, "not a folder or a .zip"


def find_submissions(submissions_dir: Path) -> tuple[list[Submission], list[str]]:
    """Every learner's submission (one each) and the entries skipped, each with the reason."""
    by_name: dict[str, list[Path]] = {}
    skipped = []
    for p in sorted(submissions_dir.iterdir()):
        name, why = classify(p)
        if name is None:
            skipped.append(f"{p.name}: skipped, {why}")
            continue
        by_name.setdefault(unicodedata.normalize("NFC", name), []).append(p)
    subs = []
    for name, paths in sorted(by_name.items()):
        notes = []
        if len(paths) > 1:
            notes.append(["merged", f"{' and '.join(p.name for p in paths)} are one learner: graded together"])
        subs.append(Submission(name, safe_name(name), paths, notes))
    assign_keys(subs)
    return subs, skipped


def assign_keys(subs: list[Submission]) -> None:
    """Learners whose names clean to the same file name (compared case-insensitively) get distinct keys."""
    groups: dict[str, list[Submission]] = {}
    for s in subs:
        groups.setdefault(s.key.casefold(), []).append(s)
    for group in groups.values():
        if len(group) < 2:
            continue
        names = ", ".join(repr(s.learner) for s in group)
        for s in group:
            s.key = f"{s.key}-{hashlib.sha256(s.learner.encode()).hexdigest()[:6]}"
            s.notes.append(["renamed", f"the names {names} give the same file name: this learner's files are {s.key}.*"])


def submission_hash(notebooks: dict[str, bytes], problems) -> str:
    h = hashlib.sha256()
    for name in sorted(notebooks):
        h.update(name.encode() + b"\0" + hashlib.sha256(notebooks[name]).digest())
    h.update(json.dumps(problems).encode())
    return h.hexdigest()
