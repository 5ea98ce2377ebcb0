"""Measures how much thinking the lessons leave to the learner (issue 10), on every solution notebook present.

- predictions: the number of `### Prediction - <name>` prompts per lesson (at least 2 in lesson 01, 3 from 02 on);
- hint share: for each exercise, the share of its solution's code (the non-blank lines between BEGIN and END
  SOLUTION, comments dropped and whitespace removed) that appears in its hints (the `<details>` blocks of the
  markdown cells between that exercise's heading and the next exercise's, backticks and whitespace removed). A
  character of the solution counts as "in the hints" when some run of `WINDOW` consecutive solution characters that
  covers it appears verbatim in the hints, so a quoted fragment counts, not only a quoted whole line. No exercise may
  reach 50%, and the mean must stay under 20%.

- kinds: every exercise's YAML block says `Kind: code` or `Kind: judgement` (a decision a researcher makes, graded
  by its consequences); from lesson 03 on, each lesson has at least `MIN_JUDGEMENT` graded judgement exercises.

Run `python -m pytest tests/test_pedagogy.py -s -q` to print the table.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(ROOT.glob("solutions/[0-9][0-9]_*.ipynb"))
MIN_PREDICTIONS = {"01": 2}  # every other lesson: 3
DEFAULT_MIN_PREDICTIONS = 3
MAX_SHARE, MAX_MEAN_SHARE = 0.5, 0.2
WINDOW = 12  # characters (whitespace removed): about one call such as `x.softmax(-1)` or `% 26` with its operand

EXERCISE = re.compile(r"^###\s+Exercise\s*-\s*(.+)$", re.M)
KIND = re.compile(r"^>?\s*Kind:\s*(\w+)\s*$", re.M)
MIN_JUDGEMENT, JUDGEMENT_FROM = 2, "03"
PREDICTION = re.compile(r"^###\s+Prediction\s*-\s*(.+)$", re.M)
DETAILS = re.compile(r"<details>(.*?)</details>", re.S)
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def normalize(line: str) -> str:
    """A line of code with its comment dropped and all whitespace removed, so re-indentation does not hide a copy."""
    line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
    return re.sub(r"\s+", "", line)


def solution_lines(source: str) -> list[str]:
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside and normalize(line):
            lines.append(normalize(line))
    return lines


def covered(code: str, hints: str, window: int = WINDOW) -> int:
    """How many characters of `code` lie in some `window`-long run of `code` that occurs verbatim in `hints`."""
    if len(code) < window:
        return len(code) if code and code in hints else 0
    mask = [False] * len(code)
    for i in range(len(code) - window + 1):
        if code[i : i + window] in hints:
            mask[i : i + window] = [True] * window
    return sum(mask)


@dataclasses.dataclass
class ExerciseShare:
    lesson: str
    name: str
    n_chars: int
    n_in_hints: int

    @property
    def share(self) -> float:
        return self.n_in_hints / self.n_chars if self.n_chars else 0.0


def hint_text(markdown_sources: list[str]) -> str:
    """The `<details>` blocks of these markdown cells, backticks and whitespace removed."""
    blocks = [b for source in markdown_sources for b in DETAILS.findall(source)]
    return re.sub(r"\s+", "", "".join(blocks).replace("`", ""))


def lesson_id(path: Path) -> str:
    return path.name[:2]


def hint_shares(path: Path) -> list[ExerciseShare]:
    """One row per exercise heading: the solution lines of the code cells up to the next exercise heading, and how
    many of them occur (normalised) in the `<details>` blocks of the markdown cells in the same stretch."""
    nb = nbformat.read(path, as_version=4)
    stretches: list[tuple[str, list]] = []
    for cell in nb.cells:
        heading = EXERCISE.search(cell.source) if cell.cell_type == "markdown" else None
        if heading:
            stretches.append((heading.group(1).strip(), []))
        if stretches:
            stretches[-1][1].append(cell)
    rows = []
    for name, cells in stretches:
        code = "".join(line for c in cells if c.cell_type == "code" for line in solution_lines(c.source))
        hints = hint_text([c.source for c in cells if c.cell_type == "markdown"])
        rows.append(ExerciseShare(lesson_id(path), name, len(code), covered(code, hints)))
    return rows


def prediction_count(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(len(PREDICTION.findall(c.source)) for c in nb.cells if c.cell_type == "markdown")


PARAMS = [pytest.param(p, id=p.stem) for p in LESSONS]


def test_table_prints():
    """The measurement itself (run with -s): predictions per lesson, hint share per exercise."""
    print("\nlesson | predictions (min) | exercises | mean hint share | max hint share (exercise)")
    for path in LESSONS:
        rows = hint_shares(path)
        lid = lesson_id(path)
        shares = [r.share for r in rows]
        worst = max(rows, key=lambda r: r.share) if rows else None
        print(f"{lid:6} | {prediction_count(path):11} ({MIN_PREDICTIONS.get(lid, DEFAULT_MIN_PREDICTIONS)}) | "
              f"{len(rows):9} | {sum(shares) / max(len(shares), 1):15.0%} | "
              + (f"{worst.share:.0%} ({worst.name})" if worst else "-"))
    print("\nper exercise: lesson, exercise, solution characters, of them in hints, share")
    for path in LESSONS:
        for r in hint_shares(path):
            print(f"  {r.lesson} {r.name[:55]:55} {r.n_chars:4} {r.n_in_hints:4} {r.share:5.0%}")
    assert LESSONS, "no solution notebooks found"


@pytest.mark.parametrize("path", PARAMS)
def test_predictions_per_lesson(path):
    lid = lesson_id(path)
    need = MIN_PREDICTIONS.get(lid, DEFAULT_MIN_PREDICTIONS)
    assert prediction_count(path) >= need, f"lesson {lid}: {prediction_count(path)} prediction prompts, need {need}"


@pytest.mark.parametrize("path", PARAMS)
def test_hints_do_not_give_the_answer(path):
    rows = hint_shares(path)
    too_much = [f"{r.name} ({r.share:.0%})" for r in rows if r.share >= MAX_SHARE]
    assert not too_much, f"hints hold half or more of the solution in: {too_much}"


@pytest.mark.parametrize("path", PARAMS)
def test_mean_hint_share(path):
    rows = hint_shares(path)
    if rows:
        mean = sum(r.share for r in rows) / len(rows)
        assert mean < MAX_MEAN_SHARE, f"mean hint share {mean:.0%}"


def test_measure_counts_copied_code():
    """The measure is not vacuous: a hint that quotes the solution scores 100%, one that quotes a fragment scores
    part, one that only describes it scores 0%."""
    solution = "def f(x):\n    ### BEGIN SOLUTION\n    y = x.softmax(-1)  # probs\n    return y.mean(0)\n    ### END SOLUTION\n"
    code = "".join(solution_lines(solution))
    assert code == "y=x.softmax(-1)returny.mean(0)"
    full = hint_text(["<details><summary>Hint</summary>\n\n`y = x.softmax(-1)`, then\n`return y.mean(0)`\n</details>"])
    part = hint_text(["<details><summary>Hint 2</summary>\n\n`x.softmax(-1)` gives probabilities</details>"])
    none = hint_text(["<details><summary>Hint 1</summary>\n\nturn logits into probabilities, then average</details>",
                      "y = x.softmax(-1) outside any details block"])
    assert covered(code, full) == len(code)
    assert 0 < covered(code, part) < len(code) / 2
    assert covered(code, none) == 0


def exercise_kinds(path: Path) -> dict[str, str]:
    """{exercise heading: the `Kind:` line of its YAML block ('' when missing)}."""
    nb = nbformat.read(path, as_version=4)
    kinds, current = {}, None
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        heading = EXERCISE.search(cell.source)
        if heading:
            current = heading.group(1).strip()
            kinds[current] = ""
        kind = KIND.search(cell.source)
        if current is not None and kind and not kinds[current]:
            kinds[current] = kind.group(1)
    return kinds


@pytest.mark.parametrize("path", PARAMS)
def test_every_exercise_states_its_kind(path):
    bad = {name: kind for name, kind in exercise_kinds(path).items() if kind not in ("code", "judgement")}
    assert not bad, f"exercises without `Kind: code` or `Kind: judgement` in their YAML block: {bad}"


@pytest.mark.parametrize("path", PARAMS)
def test_judgement_exercises_per_lesson(path):
    if lesson_id(path) < JUDGEMENT_FROM:
        pytest.skip(f"judgement exercises are required from lesson {JUDGEMENT_FROM} on")
    judgement = [name for name, kind in exercise_kinds(path).items() if kind == "judgement"]
    assert len(judgement) >= MIN_JUDGEMENT, (
        f"lesson {lesson_id(path)}: {len(judgement)} judgement exercise(s) {judgement}, need {MIN_JUDGEMENT}")


def test_kind_parser():
    """The parser is not vacuous: it reads the kind inside the quoted YAML block and reports a missing one."""
    src = "### Exercise - a\n\n> ```yaml\n> Difficulty: x\n> Kind: judgement\n> ```\n"
    assert KIND.search(src).group(1) == "judgement"
    assert KIND.search("### Exercise - b\n> Difficulty: x\n") is None


# ---------------------------------------------------------------------------------------------------------
# Check messages (issue 22, item 3): what a failing check prints must not hand over the solution's code either
# ---------------------------------------------------------------------------------------------------------

DEF = re.compile(r"^def\s+(\w+)\s*\(", re.M)


def solution_code_by_function() -> dict[str, str]:
    """{function name: its solution code (normalised as for hints)} for every code cell of every solution notebook
    that defines a function with a BEGIN/END SOLUTION block."""
    out = {}
    for path in LESSONS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and BEGIN in cell.source:
                for name in DEF.findall(cell.source):
                    out.setdefault(name, "".join(solution_lines(cell.source)))
    return out


def message_text(exercise) -> str:
    """Everything a failing check of `exercise` can print besides values and shapes: its hint, every catalogued
    mistake's sentence (a message names one, or the few that give the same outputs) and the `explain` sentences;
    backticks and whitespace removed, as for hints. An upper bound on the code any one message shows."""
    parts = [exercise.hint, *(m.message for m in exercise.mistakes), *exercise.explain.values()]
    return re.sub(r"\s+", "", " ".join(parts).replace("`", ""))


def message_shares() -> list[ExerciseShare]:
    from utils.checks.core import REGISTRY
    import utils.checks  # noqa: F401  (registers every exercise)

    code = solution_code_by_function()
    return [ExerciseShare(ex.lesson, name, len(code[name]), covered(code[name], message_text(ex)))
            for name, ex in REGISTRY.items() if name in code and ex.kind == "code"]


def test_check_messages_table_prints():
    rows = message_shares()
    print("\ncheck messages: lesson, exercise, solution characters, of them in the check's messages, share")
    for r in rows:
        print(f"  {r.lesson} {r.name[:40]:40} {r.n_chars:4} {r.n_in_hints:4} {r.share:5.0%}")
    assert rows, "no exercise's solution found in solutions/"


def test_check_messages_do_not_give_the_answer():
    """No failing check's message (hint + diagnoses) holds as much of the solution as the hints may: under
    MAX_SHARE per exercise, and under MAX_MEAN_SHARE on average."""
    rows = message_shares()
    too_much = [f"{r.lesson} {r.name} ({r.share:.0%})" for r in rows if r.share >= MAX_SHARE]
    assert not too_much, f"check messages hold half or more of the solution in: {too_much}"
    mean = sum(r.share for r in rows) / len(rows)
    assert mean < MAX_MEAN_SHARE, f"mean share of the solution in check messages {mean:.0%}"


def test_a_real_failure_message_is_within_the_measure():
    """The measure bounds what a learner actually sees: a real failing check's message, values stripped, holds
    no more of the solution than message_text does."""
    from utils.checks.core import REGISTRY, CheckFailed, check, mistake_function

    code = solution_code_by_function()
    ex = REGISTRY["rotate_text"]
    with pytest.raises(CheckFailed) as info:
        check("rotate_text", mistake_function(ex, ex.mistakes[0]), seed=0)
    seen = re.sub(r"\s+", "", str(info.value).replace("`", ""))
    assert "Likely mistake" in str(info.value) and "Hint" in str(info.value)
    assert covered(code["rotate_text"], seen) <= covered(code["rotate_text"], message_text(ex)) + 2 * WINDOW


def test_prediction_answer_not_in_check_message():
    """Lesson 03's prediction "independent evidence after th" (74.5% on the course's frequencies) cannot be read
    from a failing `independent_evidence_probs` check: its cases use other frequencies."""
    from utils.checks.core import REGISTRY, CheckFailed, check
    import torch

    ex = REGISTRY["independent_evidence_probs"]
    for seed in (0, 1, 2):
        for case in ex.cases(seed):
            words = case.args[0]
            if "the" in words:
                p_th = ex.expected(case)[words.index("the"), 1].item()
                assert abs(p_th - 0.745) > 0.005, (case.label, p_th)
    with pytest.raises(CheckFailed) as info:
        check("independent_evidence_probs", lambda w, f: torch.zeros(len(w), 3, dtype=torch.float64), seed=0)
    assert "0.745" not in str(info.value) and "74.5" not in str(info.value)
