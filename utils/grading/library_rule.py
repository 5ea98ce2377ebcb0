"""The library rule, decided in the grader's process from the learner's source (never inside the kernel).

About half the exercises have a version in the course library that later lessons use freely (for example
`utils.analysis.rotation_averaged_probs`, `utils.data.rotate_tokens`). A learner's function that calls the
library version of the exercise it answers scores 0 for that exercise, with the reason.

Which library functions answer an exercise (`equivalents`), tied by behaviour, not by identity:
- the function its reference re-exports (`utils/reference/lessonNN.py` imports it from the library);
- a public library function with the exercise's name;
- EXPLICIT: the library functions that pass every case of the exercise (found by calling every library function
  whose signature takes the case's arguments: `scan_equivalents`, run by `tests/test_grade_library_rule.py`, which
  fails when this table misses one);
- and every library function that calls one of those (directly or through other library functions): a wrapper
  in the library is the library's answer too (`forbidden`).

Whether the learner's function uses one (`Analysis.verdict`): from the notebook's code cells, the grader follows
the graded function and everything it reaches (the notebook's functions, classes, lambdas and the values of
the global names it reads, default arguments and decorators included) through imports and aliases
(`import utils.data as d`, `from utils.analysis import *`, `from utils import analysis`), attribute chains,
`getattr(x, "name")` with a constant name, `globals()["name"]`, and code in constant strings passed to
exec/eval. What cannot be followed statically makes the exercise score 0 too, with the construct named:
`exec`/`eval`/`compile` of a computed string, `__import__`/`importlib.import_module` of a computed name,
`getattr` of a computed name on a library module, `sys.modules`, `globals()`/`vars()`/`locals()` read with a
computed key or written, frames and function internals (`__globals__`, `__code__`, `f_globals` ...), or an
import of a module that is not installed (a module the notebook wrote itself). These only matter where the
exercise has a library version.

Code copied from the library (a learner function whose syntax tree, names aside, is the body of a library
function that answers the exercise) is flagged for the instructor (`copied`), not scored 0.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import types
from typing import Any, Iterable

# Modules of `utils` that are not the course library a learner may call: the grader, the checks, the reference
# answers and the maintainers' tools.
NOT_LIBRARY = {"reference", "checks", "grading", "notebooks", "pages", "train", "colab_setup", "nbcompare", "grade",
               "stats", "attention_view"}

# Found by `scan_equivalents` (behaviour on the exercise's cases) and not by the reference or the name; the test
# fails when the scan finds one that is missing here. Exercises a lesson removes are ignored.
EXPLICIT: dict[str, set[str]] = {
    "encode_tokens": {"utils.data.rotate_tokens"},
    "make_config": {"utils.model.model_config"},
    "load_trained_model": {"utils.model.load_model"},
    "summary_stats": {"utils.evaluate.summarize"},
    "frequency_baseline_logprobs": {"utils.bayes.letter_frequency_logprobs"},
}

DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "globals", "locals", "vars", "breakpoint"}
DYNAMIC_ATTRS = {"__globals__", "__code__", "__closure__", "__dict__", "__builtins__", "__subclasses__", "__func__",
                 "__wrapped__", "__self__", "__loader__", "__spec__", "f_globals", "f_locals", "f_builtins", "f_back",
                 "gi_frame", "cr_frame", "tb_frame", "_getframe", "currentframe", "getmodule", "user_ns",
                 "user_global_ns", "run_cell", "run_line_magic", "run_cell_magic", "get_objects", "get_referrers",
                 "get_referents", "import_module", "reload", "run_path", "run_module", "FunctionType", "LambdaType",
                 "CodeType"}
# Ways to run code outside the graded call's own reach (threads, processes, signal handlers, trace hooks, exit
# hooks): started in a learner's cell, they could compute a library answer while the graded function waits.
BACKGROUND_MODULES = {"threading", "_thread", "multiprocessing", "concurrent", "asyncio", "sched", "atexit", "pty",
                      "weakref"}  # importing one is enough: an honest lesson notebook has no use for them
BACKGROUND_CALLS = {"fork", "forkpty", "system", "popen", "spawnl", "spawnv", "spawnlp", "spawnvp", "execv", "execl",
                    "execvp", "execlp", "posix_spawn", "settrace", "setprofile", "register_module_forward_hook",
                    "register_module_forward_pre_hook", "register_module_full_backward_hook", "getoutput",
                    "getstatusoutput"}
ROOTED_CALLS = {"subprocess": {"Popen", "run", "call", "check_call", "check_output"},
                "signal": {"signal", "setitimer", "alarm", "pthread_kill"}}  # a handler runs inside the call
SAFE_SHELL = re.compile(r"^\s*(pip|ls|nvidia-smi|pwd|echo|cat|head|tail|wc|du|df)\b[^&;|`$()<>]*$")


# Modules that reach code or names by other means (unpickling, frames, the import system): using one in the
# graded function's reach is not followed.
DYNAMIC_MODULES = {"pickle", "marshal", "dill", "cloudpickle", "joblib", "shelve", "runpy", "ctypes", "gc", "inspect",
                   "types", "builtins", "importlib", "sys", "code", "codeop", "__main__", "IPython"}
NEUTRAL_ROOTS = {"torch", "einops", "np", "numpy", "math", "string", "itertools", "collections", "functools", "re",
                 "json", "pd", "pandas", "plotly", "px", "go", "cv", "circuitsvis", "eindex", "jaxtyping",
                 "transformer_lens", "typing", "random", "statistics", "operator", "dataclasses"}


# ---------------------------------------------------------------------------------------------------------
# The library and its equivalents of each exercise
# ---------------------------------------------------------------------------------------------------------


def library_modules() -> list[types.ModuleType]:
    import utils

    names = sorted(m.name for m in pkgutil.iter_modules(utils.__path__) if m.name not in NOT_LIBRARY and not m.ispkg)
    found = []
    for name in names:
        try:
            found.append(importlib.import_module(f"utils.{name}"))
        except Exception:  # a module that needs what this machine lacks: nothing of it to refuse
            continue
    return found


def is_library_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "utils" and (len(parts) == 1 or parts[1] not in NOT_LIBRARY)


@functools.lru_cache(maxsize=1)
def library_functions() -> dict[str, Any]:
    """{'utils.module.name': function} of every function (and class) the library defines."""
    found = {}
    for mod in library_modules():
        for name, obj in vars(mod).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == mod.__name__:
                found[f"{mod.__name__}.{name}"] = obj
    return found


def qualified(obj: Any) -> str | None:
    """'utils.module.name' of a library function or class (through decorators), else None."""
    try:
        obj = inspect.unwrap(obj)
    except Exception:
        return None
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(name, str) and is_library_module(module) and module != "utils":
        q = f"{module}.{name}"
        return q if q in library_functions() else None
    return None


def equivalents(ex) -> set[str]:
    """The library functions that answer exercise `ex` (see the module's docstring)."""
    from .scoring import library_versions

    found = {f"{m}.{q}" for m, q in library_versions(ex)}
    found |= {q for q in library_functions() if q.rsplit(".", 1)[1] == ex.name and callable(library_functions()[q])}
    found |= EXPLICIT.get(ex.name, set()) & set(library_functions())
    return found


@functools.lru_cache(maxsize=1)
def library_calls() -> dict[str, set[str]]:
    """{library function: the library functions its body names}, from the library's source."""
    graph: dict[str, set[str]] = {}
    for q, obj in library_functions().items():
        module = sys.modules[obj.__module__]
        try:
            tree = ast.parse(inspect.getsource(obj))
        except (OSError, TypeError, SyntaxError):
            continue
        callees = set()
        for node in ast.walk(tree):
            target = None
            if isinstance(node, ast.Name):
                target = getattr(module, node.id, None)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                base = getattr(module, node.value.id, None)
                if isinstance(base, types.ModuleType):
                    target = getattr(base, node.attr, None)
            name = qualified(target) if target is not None else None
            if name and name != q:
                callees.add(name)
        graph[q] = callees
    return graph


def forbidden(ex) -> dict[str, str]:
    """{library function: the equivalent it reaches} that exercise `ex` may not call."""
    direct = equivalents(ex)
    result = {q: q for q in direct}
    graph = library_calls()
    changed = True
    while changed:
        changed = False
        for caller, callees in graph.items():
            if caller not in result:
                hit = next((result[c] for c in sorted(callees) if c in result), None)
                if hit:
                    result[caller] = hit
                    changed = True
    return result


def scan_equivalents(exercises: Iterable, seed: int = 0, per_call_s: float = 5.0) -> dict[str, set[str]]:
    """{exercise: library functions that pass all its cases}: each library function whose signature takes the
    cases' arguments is called on them (maintainers' check of EXPLICIT; slow: about two minutes)."""
    import contextlib
    import io
    import signal
    import time

    from ..checks.core import materialize

    class Slow(Exception):
        pass

    def alarm(*_):
        raise Slow()

    previous = signal.signal(signal.SIGALRM, alarm)
    found: dict[str, set[str]] = {}
    try:
        for ex in exercises:
            cases = ex.cases(seed)
            expected = [ex.expected(c) for c in cases]
            for q, fn in library_functions().items():
                if not inspect.isfunction(fn):
                    continue
                try:
                    sig = inspect.signature(fn)
                    for c in cases:
                        sig.bind(*c.args, **c.kwargs)
                except (TypeError, ValueError):
                    continue
                ok = True
                try:
                    signal.setitimer(signal.ITIMER_REAL, per_call_s)
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        for c, e in zip(cases, expected):
                            got = ex.normalize(fn(*materialize(c.args), **materialize(c.kwargs)))
                            if ex.check_output(c, e, got) is not None:
                                ok = False
                                break
                except BaseException:  # noqa: BLE001  (anything: not an equivalent)
                    ok = False
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if ok:
                    found.setdefault(ex.name, set()).add(q)
                time.sleep(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return found


# ---------------------------------------------------------------------------------------------------------
# The learner's notebook
# ---------------------------------------------------------------------------------------------------------


def template_key(source: str) -> str:
    """A cell's source with what a build writes per release (the setup cell's repository and version) blanked."""
    from .slicing import normalized

    source = re.sub(r'^REPO, VERSION = .*$', 'REPO, VERSION = ""', source, flags=re.M)
    return normalized(re.sub(r'here / "[^"\n]*"', 'here / ""', source))


@functools.lru_cache(maxsize=1)
def course_templates() -> dict[str, frozenset[str]]:
    """{lesson: template keys of its exercise notebook's code cells} (the course's own cells, which are trusted)."""
    from .slicing import EXERCISES

    import nbformat

    found = {}
    for path in sorted(EXERCISES.glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue
        found[path.name[:2]] = frozenset(template_key(c.source) for c in nb.cells if c.cell_type == "code")
    return found


def for_notebook(path, lesson: str, run=None, left_out: Iterable[int] = ()) -> "Analysis | None":
    """The analysis of one learner notebook as its grading run ran it. `left_out` (0-based): the code cells that run
    left out (the slicer's, and those that killed or hung an earlier kernel, which died with them): nothing of them
    ran in the kernel that answered the grading calls, so they are not read at all. Cells that may not have run to
    the end (they raised: run.cell_errors, 1-based; or were interrupted at their time limit: run.interrupted,
    0-based) add to a name's earlier values instead of replacing them. None: not a notebook."""
    from .runner import code_cells
    from .submissions import MAX_NOTEBOOK_BYTES

    try:
        sources, _ = code_cells(path, MAX_NOTEBOOK_BYTES)
    except OSError:
        return None
    if sources is None:
        return None
    left_out = set(left_out)
    sources = ["" if i in left_out else src for i, src in enumerate(sources)]
    uncertain = {int(e.get("cell", 0)) - 1 for e in (getattr(run, "cell_errors", None) or [])}
    uncertain |= set(getattr(run, "interrupted", None) or [])
    return Analysis.safely(sources, uncertain, course_templates().get(lesson, frozenset()))


def leaves_changes(sources: list[str], lesson: str) -> bool:
    """May the learner's cells leave something behind in the kernel that outlives the notebook's namespace reset
    (a thread, a signal handler, a patched module, computed code run)? Then the next notebook gets a fresh kernel:
    the analysis of that notebook could not see it."""
    analysis = Analysis.safely(sources, (), course_templates().get(lesson, frozenset()))
    return isinstance(analysis, Unanalysable) or bool(analysis.dynamic_writes)


PARSE_CACHE_CHARS = 50_000  # cells up to this size are parsed once per run (the course's recur in every notebook)


def parse_cell(source: str) -> ast.Module | None:
    """A code cell as Python (IPython magics and `!` lines translated as IPython would), or None. The tree is shared
    by every notebook with that cell (nothing here changes a tree)."""
    if len(source) <= PARSE_CACHE_CHARS:
        return parse_cell_cached(source)
    return parse_cell_uncached(source)


@functools.lru_cache(maxsize=4096)
def parse_cell_cached(source: str) -> ast.Module | None:
    return parse_cell_uncached(source)


def parse_cell_uncached(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:
        return None


def is_literal(node: ast.AST | None) -> bool:
    """A constant value (a number, string, tuple of them ...): assigning it runs no code later."""
    try:
        ast.literal_eval(node)
        return True
    except Exception:
        return False


def too_deep(source: str) -> bool:
    """Does `source` fail to parse only because it is nested deeper than this process's recursion limit?"""
    try:
        ast.parse(source)
    except (RecursionError, MemoryError):
        return True
    except Exception:
        return False
    return False


@dataclasses.dataclass
class Value:
    """What a name or expression may be: library objects ('utils.data' module, 'utils.data.rotate_tokens'),
    notebook code to follow, or unknown (a parameter, a call's result)."""

    modules: set[str] = dataclasses.field(default_factory=set)  # library modules (and the `utils` package)
    objects: set[str] = dataclasses.field(default_factory=set)  # library functions and classes


def const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class Analysis:
    """The learner's notebook, read once; `verdict(exercise)` for each graded exercise.

    sources: the code cells; uncertain: indices of cells that may not have run to the end (they raised, or the
    cell was interrupted at its time limit), whose bindings add to a name's earlier values instead of replacing them."""

    def __init__(self, sources: list[str], uncertain: Iterable[int] = (), course: set[str] = frozenset()):
        self.bindings: dict[str, list[ast.AST]] = {}  # name -> the nodes that give it a value, in order
        self.imports: dict[str, list[Value]] = {}  # name -> what imports bound it to
        self.dynamic_writes: list[str] = []  # constructs in the learner's cells that bind names we cannot see
        self.unparsed: list[int] = []
        self.imported: set[str] = set()  # every name an import statement binds (modules, and names from them)
        self.plain_locals: dict[int, set[str]] = {}
        uncertain = set(uncertain)
        for i, src in enumerate(sources):
            tree = parse_cell(src)
            learner = template_key(src) not in course
            if tree is None:
                if src.strip():
                    self.unparsed.append(i + 1)
                if learner and too_deep(src):  # the kernel may compile it (a higher recursion limit): not followed
                    self.dynamic_writes.append(f"a cell nested too deeply to analyse (cell {i + 1})")
                continue
            self.read_block(tree.body, replace=i not in uncertain, cell=i + 1, learner=learner)

    @classmethod
    def safely(cls, sources: list[str], uncertain: Iterable[int] = (), course: set[str] = frozenset()) -> "Analysis":
        """The analysis, or where the notebook's code defeats it (nested too deep ...) one that refuses every
        exercise with a library version, saying why."""
        try:
            return cls(sources, uncertain, course)
        except (RecursionError, MemoryError, ValueError, TypeError) as e:
            return Unanalysable(f"{e.__class__.__name__}")

    # ------------------------------------------------------------------ what the notebook binds
    def bind(self, name: str, node: ast.AST, replace: bool) -> None:
        if replace:
            self.bindings[name] = [node]
            self.imports.pop(name, None)
        else:
            self.bindings.setdefault(name, []).append(node)

    def bind_import(self, name: str, value: Value, replace: bool) -> None:
        self.imported.add(name)
        if replace:
            self.bindings.pop(name, None)
            self.imports[name] = [value]
        else:
            self.imports.setdefault(name, []).append(value)

    def read_block(self, body: list[ast.stmt], replace: bool, cell: int, learner: bool) -> None:
        for stmt in body:
            self.read_statement(stmt, replace, cell, learner)

    def read_statement(self, stmt: ast.stmt, replace: bool, cell: int, learner: bool) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bind(stmt.name, stmt, replace)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    self.bind_import(alias.asname, self.module_value(alias.name, cell, learner), replace)
                else:
                    top = alias.name.split(".")[0]
                    self.module_value(alias.name, cell, learner)  # an unknown module is noted
                    self.bind_import(top, self.module_value(top, cell, learner), replace)
        elif isinstance(stmt, ast.ImportFrom):
            self.read_import_from(stmt, replace, cell, learner)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for name in self.stored_names(target):
                    self.bind(name, stmt, replace and isinstance(target, ast.Name) and not isinstance(stmt, ast.AugAssign))
                if learner and not is_literal(stmt.value):
                    self.note_dynamic_store(target, cell)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            targets = [stmt.target] if isinstance(stmt, (ast.For, ast.AsyncFor)) else \
                [item.optional_vars for item in stmt.items if item.optional_vars]
            for target in targets:
                for name in self.stored_names(target):
                    self.bind(name, stmt, False)
            self.read_block(stmt.body + getattr(stmt, "orelse", []), False, cell, learner)
        elif isinstance(stmt, (ast.If, ast.While)):
            self.read_block(stmt.body + stmt.orelse, False, cell, learner)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            for part in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                self.read_block(part, False, cell, learner)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                self.read_block(case.body, False, cell, learner)
        if learner:
            self.note_dynamic_binding(stmt, cell)
        for node in ast.walk(stmt):  # walrus targets, and exec of constant code at any depth
            if isinstance(node, ast.NamedExpr):
                self.bind(node.target.id, node, False)

    def stored_names(self, target: ast.AST) -> list[str]:
        return [n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]

    def module_value(self, name: str, cell: int, learner: bool) -> Value:
        if name == "utils" or name.startswith("utils."):  # the checks' modules hold library functions too
            return Value(modules={name})
        if learner and name.split(".")[0] not in sys.builtin_module_names:
            try:
                known = importlib.util.find_spec(name.split(".")[0]) is not None
            except (ImportError, ValueError):
                known = False
            if not known:
                self.dynamic_writes.append(f"imports `{name}`, a module that is not installed (cell {cell})")
        return Value()

    def read_import_from(self, stmt: ast.ImportFrom, replace: bool, cell: int, learner: bool) -> None:
        module = stmt.module or ""
        if stmt.level:
            if learner:
                self.dynamic_writes.append(f"a relative import (cell {cell})")
            return
        self.module_value(module, cell, learner)
        for alias in stmt.names:
            if alias.name == "*":
                try:
                    mod = importlib.import_module(module) if module.startswith("utils") else None
                except Exception:
                    mod = None
                if mod is None:
                    continue
                public = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
                for name in public:
                    self.bind_import(name, self.attribute_value(Value(modules={module}), name), replace)
                continue
            value = self.attribute_value(Value(modules={module}) if module.startswith("utils") else Value(), alias.name)
            self.bind_import(alias.asname or alias.name, value, replace)

    def note_dynamic_store(self, target: ast.AST, cell: int) -> None:
        """globals()[k] = v, sys.modules[k] = v, module.attr = v: bindings the grader cannot follow."""
        for node in ast.walk(target):
            if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, ast.Store):
                base = node.value
                if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id in DYNAMIC_CALLS:
                    self.dynamic_writes.append(f"writes through `{base.func.id}()` (cell {cell})")
                elif isinstance(base, ast.Attribute) and base.attr in DYNAMIC_ATTRS:
                    self.dynamic_writes.append(f"writes through `.{base.attr}` (cell {cell})")
                elif isinstance(node, (ast.Attribute, ast.Subscript)) and self.root(node) in self.imported | NEUTRAL_ROOTS \
                        | DYNAMIC_MODULES:
                    self.dynamic_writes.append(f"replaces `{ast.unparse(node)[:60]}` in an imported module (cell {cell})")

    @staticmethod
    def root(node: ast.AST) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    def note_dynamic_binding(self, stmt: ast.stmt, cell: int) -> None:
        """exec/eval of computed code, setattr on modules, get_ipython() ... anywhere in a learner's cell:
        it may bind the graded name to anything. exec of a constant string is read as code instead."""
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in modules:
                    if module.split(".")[0] in BACKGROUND_MODULES:
                        self.dynamic_writes.append(f"imports `{module}` (code that runs in the background, cell {cell})")
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and self.starts_background(node):
                self.dynamic_writes.append(f"calls `{node.func.attr}` (code that runs outside the call, cell {cell})")
            name = node.func.id if isinstance(node.func, ast.Name) and node.func.id not in self.bindings else None
            if isinstance(node.func, ast.Attribute):
                name = node.func.attr if node.func.attr not in ("exec", "eval") or self.reaches_namespace(node.func.value) \
                    else None
            if name in ("exec", "eval", "run_cell", "ex", "ev") and (isinstance(node.func, ast.Name)
                                                                     or self.reaches_namespace(node.func.value)):
                code = const_str(node.args[0]) if node.args else None
                tree = parse_cell(code) if code is not None else None
                if tree is not None:
                    self.read_block(tree.body, False, cell, True)
                else:
                    self.dynamic_writes.append(f"runs computed code with `{name}` (cell {cell})")
            elif name in ("setattr", "delattr", "push", "update", "setdefault") and isinstance(node.func, ast.Attribute) \
                    and self.reaches_namespace(node.func.value):
                self.dynamic_writes.append(f"changes the notebook's namespace with `{name}` (cell {cell})")
            elif name in ("setattr", "delattr") and node.args and self.reaches_namespace(node.args[0]):
                self.dynamic_writes.append(f"changes a module with `{name}` (cell {cell})")
        for what in module_writes(stmt, self.imported | NEUTRAL_ROOTS | DYNAMIC_MODULES):
            self.dynamic_writes.append(f"replaces `{what}` in an imported module (cell {cell})")

    def starts_background(self, call: ast.Call) -> bool:
        """A call that may leave code running (a process, a signal handler, a trace hook). A shell command of a
        few harmless kinds (`!pip install x`, `!ls`) is not one."""
        attr = call.func.attr
        if attr in ("system", "getoutput") and call.args and SAFE_SHELL.match(const_str(call.args[0]) or "&"):
            return False
        return attr in BACKGROUND_CALLS or attr in ROOTED_CALLS.get(self.root(call.func.value) or "", ())

    def reaches_namespace(self, node: ast.AST) -> bool:
        """Is `node` the notebook's namespace, a module or sys.modules (globals(), vars(), get_ipython() ...)?"""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in (
                    "globals", "vars", "locals", "get_ipython", "__import__"):
                return True
            if isinstance(sub, ast.Attribute) and sub.attr in DYNAMIC_ATTRS:
                return True
            if isinstance(sub, ast.Name) and (sub.id in ("sys", "builtins", "__builtins__", "__main__", "importlib")
                                              or any(v.modules for v in self.imports.get(sub.id, []))):
                return True
        return False

    # ------------------------------------------------------------------ values
    def attribute_value(self, base: Value, attr: str) -> Value:
        out = Value()
        for module in base.modules:
            try:
                obj = getattr(importlib.import_module(module), attr)
            except Exception:
                obj = None
                child = f"{module}.{attr}"
                try:
                    if is_library_module(child) and importlib.util.find_spec(child) is not None:
                        out.modules.add(child)
                except (ImportError, ValueError):
                    pass
            if isinstance(obj, types.ModuleType):
                if is_library_module(obj.__name__):
                    out.modules.add(obj.__name__)
            elif obj is not None:
                q = qualified(obj)
                if q:
                    out.objects.add(q)
        for q in base.objects:  # a library class's attribute: its methods are the library's too
            obj = library_functions().get(q)
            member = getattr(obj, attr, None) if inspect.isclass(obj) else None
            if member is not None:
                out.objects.add(qualified(member) or f"{q}.{attr}")
        return out

    # ------------------------------------------------------------------ the graded function's reach
    def reach(self, name: str) -> tuple[set[str], set[str], list[str]]:
        """(library objects, library modules, constructs the grader cannot follow) reached from `name`."""
        objects: set[str] = set()
        modules: set[str] = set()
        dynamic: list[str] = []
        seen_names: set[str] = set()
        seen_nodes: set[int] = set()
        attrs: set[str] = set()
        todo = [name]
        while todo:
            n = todo.pop()
            if n in seen_names:
                continue
            seen_names.add(n)
            for v in self.imports.get(n, []):
                objects |= v.objects
                modules |= v.modules
            for node in self.bindings.get(n, []):
                if id(node) in seen_nodes:
                    continue
                seen_nodes.add(id(node))
                self.follow(node, todo, objects, modules, dynamic, attrs)
        if modules and "*" in attrs:
            dynamic.append("`getattr` of a computed name, with a course-library module in reach")
        if "utils" in modules:  # the package itself: every library module is an attribute away
            modules |= {m.__name__ for m in library_modules()}
        if modules:  # a library module reached as a value: any attribute name used may be read from it
            for q in library_functions():
                module, attr = q.rsplit(".", 1)
                if module in modules and attr in attrs:
                    objects.add(q)
        return objects, modules, dynamic

    def follow(self, node: ast.AST, todo: list[str], objects: set[str], modules: set[str], dynamic: list[str],
               attrs: set[str]) -> None:
        """Everything `node` (a def, class, assignment, loop ...) reads when it runs or is called."""
        roots = node.value if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) else node
        if isinstance(node, (ast.For, ast.AsyncFor)):
            roots = node.iter
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            roots = ast.Module(body=[ast.Expr(item.context_expr) for item in node.items], type_ignores=[])
        if roots is None:
            return
        from .slicing import split_loads

        called = {id(n.func) for n in ast.walk(roots) if isinstance(n, ast.Call)}
        self.plain_locals = parameter_scopes(roots)
        now, later = split_loads(roots)  # the free names it reads (its functions' own locals left out)
        for name in sorted(now | later):
            todo.append(name)
            builtin = name in DYNAMIC_CALLS - {"vars"} or name in ("get_ipython", "__builtins__") or name in DYNAMIC_MODULES
            if builtin and name not in self.bindings:  # the builtin or the module, not a function of the notebook's
                dynamic.append(f"`{name}`")
        for sub in ast.walk(roots):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):  # an import inside a function
                names = [a.name for a in sub.names] if isinstance(sub, ast.Import) else \
                    [f"{sub.module or ''}.{a.name}" for a in sub.names] + [sub.module or ""]
                relative = isinstance(sub, ast.ImportFrom) and sub.level > 0
                for module in names:
                    top = module.split(".")[0]
                    if relative or top in DYNAMIC_MODULES or top in BACKGROUND_MODULES:
                        dynamic.append(f"imports `{module}`")
                    elif top == "utils":
                        base = Value(modules={module.rsplit(".", 1)[0]}) if "." in module else Value(modules={"utils"})
                        found = self.attribute_value(base, module.rsplit(".", 1)[1]) if "." in module else base
                        objects |= found.objects
                        modules |= found.modules
            if isinstance(sub, ast.Attribute):
                attrs.add(sub.attr)
                if sub.attr in DYNAMIC_ATTRS and not isinstance(sub.ctx, ast.Store):
                    dynamic.append(f"`.{sub.attr}`")
                elif sub.attr == "modules" and id(sub) not in called:  # sys.modules, not nn.Module.modules()
                    dynamic.append("`.modules`")
                value = self.chain(sub)
                if value is not None:
                    objects |= value.objects
                    modules |= value.modules
            elif isinstance(sub, ast.Call):
                self.follow_call(sub, todo, objects, modules, dynamic, attrs)
            elif isinstance(sub, ast.Subscript):
                key = const_str(sub.slice)
                base = sub.value
                if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id in ("globals", "vars", "locals"):
                    if key is not None:
                        todo.append(key)
                elif isinstance(base, ast.Attribute) and base.attr == "modules" and key is not None:
                    if is_library_module(key):
                        modules.add(key)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                attrs.add(sub.value)

    def follow_call(self, call: ast.Call, todo: list[str], objects: set[str], modules: set[str], dynamic: list[str],
                    attrs: set[str]) -> None:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        first = call.args[0] if call.args else None
        if name == "load" and any(k.arg == "weights_only" and not (isinstance(k.value, ast.Constant) and k.value.value)
                                  for k in call.keywords):
            dynamic.append("`load` without weights_only=True (unpickling)")
        if name in ("exec", "eval", "compile") and isinstance(func, ast.Attribute):
            return
        if isinstance(func, ast.Name) and func.id in self.bindings:  # the notebook's own function of that name
            return
        if name in ("exec", "eval", "compile"):
            tree = parse_cell(const_str(first)) if const_str(first) is not None else None
            if tree is None:
                dynamic.append(f"`{name}` of computed code")
            else:
                for stmt in tree.body:
                    self.follow(stmt, todo, objects, modules, dynamic, attrs)
        elif name in ("__import__", "import_module"):
            module = const_str(first)
            if module is None:
                dynamic.append(f"`{name}` of a computed name")
            elif module.split(".")[0] in DYNAMIC_MODULES:
                dynamic.append(f"`{name}` of `{module}`")
            elif is_library_module(module):
                modules.add(module)
                modules.add(module.split(".")[0])
        elif name in ("getattr", "hasattr", "setattr", "delattr") and len(call.args) >= 2:
            key = const_str(call.args[1])
            base = self.expression_value(call.args[0])
            if key in DYNAMIC_ATTRS or key in DYNAMIC_MODULES or key == "modules":
                dynamic.append(f"`{name}` of `{key}`")
            if key is not None:
                attrs.add(key)
                if base is not None:
                    found = self.attribute_value(base, key)
                    objects |= found.objects
                    modules |= found.modules
            elif base is not None and (base.modules or base.objects):
                dynamic.append(f"`{name}` of a computed name on the course library")
            elif not self.on_plain_local(call):  # computed names only on the function's own inputs
                dynamic.append(f"`{name}` of a computed name on `{ast.unparse(call.args[0])[:40]}`")
        elif name == "vars" and isinstance(func, ast.Name):
            dynamic.append("`vars()`")

    def on_plain_local(self, call: ast.Call) -> bool:
        """Is getattr's object rooted at a parameter of the enclosing function (or a loop variable over one)?"""
        root = call.args[0]
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        return isinstance(root, ast.Name) and root.id in self.plain_locals.get(id(call), set()) \
            and root.id not in self.imported

    def is_neutral(self, node: ast.AST) -> bool:
        root = node
        while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
            root = root.func if isinstance(root, ast.Call) else root.value
        return isinstance(root, ast.Name) and root.id in NEUTRAL_ROOTS

    def expression_value(self, node: ast.AST) -> Value | None:
        """What a Name or an attribute chain on a name is, when it is an import (None: not known statically)."""
        if isinstance(node, ast.Name):
            values = self.imports.get(node.id)
            if not values:
                return None
            return Value(set().union(*(v.modules for v in values)), set().union(*(v.objects for v in values)))
        if isinstance(node, ast.Attribute):
            base = self.expression_value(node.value)
            return None if base is None else self.attribute_value(base, node.attr)
        return None

    def chain(self, node: ast.Attribute) -> Value | None:
        value = self.expression_value(node)
        return value if value is not None and (value.modules or value.objects) else None

    # ------------------------------------------------------------------ the verdict
    def verdict(self, ex) -> str | None:
        """Why exercise `ex` scores 0 under the library rule, or None."""
        banned = forbidden(ex)
        if not banned:
            return None
        try:
            objects, modules, dynamic = self.reach(ex.name)
        except (RecursionError, MemoryError, ValueError, TypeError) as e:
            return Unanalysable(e.__class__.__name__).verdict(ex)
        hits = sorted(q for q in objects if q in banned)
        if hits:
            q = hits[0]
            via = "" if banned[q] == q else f", which uses `{banned[q]}`"
            return (f"your `{ex.name}` calls the course library's own version of this exercise (`{q}`{via}); "
                    "write it yourself: this exercise scores 0")
        reasons = dynamic + self.dynamic_writes
        if reasons:
            return (f"your notebook reaches code the grader cannot check for the course library's version of "
                    f"`{ex.name}` ({'; '.join(dict.fromkeys(reasons))}); write it without that: this exercise scores 0")
        return None

    def copied(self, ex) -> str | None:
        """A note for the instructor when the learner's function is, names aside, a library version's code."""
        learner = [n for n in self.bindings.get(ex.name, []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not learner:
            return None
        try:
            mine = shape(learner[-1])
        except (RecursionError, MemoryError):
            return None
        for q in sorted(equivalents(ex)):
            theirs = library_shape(q)
            if theirs is None:
                continue
            if mine and mine == theirs:
                return f"`{ex.name}` is the code of `{q}` with at most names changed (copied from the library?)"
            ratio = similarity(mine, theirs)
            if ratio >= COPY_SIMILARITY:
                return f"`{ex.name}` is {ratio:.0%} the code of `{q}`, names aside (copied from the library?)"
        return None


def function_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """The names local to a function: its parameters and the names it assigns (not those it declares global)."""
    a = fn.args
    names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs} | {x.arg for x in (a.vararg, a.kwarg) if x}
    declared: set[str] = set()
    stack = list(fn.body) if isinstance(fn.body, list) else [fn.body]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            stack.extend(node.decorator_list)  # its body is its own scope
            continue
        elif isinstance(node, ast.Lambda):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return names - declared


def module_writes(stmt: ast.AST, modules: set[str]) -> list[str]:
    """What `stmt` replaces or deletes in a module it did not make, at any depth, functions' bodies included (a
    function that patches `torch.einsum` when a cell calls it): stores and `setattr`/`delattr` on an attribute
    chain rooted at one of `modules` (imported names), unless a function's own local of that name."""
    found: list[str] = []
    stack: list[tuple[ast.AST, frozenset[str]]] = [(stmt, frozenset())]
    while stack:
        node, local = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = local | function_locals(node)
            parts = node.body if isinstance(node.body, list) else [node.body]
            stack.extend((child, inner) for child in parts)
            stack.extend((d, local) for d in getattr(node, "decorator_list", []))
            stack.extend((d, local) for d in node.args.defaults + [d for d in node.args.kw_defaults if d])
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and is_literal(node.value):
            continue  # a constant (`pio.renderers.default = "notebook"`) runs no code later
        target = None
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            target = node
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                and node.args and not (node.func.id == "setattr" and len(node.args) == 3 and is_literal(node.args[2])):
            target = node.args[0]
        root = Analysis.root(target) if target is not None else None
        if root in modules and root not in local:
            found.append(ast.unparse(node if isinstance(node, ast.Call) else target)[:60])
        stack.extend((child, local) for child in ast.iter_child_nodes(node))
    return found


def parameter_scopes(root: ast.AST) -> dict[int, set[str]]:
    """{id(call): the names that are plain inputs where the call is}: the enclosing functions' parameters (without
    a default that is not a constant) and loop or comprehension variables over them."""
    found: dict[int, set[str]] = {}
    stack: list[tuple[ast.AST, set[str]]] = [(root, set())]
    while stack:
        node, plain = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            positional = a.posonlyargs + a.args
            defaults = dict(zip([x.arg for x in positional][len(positional) - len(a.defaults):], a.defaults))
            defaults.update({x.arg: d for x, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
            names = [x.arg for x in positional + a.kwonlyargs] + [x.arg for x in (a.vararg, a.kwarg) if x]
            plain = {n for n in names if n not in defaults or is_literal(defaults[n])}
            for sub in ast.walk(node):  # loop variables over those inputs
                if isinstance(sub, (ast.For, ast.comprehension)):
                    it = sub.iter
                    while isinstance(it, (ast.Attribute, ast.Subscript, ast.Call)):
                        it = it.func if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) else \
                            (it.args[0] if isinstance(it, ast.Call) and it.args else getattr(it, "value", None))
                    if isinstance(it, ast.Name) and it.id in plain:
                        plain |= {n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name)}
        if isinstance(node, ast.Call):
            found[id(node)] = plain
        stack.extend((child, plain) for child in ast.iter_child_nodes(node))
    return found


class Unanalysable:
    """A notebook whose code the analysis cannot read: every exercise with a library version scores 0."""

    def __init__(self, why: str):
        self.why = why

    def verdict(self, ex) -> str | None:
        if not forbidden(ex):
            return None
        return (f"the grader could not analyse your notebook's code ({self.why}: nested too deeply?), so it cannot "
                f"check that `{ex.name}` does not use the course library's version: this exercise scores 0")

    def copied(self, ex) -> None:
        return None


COPY_SIMILARITY = 0.9  # share of the syntax tree (names aside) in common with a library version: flagged


@functools.lru_cache(maxsize=None)
def library_shape(q: str) -> str | None:
    """`shape` of library function `q` (read once per run), or None when its source cannot be read."""
    try:
        return shape(ast.parse(inspect.getsource(library_functions()[q])).body[0])
    except Exception:
        return None


def similarity(a: str, b: str) -> float:
    """How much of two `shape`s is in common (difflib's ratio over their tokens); 0 for short functions. Below
    COPY_SIMILARITY the value is only known to be below it (difflib's quick upper bound, which is cheap)."""
    import difflib

    ta, tb = re.findall(r"\w+|[^\w\s]", a), re.findall(r"\w+|[^\w\s]", b)
    if min(len(ta), len(tb)) < 40:
        return 0.0
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    bound = matcher.quick_ratio()  # an upper bound of ratio()
    return bound if bound < COPY_SIMILARITY else matcher.ratio()


def shape(node: ast.AST) -> str:
    """The syntax tree of a function's body with names, strings and docstrings left out (copied code, renamed)."""
    body = list(getattr(node, "body", []))
    if body and isinstance(body[0], ast.Expr) and const_str(body[0].value) is not None:
        body = body[1:]

    def strip(n: ast.AST) -> str:
        fields = []
        for field, value in ast.iter_fields(n):
            if field in ("id", "arg", "name", "type_comment", "annotation", "returns", "ctx"):
                continue
            if isinstance(value, list):
                fields.append(f"{field}=[{','.join(strip(v) if isinstance(v, ast.AST) else repr(v) for v in value)}]")
            elif isinstance(value, ast.AST):
                fields.append(f"{field}={strip(value)}")
            elif field == "value" and isinstance(value, str):
                fields.append("str")
            else:
                fields.append(f"{field}={value!r}")
        return f"{type(n).__name__}({','.join(fields)})"

    return ";".join(strip(stmt) for stmt in body)
