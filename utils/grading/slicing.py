"""Which of a learner's cells the grader need not run: the course's own cells that only show or check results.

Grading needs the learner's functions, not the lesson's figures, tables and self-checks, which are most of a
notebook's compute. A code cell is left out when all of these hold:

- it is the course's cell, unchanged: its source is that of a code cell of the exercise notebook (notebooks/),
  so its effect is the course's, whatever the learner wrote elsewhere (an exercise the learner left as the
  stub is the course's cell too); or it is a learner's cell that only shows or checks what the course computed,
  as a claim cell does (`shows_results`): it defines no function, class or lambda, calls only the course library,
  a few builtins (`print`, `len`, `abs` ...) and read-only methods (`.mean()`, `.assert_above(...)`), so that
  nothing of the notebook's own code runs in it, and reads only names that course cells, imports or other such
  cells bind;
- it is plain Python that only computes, shows and asserts (`only_computes`): no import (but `from utils.x import
  f` of a module `import utils` loads), `global` or `del`, nothing that reaches names dynamically (`globals`,
  `exec`, `get_ipython`, magics ...), no change to an object it did not make (assigning its attributes or items,
  in-place and known mutating methods: `add_hook`, `eval`, `append`, `manual_seed` ...);
- no cell that is run after it, and no graded function, reads a name it defines (found by fixpoint: leaving one
  cell in can make another needed). A run cell that binds the name again in between does not make it unneeded:
  that cell may raise before it binds, and the name would then be stale where the course's cell would have set it.

Anything the rules can't see through keeps cells: a cell that doesn't parse (IPython syntax) keeps them all; a
run cell that reaches names dynamically (`globals()`, `vars()`, `exec`, `eval`, `get_ipython()`,
`sys.modules['__main__']`, a frame's `f_globals`, IPython's `Out` and `_`) keeps every cell before it (and after
it, where its functions are called later); more than MAX_SOURCE_CHARS of code keeps them all. Each round of the
fixpoint is linear in the notebook's size. The learner loses nothing graded: what is graded is each exercise's function, called by the grader. What
is lost: those cells' errors in the feedback, and any side effect on the kernel's state that a learner's function
has when a left-out cell calls it (grading calls get fresh inputs, so only a function that sets globals another
graded function reads would notice).
"""

from __future__ import annotations

import ast
import functools
import gc
import re
import time
from pathlib import Path

# utils.notebooks.EXERCISES, not imported: utils.notebooks reads pyproject.toml, which the Gradescope autograder lacks
EXERCISES = Path(__file__).resolve().parents[2] / "notebooks"

DYNAMIC = {"globals", "locals", "vars", "exec", "eval", "compile", "get_ipython", "__import__", "setattr", "delattr",
           "getattr", "__builtins__", "__dict__", "__main__", "builtins", "inspect", "runpy", "importlib",
           # IPython's history of inputs and outputs: `Out[3]` or `_` reads what a left-out cell displayed
           "In", "Out", "_ih", "_oh", "_i", "_ii", "_iii", "_", "__", "___", "_dh", "exit", "quit"}
# attributes that reach a namespace: sys.modules['__main__'], frames' globals, IPython's user namespace
DYNAMIC_ATTRS = {"modules", "f_globals", "f_locals", "f_back", "_getframe", "currentframe", "get_ipython", "user_ns",
                 "user_global_ns", "__dict__", "__globals__", "__builtins__", "run_cell", "push"}
HISTORY = re.compile(r"^_(i{1,3})?\d+$")  # _5, _i5: IPython's numbered history
MAX_SOURCE_CHARS = 400_000  # more code than this (ten times a lesson's): not analysed, every cell runs
MAX_SECONDS = 5.0  # analysis time before giving up (every cell runs)
MAX_ROUNDS = 64  # rounds of the fixpoint before giving up (every cell runs)
SEEDING = {"seed", "manual_seed", "manual_seed_all", "set_seed", "set_rng_state"}  # global random state
MOVING = {"train", "eval", "apply"}  # in place on a module itself (the course's cells move no model to a device)
MUTATING = SEEDING | {
    "add_hook", "add_perma_hook", "reset_hooks", "remove_all_hook_fns", "register_forward_hook",
    "register_forward_pre_hook", "register_full_backward_hook", "set_use_attn_result", "set_use_split_qkv_input",
    "set_use_hook_mlp_in", "set_use_attn_in", "load_state_dict", "load_and_process_state_dict", "process_weights_",
    "fold_layer_norm", "center_writing_weights", "center_unembed", "fold_value_biases", "refactor_factored_attn_matrices",
    "requires_grad_", "zero_grad",
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault", "sort", "reverse",
    "add", "discard", "write", "chdir", "setitem", "set_default_dtype", "set_grad_enabled", "use_deterministic_algorithms",
}


def normalized(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


@functools.lru_cache(maxsize=4096)  # the course's cells recur in every learner's notebooks
def analyse(source: str) -> "Cell | None":
    """None: not analysable (IPython syntax, a syntax error, or nested deeper than the analysis recurses)."""
    try:
        tree = parse(source)
        return None if tree is None else Cell(tree)
    except (RecursionError, MemoryError):
        return None


DEFERRED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def loads(node: ast.AST, deferred: bool) -> set[str]:
    """Names read by `node` now (deferred=False: function and lambda bodies left out) or when its functions are
    called (deferred=True: only what function and lambda bodies read). A comprehension's own variables are not
    read from outside it."""
    now, later = split_loads(node)
    return later if deferred else now


@functools.lru_cache(maxsize=2**16)  # a node's answer is asked for again by each enclosing block
def split_loads(n: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """(names read when `n` runs, names read when the functions it defines are called)."""
    now, later = _split_loads(n)
    return frozenset(now), frozenset(later)


def _split_loads(n: ast.AST) -> tuple[set[str], set[str]]:
    if isinstance(n, ast.Name):
        return (set() if isinstance(n.ctx, ast.Store) else {n.id}), set()
    now: set[str] = set()
    later: set[str] = set()

    def add(child: ast.AST | None, deferred: bool = False) -> None:
        if child is not None:
            c_now, c_later = split_loads(child)
            (later if deferred else now).update(c_now)
            later.update(c_later)

    if isinstance(n, DEFERRED):  # decorators, defaults and annotations run now; the body when called
        for child in [*getattr(n, "decorator_list", []), n.args, getattr(n, "returns", None)]:
            add(child)
        body = n.body if isinstance(n.body, list) else [n.body]
        own = {a.arg for a in ast.walk(n.args) if isinstance(a, ast.arg)}.union(*(bound(stmt) for stmt in body))
        declared = {name for stmt in body for node in ast.walk(stmt) if isinstance(node, (ast.Global, ast.Nonlocal))
                    for name in node.names}
        for child in body:
            c_now, c_later = split_loads(child)
            later.update((c_now | c_later) - (own - declared))  # its free names, read when it is called
        return now, later
    if isinstance(n, COMPREHENSIONS):
        own = set().union(*(bound(g.target) for g in n.generators))
        add(n.generators[0].iter)  # evaluated outside the comprehension's scope
        inner = [child for child in ast.iter_child_nodes(n) if child is not n.generators[0].iter]
        for child in inner:
            if isinstance(child, ast.comprehension):
                for part in [child.iter, *child.ifs] if child is not n.generators[0] else child.ifs:
                    c_now, c_later = split_loads(part)
                    now.update(c_now - own)
                    later.update(c_later)
            else:
                c_now, c_later = split_loads(child)
                now.update(c_now - own)
                later.update(c_later)
        return now, later
    for child in ast.iter_child_nodes(n):
        add(child)
    return now, later


def bound(node: ast.AST) -> set[str]:
    """Names `node` binds in the notebook's namespace (not its functions' or comprehensions' locals)."""
    found: set[str] = set()

    def visit(n: ast.AST) -> None:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(n.name)
            return
        if isinstance(n, (ast.Lambda, *COMPREHENSIONS)):
            return
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            found.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            found.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            found.add(n.name)
        for child in ast.iter_child_nodes(n):
            visit(child)

    visit(node)
    return found


def block(stmts: list[ast.stmt], known: set[str]) -> tuple[set[str], set[str]]:
    """Statements run in order: (names read before they bind them, names bound whenever they complete)."""
    reads: set[str] = set()
    binds = set(known)
    for stmt in stmts:
        r, b = statement(stmt, binds)
        reads |= r
        binds |= b
    return reads, binds - known


def statement(stmt: ast.stmt, known: set[str]) -> tuple[set[str], set[str]]:
    """(names `stmt` reads that `known` does not hold, names it binds whenever it completes)."""
    if isinstance(stmt, (ast.For, ast.AsyncFor)):  # the body reads the loop variable it binds
        body, _ = block([*stmt.body, *stmt.orelse], known | bound(stmt.target))
        return (loads(stmt.iter, deferred=False) - known) | body, set()
    if isinstance(stmt, ast.While):
        body, _ = block([*stmt.body, *stmt.orelse], known)
        return (loads(stmt.test, deferred=False) - known) | body, set()
    if isinstance(stmt, ast.If):
        (r1, b1), (r2, b2) = block(stmt.body, known), block(stmt.orelse, known)
        return (loads(stmt.test, deferred=False) - known) | r1 | r2, b1 & b2
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        targets = set().union(*(bound(item.optional_vars) for item in stmt.items if item.optional_vars))
        r, b = block(stmt.body, known | targets)
        context = set().union(*(loads(item.context_expr, deferred=False) for item in stmt.items))
        return (context - known) | r, b | targets
    if isinstance(stmt, ast.Try):
        parts = [block(stmt.body, known), *(block(h.body, known) for h in stmt.handlers), block(stmt.orelse, known)]
        final = block(stmt.finalbody, known)
        return set().union(final[0], *(r for r, _ in parts)), final[1]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Import, ast.ImportFrom)):
        return loads(stmt, deferred=False) - known, bound(stmt)
    return loads(stmt, deferred=False) - known, set()


class Cell:
    """What one code cell reads and binds, from its syntax tree."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.binds = bound(tree)
        self.import_nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        self.imports = set().union(*(bound(n) for n in self.import_nodes))
        # read now, before the cell binds them itself; bound whenever the cell completes
        self.reads_first, self.rebinds = block(tree.body, set())
        self.reads_later = loads(tree, deferred=True)  # read by its functions, whenever they are called
        self.reads = self.reads_first | self.reads_later | loads(tree, deferred=False)
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        # it may read any name (globals(), exec, sys.modules['__main__'], get_ipython(), Out[3] ...)
        self.dynamic = bool(self.reads & DYNAMIC or attrs & DYNAMIC_ATTRS or any(HISTORY.match(r) for r in self.reads))
        self.functions = {node.name: dynamic_marked(node) for node in tree.body  # {name: free names read}
                          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.computes: dict[frozenset[str], bool] = {}  # only_computes, per set of the notebook's imported names
        self.defines_code = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
                                for n in ast.walk(tree))


def dynamic_marked(fn: ast.AST) -> frozenset[str]:
    """The free names a function reads, plus 'globals' when it reaches names through an attribute
    (sys.modules['__main__'], a frame's f_globals): such a function may read any name."""
    reads = loads(fn, deferred=True)
    if any(isinstance(n, ast.Attribute) and n.attr in DYNAMIC_ATTRS for n in ast.walk(fn)):
        reads = reads | {"globals"}
    return reads


def root_name(node: ast.AST) -> str | None:
    """`x` for x, x.a, x[i].b(...).c ...; None when the chain starts elsewhere (a call's result, a literal)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def store_targets(node: ast.AST) -> list[ast.AST]:
    """What an assignment, loop or with statement stores into ([] for any other node)."""
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
        return [node.target]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [item.optional_vars for item in node.items if item.optional_vars]
    return []


@functools.lru_cache(maxsize=1)
def loaded_with_utils() -> frozenset[str]:
    """The course modules that `import utils` imports itself (utils/__init__.py's `from .x import ...`): importing
    one again, as `from utils.bayes import f`, only binds names (the package and the module are loaded either way
    before any grading call, which imports utils)."""
    try:
        tree = ast.parse((Path(__file__).resolve().parents[1] / "__init__.py").read_text())
    except (OSError, SyntaxError):
        return frozenset()
    return frozenset(f"utils.{n.module}" for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1
                     and n.module and "." not in n.module)


def harmless_import(node: ast.AST) -> bool:
    """An import of the course library that only binds names (see loaded_with_utils)."""
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and node.module in loaded_with_utils() and all(a.name != "*" for a in node.names)
    return False


def assigned_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset[str]:
    """The names a function assigns in its own body (not its parameters: those are the caller's objects), which
    make objects of its own as a cell's assignments do."""
    found: set[str] = set()
    stack = list(fn.body) if isinstance(fn.body, list) else [fn.body]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, *COMPREHENSIONS)):
            stack.extend(ast.iter_child_nodes(node))
    params = fn.args
    return frozenset(found - {a.arg for a in params.posonlyargs + params.args + params.kwonlyargs}
                     - {a.arg for a in (params.vararg, params.kwarg) if a})


def only_computes(cell: Cell, modules: set[str]) -> bool:
    """See `_only_computes` (remembered per cell, which is shared by every notebook with that source)."""
    key = frozenset(modules)
    if key not in cell.computes:
        cell.computes[key] = _only_computes(cell, modules)
    return cell.computes[key]


def _only_computes(cell: Cell, modules: set[str]) -> bool:
    """No import (but `from utils.x import f` of a module `import utils` loads), global, del, dynamic name access;
    no change to an object the cell (or, inside a function, the function) did not make itself: no assignment to its
    attributes or items, no in-place or known mutating method (add_hook, append, manual_seed, eval, ...) called on
    it. `modules`: the names the notebook imports (calling torch.stack changes nothing)."""
    stack = [(cell.tree, frozenset(cell.binds - cell.reads_first))]
    while stack:
        node, own = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):  # its own locals are its own too
            own = own | assigned_locals(node)
        stack.extend((child, own) for child in ast.iter_child_nodes(node))
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Delete)) \
                and not harmless_import(node):
            return False
        for t in (t for target in store_targets(node) for t in ast.walk(target)):  # what is stored into (not the
            # names read in an index, such as `labels` in `mine[rows, labels.cpu()] = 0`)
            if isinstance(t, (ast.Attribute, ast.Subscript)) and isinstance(t.ctx, ast.Store) \
                    and root_name(t) not in own:
                return False
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            root = root_name(func.value) if isinstance(func, ast.Attribute) else None
            changes = name in MUTATING or (name.endswith("_") and not name.startswith("_"))
            changes |= name in MOVING and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            # (None: a chain that starts from a call's result, such as torch.Generator().manual_seed(0): a new object)
            if changes and root is not None and root not in own and not (root in modules and name not in SEEDING):
                return False
    return not cell.dynamic


# What a learner's cell that only shows or checks results may call (`shows_results`): nothing that could change
# the kernel's state or a file, and nothing the notebook defines
SAFE_BUILTINS = {"print", "len", "abs", "round", "min", "max", "sum", "sorted", "str", "repr", "int", "float", "bool",
                 "list", "tuple", "dict", "set", "range", "enumerate", "zip", "isinstance", "any", "all", "format",
                 "reversed", "divmod", "pow"}
READ_ONLY_METHODS = {"assert_above", "assert_below", "assert_between", "differs_from", "item", "tolist", "mean", "std",
                     "var", "sum", "abs", "max", "min", "argmax", "argmin", "norm", "float", "double", "cpu", "numel",
                     "keys", "values", "items", "get", "index", "count"}


@functools.lru_cache(maxsize=64)
def public_names(module: str) -> frozenset[str] | None:
    """The names `from module import *` binds (None: it does not import here)."""
    import importlib

    try:
        mod = importlib.import_module(module)
        return frozenset(getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")])
    except Exception:
        return None


def import_bindings(cells: dict[int, "Cell"]) -> tuple[dict[str, set[int]], set[str] | None]:
    """({name: cells whose imports bind it from the course library `utils`}, the public names of the course modules
    star-imported, or None when a module outside the course is star-imported: names then unknown)."""
    library: dict[str, set[int]] = {}
    starred: set[str] | None = set()
    for i, cell in cells.items():
        for node in cell.import_nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "utils":
                        library.setdefault(a.asname or a.name.split(".")[0], set()).add(i)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "utils":
                for a in node.names:
                    if a.name != "*":
                        library.setdefault(a.asname or a.name, set()).add(i)
                    elif starred is not None:
                        names = public_names(node.module)
                        starred = None if names is None else starred | names
            elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                starred = None
    return library, starred


def calls_only_library(cell: "Cell", binders: dict[str, set[int]], library: dict[str, set[int]],
                       starred: set[str] | None) -> bool:
    """Does every call in `cell` go to a safe builtin, a function of the course library (imported from `utils`, or
    an attribute of a module imported from it) or a read-only method of a value (`.mean()`, `.assert_above(...)`)?"""
    def from_library(name: str) -> bool:
        bound = binders.get(name)
        if bound is None:  # bound by no cell: a builtin or a star import's
            return starred is not None and name in starred
        return name in library and bound <= library[name]

    for node in ast.walk(cell.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            ok = (func.id in SAFE_BUILTINS and func.id not in binders and starred is not None  # not shadowed
                  and func.id not in starred) or from_library(func.id)
        elif isinstance(func, ast.Attribute):
            root = root_name(func.value)
            ok = func.attr in READ_ONLY_METHODS or (root is not None and isinstance(func.value, (ast.Name, ast.Attribute))
                                                    and from_library(root))
        else:
            ok = False
        if not ok:
            return False
    return True


def shows_results(cells: dict[int, "Cell"], course: set[int], modules: set[str]) -> set[int]:
    """The learner's cells that only show or check what the course's cells (or other such cells) computed, as a
    claim cell does: they compute and assert (`only_computes`), define no function, class or lambda, call only the
    course library, safe builtins and read-only methods (`calls_only_library`: never a function the notebook
    defines, so nothing of the learner's code runs in them), and read only names that the course's cells, imports
    or other such cells bind."""
    binders: dict[str, set[int]] = {}  # every cell that binds the name
    values: dict[str, set[int]] = {}  # the cells that bind it otherwise than by an import
    for i, cell in cells.items():
        for name in cell.binds:
            binders.setdefault(name, set()).add(i)
            if name not in cell.imports:
                values.setdefault(name, set()).add(i)
    library, starred = import_bindings(cells)
    found = {i for i, cell in cells.items() if i not in course and not cell.defines_code
             and only_computes(cell, modules) and calls_only_library(cell, binders, library, starred)}
    # a name some other learner's cell binds (but by an import) is not the course's: cells reading it are out, and
    # what they bind too
    untrusted = {name for name, where in values.items() if where - course - found}
    readers: dict[str, list[int]] = {}
    for i in found:
        for name in cells[i].reads:
            readers.setdefault(name, []).append(i)
    todo = [i for name in untrusted for i in readers.get(name, [])]
    while todo:  # linear: each name turns untrusted once
        i = todo.pop()
        if i not in found:
            continue
        found.discard(i)
        for name in cells[i].binds - untrusted:
            untrusted.add(name)
            todo.extend(readers.get(name, []))
    return found


def skippable_cells(sources: list[str], course_cells: set[str], graded: set[str]) -> list[int]:
    """Indices (into `sources`, the learner's code cells) of the cells the grader need not run.

    course_cells: the normalized sources of the exercise notebook's code cells.
    graded: the names of the functions the grader will call (read after the last cell).
    Linear in the notebook's size per round of the fixpoint; over MAX_SOURCE_CHARS of code or MAX_ROUNDS rounds,
    nothing is left out (when in doubt, every cell runs)."""
    if sum(len(s) for s in sources) > MAX_SOURCE_CHARS:
        return []
    enabled = gc.isenabled()
    gc.disable()  # syntax trees are many small objects: full collections in a process with torch loaded cost more
    try:
        return _skippable(sources, course_cells, graded, time.monotonic() + MAX_SECONDS)
    finally:
        if enabled:
            gc.enable()


def _skippable(sources: list[str], course_cells: set[str], graded: set[str], deadline: float) -> list[int]:
    cells = {}
    for i, src in enumerate(sources):
        if src.strip():
            cells[i] = analyse(src)
            if cells[i] is None:
                return []  # IPython syntax or a syntax error somewhere: run everything
            if time.monotonic() > deadline:
                return []
    modules = set().union(*(c.imports for c in cells.values()))
    course = {i for i in cells if normalized(sources[i]) in course_cells}
    candidates = {i for i in course if only_computes(cells[i], modules)} | shows_results(cells, course, modules)
    for _ in range(MAX_ROUNDS):
        if not candidates:
            return []
        kept = [i for i in sorted(cells) if i not in candidates]
        late = set(graded).union(*(cells[i].reads_later for i in kept))
        # the last run cell that reads each name (before binding it itself). A run cell between that binds the
        # name again does not make an earlier binding unneeded: it may raise before it binds (when in doubt, run)
        last_read: dict[str, int] = {}
        for j in kept:
            for name in cells[j].reads_first:
                last_read[name] = j
        dynamic_after = max((j for j in kept if cells[j].dynamic), default=-1)
        callers_read = dynamic_callers_read(kept, cells, graded)
        needed = {i for i in candidates
                  if any(x in late or last_read.get(x, -1) > i for x in cells[i].binds)
                  or dynamic_after > i or callers_read(i)}
        if not needed:
            return sorted(candidates)
        candidates -= needed
    return []


def dynamic_callers_read(kept: list[int], cells: dict[int, Cell], graded: set[str]):
    """A test for cell i: is a function that reaches names dynamically (or one calling it) called after cell i, by
    a run cell or by the grader? Built once per round: the last run cell that names each such function."""
    callers = {name for j in kept for name, reads in cells[j].functions.items() if reads & DYNAMIC}
    while True:
        more = {name for k in kept for name, reads in cells[k].functions.items() if reads & callers} - callers
        if not more:
            break
        callers |= more
    if callers & set(graded):
        return lambda i: True
    last = max((k for k in kept if cells[k].reads & callers), default=-1)
    return lambda i: last > i


def course_cells(folder: Path = EXERCISES) -> dict[str, set[str]]:
    """{lesson: the normalized sources of its exercise notebook's code cells}; {} without the notebooks."""
    import nbformat

    found = {}
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # a broken template: run every cell of that lesson
            continue
        found[path.name[:2]] = {normalized(c.source) for c in nb.cells if c.cell_type == "code"}
    return found
