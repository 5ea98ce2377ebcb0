"""Finding every learner's submission and reading its notebooks.

SUBMISSIONS_DIR holds one entry per learner: a folder (notebooks at any depth, or zips inside, as an LMS
download gives) or a .zip. A folder and a zip with the same name are one learner (merged, and reported).
Every entry becomes exactly one row under the name the instructor sees in the folder; entries that are not
submissions are listed as skipped with the reason. Learners whose names clean to the same file name get
distinct file names (a short hash of the real name is appended) and the collision is reported.

Nothing in a submission stops the batch: a name that is not UTF-8 (a folder named in Latin-1, a zip entry
without the UTF-8 flag or with bad bytes under it) is shown with its undecodable bytes escaped (`caf\\xe9`); an
unreadable entry, a corrupt deflate stream or a CRC error costs that notebook, with a message; and a learner's
uploads are read up to MAX_SUBMISSION_BYTES in all (several zips cost no more than one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import unicodedata
import zipfile
from pathlib import Path

MAX_NOTEBOOK_BYTES = 20 * 2**20  # a notebook file larger than this is not run
MAX_ZIP_BYTES = 200 * 2**20  # uncompressed notebooks read from one zip
MAX_SUBMISSION_BYTES = 200 * 2**20  # all the notebooks read from one learner's uploads (folders and zips)
MAX_UPLOAD_BYTES = 1024 * 2**20  # a zip file larger than this is not opened
MAX_ENTRIES = 20000  # files looked at per learner (folder entries and zip members)
MAX_KEY_CHARS = 80  # a file-safe key longer than this is cut (a hash keeps it unique)
NOTEBOOK_NAME = re.compile(r"^(\d\d)_(.*?)(?: ?\(\d+\)| copy(?: \d+)?)?\.ipynb$", re.IGNORECASE)
IGNORED_PARTS = (".ipynb_checkpoints", "__MACOSX")


def canonical_name(base: str) -> str | None:
    """'01_dataset (1).ipynb' (a browser's second download) -> '01_dataset.ipynb'; None if not NN_*.ipynb."""
    m = NOTEBOOK_NAME.match(base.strip())
    if not m or base.startswith("._"):
        return None
    return f"{m.group(1)}_{m.group(2).strip()}.ipynb"


def display_name(name: str) -> str:
    """`name` (from the file system: undecodable bytes arrive as surrogates) as text that any writer accepts:
    bytes that are not UTF-8 shown escaped (b'caf\\xe9' -> 'caf\\\\xe9'), so distinct names stay distinct."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        raw = name.encode("utf-8", "backslashreplace")
    return unicodedata.normalize("NFC", raw.decode("utf-8", "backslashreplace"))


def safe_name(name: str) -> str:
    """A file name for `name` that keeps letters of every script (NFC), replacing the rest by '_'."""
    name = display_name(name)
    name = re.sub(r"[^\w.@+-]", "_", name).strip("._-") or "learner"
    if len(name) > MAX_KEY_CHARS:
        name = name[:MAX_KEY_CHARS] + "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return name


class Budget:
    """What one learner's uploads may cost: bytes of notebooks read, files looked at."""

    def __init__(self, max_bytes: int = MAX_SUBMISSION_BYTES, max_entries: int = MAX_ENTRIES):
        self.bytes_left = max_bytes
        self.entries_left = max_entries
        self.reported = False

    def visit(self, where: str, problems: list[list[str]]) -> bool:
        """Room to look at one more file (a folder entry or a zip member)?"""
        self.entries_left -= 1
        return self.entries_left >= 0 or self.refuse(where, problems)

    def take(self, size: int, where: str, problems: list[list[str]]) -> bool:
        """Room to read one more notebook of `size` bytes?"""
        if size <= self.bytes_left:
            self.bytes_left -= size
            return True
        return self.refuse(where, problems)

    def refuse(self, where: str, problems: list[list[str]]) -> bool:
        if not self.reported:
            self.reported = True
            problems.append(["too-large", f"the uploads hold more than {MAX_SUBMISSION_BYTES >> 20} MB of notebooks "
                                          f"or {MAX_ENTRIES} files in all: {where} and what follows were not read"])
        return False


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
        """The learner's notebooks {canonical file name: bytes}, one per lesson, and the problems found.
        Never raises: whatever the uploads hold, the learner gets a row with a message."""
        problems = [list(n) for n in self.notes]
        candidates: list[Candidate] = []
        budget = Budget()
        for path in self.paths:
            try:
                if path.is_dir():
                    read_folder(path, candidates, problems, budget)
                else:
                    read_zip(path, display_name(path.name), candidates, problems, budget)
            except Exception as e:  # an upload the readers did not foresee: that upload is lost, not the batch
                problems.append(["invalid-upload", f"{display_name(path.name)} could not be read "
                                                   f"({e.__class__.__name__}: {display_name(str(e))[:200]})"])
        chosen = choose_per_lesson(candidates, problems)
        if not chosen and not any(p[0] in ("invalid-zip", "invalid-notebook", "invalid-upload", "too-large")
                                  for p in problems):
            problems.append(["no-notebooks", "no NN_*.ipynb notebook found in the submission"])
        return {c.name: c.data for c in chosen}, problems


def walk(folder: Path, budget: Budget, problems: list[list[str]]):
    """Files under `folder` (no symbolic links followed), in a stable order, up to the budget's file count."""
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(d.iterdir(), reverse=True)
        except OSError as e:
            problems.append(["invalid-upload", f"{display_name(str(d.relative_to(folder)))} could not be read ({e.strerror})"])
            continue
        for p in entries:
            if not budget.visit(display_name(str(p.relative_to(folder))), problems):
                return
            if p.name in IGNORED_PARTS or p.is_symlink():
                continue
            if p.is_dir():
                stack.append(p)
            elif p.is_file():
                yield p


def read_folder(folder: Path, out: list[Candidate], problems: list[list[str]], budget: Budget | None = None) -> None:
    budget = budget or Budget()
    for p in sorted(walk(folder, budget, problems)):
        rel = display_name(str(p.relative_to(folder)))
        try:
            size = p.stat().st_size
            if p.suffix.lower() == ".zip":
                read_zip(p, rel, out, problems, budget)
                continue
            name = canonical_name(display_name(p.name))
            if name is None:
                continue
            if size > MAX_NOTEBOOK_BYTES:
                problems.append(["invalid-notebook", f"{rel} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB"])
                continue
            if not budget.take(size, rel, problems):
                return
            data = p.read_bytes()[: MAX_NOTEBOOK_BYTES + 1]
            out.append(Candidate(name, data, p.stat().st_mtime, rel))
        except OSError as e:
            problems.append(["invalid-notebook", f"{rel} could not be read ({e.strerror or e})"])


def read_zip(path: Path, where: str, out: list[Candidate], problems: list[list[str]], budget: Budget | None = None) -> None:
    """The NN_*.ipynb files in a zip (any depth; no extraction, so no path traversal; size-capped). A member
    whose name is not UTF-8, or whose data is corrupt, costs that member only."""
    budget = budget or Budget()
    try:
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            problems.append(["invalid-zip", f"{where} is larger than {MAX_UPLOAD_BYTES >> 20} MB: not opened"])
            return
        zf = zipfile.ZipFile(path)
    except UnicodeDecodeError:
        problems.append(["invalid-zip", f"{where}: a file name in it is not valid UTF-8 although the zip says it is; "
                                        "zip the notebooks again with another tool"])
        return
    except Exception as e:  # BadZipFile, OSError, a truncated central directory ...
        problems.append(["invalid-zip", f"{where} is not a readable zip file ({e.__class__.__name__}: "
                                        f"{display_name(str(e))[:200]})"])
        return
    with zf:
        total = 0
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            shown = display_name(info.filename)
            if not budget.visit(f"{where}: {shown}", problems):
                return
            parts = shown.replace("\\", "/").split("/")
            name = canonical_name(parts[-1])
            if info.is_dir() or name is None or any(p in IGNORED_PARTS for p in parts):
                continue
            total += info.file_size
            if info.file_size > MAX_NOTEBOOK_BYTES or total > MAX_ZIP_BYTES:
                problems.append(["invalid-notebook", f"{where}: {shown} is too large"])
                continue
            if not budget.take(info.file_size, f"{where}: {shown}", problems):
                return
            try:
                with zf.open(info) as f:  # reads at most what the header declares (+1 to notice a lie)
                    data = f.read(MAX_NOTEBOOK_BYTES + 1)
            except Exception as e:  # zlib.error, BadZipFile (CRC), an encrypted member, a truncated file ...
                problems.append(["invalid-notebook", f"{where}: {shown} could not be read from the zip "
                                                     f"({e.__class__.__name__}: {display_name(str(e))[:200]})"])
                continue
            mtime = float(sum(v * m for v, m in zip(info.date_time, (3e7, 2.6e6, 8.7e4, 3600, 60, 1))))
            out.append(Candidate(name, data, mtime, f"{where}: {shown}"))


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
        try:
            name, why = classify(p)
        except OSError as e:
            name, why = None, f"could not be read ({e.strerror or e})"
        if name is None:
            skipped.append(f"{display_name(p.name)}: skipped, {why}")
            continue
        by_name.setdefault(display_name(name), []).append(p)
    subs = []
    for name, paths in sorted(by_name.items()):
        notes = []
        if len(paths) > 1:
            notes.append(["merged", f"{' and '.join(display_name(p.name) for p in paths)} are one learner: graded together"])
        subs.append(Submission(name, safe_name(name), paths, notes))
    assign_keys(subs)
    return subs, skipped


def assign_keys(subs: list[Submission]) -> None:
    """Distinct file names (compared case-insensitively) for every learner: learners whose names clean to the
    same file name get a short hash of their real name appended, and the renaming is reported; a renamed key that
    meets another learner's key (`Bob_Smith-3fa2c1` may be a real name too) is made longer until it is unique."""
    groups: dict[str, list[Submission]] = {}
    for s in subs:
        groups.setdefault(s.key.casefold(), []).append(s)
    taken = {k for k, group in groups.items() if len(group) == 1}
    for group in groups.values():
        if len(group) < 2:
            continue
        names = ", ".join(repr(s.learner) for s in group)
        for s in group:
            digest = hashlib.sha256(s.learner.encode("utf-8", "backslashreplace")).hexdigest()
            for n in range(6, len(digest) + 1, 2):
                key = f"{s.key}-{digest[:n]}"
                if key.casefold() not in taken:
                    break
            else:  # not reachable with distinct names, but never overwrite: count up
                key = next(f"{s.key}-{i}" for i in itertools.count() if f"{s.key}-{i}".casefold() not in taken)
            taken.add(key.casefold())
            s.key = key
            s.notes.append(["renamed", f"the names {names} give the same file name: this learner's files are {s.key}.*"])


def submission_hash(notebooks: dict[str, bytes], problems) -> str:
    h = hashlib.sha256()
    for name in sorted(notebooks):
        h.update(name.encode() + b"\0" + hashlib.sha256(notebooks[name]).digest())
    h.update(json.dumps(problems).encode())
    return h.hexdigest()
