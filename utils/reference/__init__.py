"""Reference answers to every exercise, one module per lesson. Only the checks and the grader import these:
learners' kernels in the grader run without this folder."""
