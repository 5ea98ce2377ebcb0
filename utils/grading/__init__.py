"""The instructors' grader, one purpose per module (`python -m utils.grade`; README, "For instructors").

- `records`: the typed records that cross a process boundary (job, progress, a call's result), defined once;
- `submissions`: finding every learner's submission and reading its notebooks;
- `sandbox`: the bubblewrap sandbox each learner's kernel runs in, and the course library copied into it;
- `runner`: the worker process that drives the kernels (started by `batch`, never by hand);
- `kernel`: the code that runs inside the learner's kernel (calls the learner's function on one case);
- `scoring`: test cases, reference answers, library versions of exercises and the score of each exercise;
- `reports`: grades.csv, grades.json and feedback/<learner>.md;
- `batch`: grading a whole folder (parallel, resumable, interruptible);
- `gradescope`: the Gradescope autograder export;
- `cli`: the command line.

This file imports nothing: `records` and `kernel` are shipped into the learner's sandbox without the rest.
"""
