"""The instructors' grader: re-run every learner's notebooks in a sandbox and score each exercise.

    python -m utils.grade SUBMISSIONS_DIR --out RESULTS_DIR [-j N] [--redo] [--no-sandbox]
    python -m utils.grade --list                  # the exercises and their points (the one table: Exercise.points)
    python -m utils.grade gradescope --out DIR    # DIR/autograder.zip for Gradescope

The code lives in the `utils.grading` package (one purpose per module); this module keeps the entry point and
the names older scripts import.
"""

from __future__ import annotations

import sys

from .grading.batch import Grader, Settings, grade_all  # noqa: F401
from .grading.cli import format_points_table, main  # noqa: F401
from .grading.reports import build_reports, feedback_markdown, summarize, write_atomic  # noqa: F401
from .grading.scoring import points_table  # noqa: F401
from .grading.submissions import Submission, find_submissions, safe_name  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
