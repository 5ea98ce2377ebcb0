"""Learner checks, one module per lesson: `test_<exercise>(your_function)`.

Importing this package registers every exercise in `core.REGISTRY` (used by the grader too).
"""

from .core import REGISTRY, CheckFailed, ExerciseNotDone, check
from .lesson01 import *  # noqa: F401,F403
from .lesson02 import *  # noqa: F401,F403
from .lesson03 import *  # noqa: F401,F403
from .lesson03_judgement import *  # noqa: F401,F403
from .lesson04 import *  # noqa: F401,F403
from .lesson04_judgement import *  # noqa: F401,F403
from .lesson05 import *  # noqa: F401,F403
from .lesson05_judgement import *  # noqa: F401,F403
from .lesson06 import *  # noqa: F401,F403
from .lesson06_judgement import *  # noqa: F401,F403
from .lesson07 import *  # noqa: F401,F403
from .lesson07_judgement import *  # noqa: F401,F403
