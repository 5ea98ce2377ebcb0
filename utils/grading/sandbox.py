"""The sandbox each learner's kernel runs in: bubblewrap (https://github.com/containers/bubblewrap).

Each kernel is started by `launch` (run by jupyter_client as the kernel's command) which execs
`bwrap` with new user, PID, network, IPC, UTS and cgroup namespaces. Inside, the kernel sees only:
the system's /usr and a few files of /etc (read-only), the Python installation (read-only), the course library
without answers at /course (read-only: `utils/` without `reference/` and with only the kernel side of
`utils/grading`, and `data/`), its cwd /course/notebooks and /tmp (private tmpfs of limited size, gone with the
sandbox), the case inputs (read-only) and the folder of its own connection sockets. Its /proc shows only its own
processes; it has no network (not even loopback to the host). All processes die with the sandbox
(--die-with-parent, PID namespace). Limits: address space, file size, processes + threads, CPU seconds, no core
files. When the grader runs as root, the sandbox runs as an unprivileged user (uid 65534 + slot), never as root.

Where bwrap cannot start (macOS, no bubblewrap, user namespaces disabled), `check()` says what to do;
`--no-sandbox` runs plain kernels as the grader's own user (trusted submissions only).
"""

from __future__ import annotations

import compileall
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent  # utils/grading
UTILS_DIR = PACKAGE_DIR.parent
ROOT = UTILS_DIR.parent
KERNEL_SIDE = ("__init__.py", "records.py", "kernel.py")  # all of utils/grading a kernel gets
COURSE_MOUNT = "/course"
CWD = "/course/notebooks"
ARGS_MOUNT = "/grading/args"
ETC_FILES = ("passwd", "group", "nsswitch.conf", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
             "ssl", "fonts", "alternatives", "mime.types", "matplotlibrc")
NOBODY = 65534


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create the namespaces it needs."""


def bootstrap_argv(module: str, *args: str) -> list[str]:
    """`python -I` running utils.grading.<module>.main(args) without executing utils/__init__ (no torch import)."""
    code = (
        "import sys, types; m = types.ModuleType('utils'); m.__path__ = [%r]; sys.modules['utils'] = m; "
        "from utils.grading.%s import main; sys.exit(main(sys.argv[1:]))" % (str(UTILS_DIR), module)
    )
    return [sys.executable, "-I", "-c", code, *args]


# ---------------------------------------------------------------------------------------------------------
# The course library a kernel sees
# ---------------------------------------------------------------------------------------------------------


def make_course(dest: Path) -> Path:
    """A pristine copy of utils/ (no reference/, no grader) and data/, plus an empty notebooks/ mount point."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in ("__pycache__", "reference", "grade.py", "grade_worker.py") or n.endswith(".pyc")}
        if Path(folder).resolve() == PACKAGE_DIR:
            skip |= {n for n in names if n not in KERNEL_SIDE}
        return skip

    shutil.copytree(UTILS_DIR, dest / "utils", ignore=ignore)
    shutil.copytree(ROOT / "data", dest / "data", ignore=shutil.ignore_patterns("__pycache__", ".*"))
    (dest / "notebooks").mkdir()
    # byte-compiled here, by the grader, so that no kernel compiles the library again (the sandbox can't write it)
    compileall.compile_dir(dest / "utils", quiet=1, workers=1)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


# ---------------------------------------------------------------------------------------------------------
# Is the sandbox available?
# ---------------------------------------------------------------------------------------------------------


def sandbox_uid(slot: int) -> int | None:
    """The unprivileged user a sandbox runs as when the grader is root (else None: the grader's own user)."""
    return NOBODY - 1 - (slot % 1000) if os.geteuid() == 0 else None


def check() -> None:
    """Raise SandboxUnavailable with what to do, unless bwrap can start a sandbox here."""
    advice = ("Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`) on Linux with unprivileged user "
              "namespaces enabled (`sysctl kernel.unprivileged_userns_clone=1`; Ubuntu 24.04: "
              "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or grade on Gradescope "
              "(`python -m utils.grade gradescope --out DIR`). Only for submissions you trust: --no-sandbox.")
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"The grader's sandbox needs Linux (this is {sys.platform}). {advice}")
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(f"bubblewrap (`bwrap`) is not installed. {advice}")
    argv = ["bwrap", *system_binds(), "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--die-with-parent", "--", "/bin/true"]
    uid = sandbox_uid(0)
    preexec = (lambda: drop_privileges(uid)) if uid is not None else None
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, preexec_fn=preexec)
    if proc.returncode != 0:
        raise SandboxUnavailable(f"bwrap cannot start a sandbox here ({proc.stderr.strip()[:300]}). {advice}")


# ---------------------------------------------------------------------------------------------------------
# The bwrap command line
# ---------------------------------------------------------------------------------------------------------


def system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    for name in ETC_FILES:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


VENV_MOUNT = "/opt/venv"  # where a virtual environment appears in the sandbox, whatever its host path


def python_mounts() -> list[tuple[str, str]]:
    """(host path, sandbox path) of the Python installation and the virtual environment the kernel runs from, both
    read-only. A virtual environment appears at VENV_MOUNT, so that a `.venv` inside the checkout (as CI makes it)
    names no host path in the sandbox."""
    mounts: list[tuple[str, str]] = []
    if not sys.base_prefix.startswith("/usr/") and sys.base_prefix != "/usr":
        mounts.append((sys.base_prefix, sys.base_prefix))
    if sys.prefix != sys.base_prefix:
        mounts.append((sys.prefix, VENV_MOUNT))
    return mounts


def python_dirs() -> list[str]:
    """The host folders of the Python installation and virtual environment (read-only in the sandbox)."""
    return [host for host, _ in python_mounts()]


def sandbox_python() -> str:
    """The interpreter's path inside the sandbox (a virtual environment's python is found under VENV_MOUNT: Python
    reads the pyvenv.cfg beside the path it was started by)."""
    if sys.prefix != sys.base_prefix and sys.executable.startswith(sys.prefix + os.sep):
        return VENV_MOUNT + sys.executable[len(sys.prefix):]
    return sys.executable


def bwrap_argv(spec: dict, command: list[str]) -> list[str]:
    """The whole command: bwrap, its mounts and environment, then `command` (the kernel)."""
    args = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox", "--cap-drop", "ALL"]
    args += system_binds()
    for host, inside in python_mounts():
        args += ["--ro-bind", host, inside]
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = str(spec["disk_mb"] * 2**20)
    args += ["--size", size, "--tmpfs", "/tmp", "--dir", "/tmp/home"]
    args += ["--ro-bind", spec["course"], COURSE_MOUNT]
    args += ["--size", size, "--tmpfs", CWD]
    args += ["--ro-bind", spec["args"], ARGS_MOUNT]
    args += ["--bind", spec["runtime"], spec["runtime"]]
    args += ["--chdir", CWD, "--clearenv"]
    for key, value in spec["env"].items():
        args += ["--setenv", key, value]
    return args + ["--", *command]


def kernel_env(threads: int, grading_env: str) -> dict[str, str]:
    """The kernel's whole environment inside the sandbox."""
    home = "/tmp/home"
    return {
        "PATH": os.pathsep.join([str(Path(sandbox_python()).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONPATH": COURSE_MOUNT,
        "IPYTHONDIR": f"{home}/.ipython", "JUPYTER_CONFIG_DIR": f"{home}/.jupyter",
        "JUPYTER_DATA_DIR": f"{home}/.local/share/jupyter", "JUPYTER_PLATFORM_DIRS": "1",
        "MPLCONFIGDIR": f"{home}/.matplotlib", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads), "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": "", grading_env: "1",
    }


def set_limits(spec: dict) -> None:
    def limit(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    limit(resource.RLIMIT_AS, spec["memory_mb"] * 2**20)
    limit(resource.RLIMIT_FSIZE, spec["file_mb"] * 2**20)
    limit(resource.RLIMIT_CPU, spec["cpu_seconds"])
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NPROC, spec["max_procs"])


def blocked_ancestor(path: str, uid: int) -> str | None:
    """The topmost folder above `path` (not `path` itself) that user `uid` cannot enter (e.g. /root), else None."""
    parts = Path(path).parts
    for i in range(2, len(parts)):
        st = os.stat(Path(*parts[:i]))
        if not st.st_mode & 0o001 and st.st_uid != uid:
            return str(Path(*parts[:i]))
    return None


def expose(paths: list[str], uid: int) -> None:
    """As root, before dropping privileges: in a private mount namespace, cover each folder the sandbox user cannot
    enter (e.g. /root above a pyenv Python) with an empty tmpfs and bind the needed paths back into it, so that the
    unprivileged bwrap can mount them. Nothing changes outside this process."""
    blocked = [(p, blocked_ancestor(p, uid)) for p in paths]
    blocked = [(p, a) for p, a in blocked if a]
    if not blocked:
        return
    libc = ctypes.CDLL(None, use_errno=True)

    def check(rc: int, what: str) -> None:
        if rc != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    fds = {p: os.open(p, os.O_PATH) for p, _ in blocked}  # opened in the new namespace, before covering
    for ancestor in dict.fromkeys(a for _, a in blocked):
        check(libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", 0, b"mode=0755,size=1m"), f"tmpfs on {ancestor}")
    for path, _ in blocked:
        os.makedirs(path, exist_ok=True)
        check(libc.mount(f"/proc/self/fd/{fds[path]}".encode(), path.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
        os.close(fds[path])


MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def drop_privileges(uid: int | None) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def user_launch(spec: dict, connection_file: str) -> None:
    """Mode "user": no namespaces; the kernel runs as an unprivileged user with the same limits, in a folder
    where only its own files are writable (the grader's files and the answers are not readable by that user)."""
    uid = spec["uid"]
    os.chown(spec["runtime"], uid, uid)
    os.chown(connection_file, uid, uid)
    set_limits(spec)
    drop_privileges(uid)
    os.chdir(spec["cwd"])
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file], spec["env"])


def main(argv: list[str]) -> int:
    """The kernel command (kernel.json): `<bootstrap> sandbox SPEC.json CONNECTION_FILE`. Never returns."""
    spec = json.loads(Path(argv[0]).read_text())
    connection_file = argv[1]
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # whatever the kernel writes to its inherited stdout goes nowhere
        os.dup2(devnull, std)
    if spec["mode"] == "user":
        user_launch(spec, connection_file)
    if spec["uid"] is not None:  # the kernel must read its connection file and create its sockets
        os.chown(spec["runtime"], spec["uid"], spec["uid"])
        os.chown(connection_file, spec["uid"], spec["uid"])
    enter(spec)
    argv = hidden_args(bwrap_argv(spec, [sandbox_python(), "-m", "ipykernel_launcher", "-f", connection_file]))
    os.execvp(argv[0], argv)
    return 1


def hidden_args(argv: list[str]) -> list[str]:
    """`bwrap --args FD -- COMMAND`: the options come through a pipe, so the sandbox's /proc/1/cmdline names no host
    path (where the grader keeps its files)."""
    split = argv.index("--")
    r, w = os.pipe()
    os.write(w, b"".join(a.encode() + b"\0" for a in argv[1:split]))
    os.close(w)
    os.set_inheritable(r, True)
    return [argv[0], "--args", str(r), *argv[split:]]


def enter(spec: dict) -> None:
    """In the process about to exec bwrap: make the mounted paths reachable, set the limits, drop root."""
    if spec["uid"] is not None:
        expose([*python_dirs(), spec["course"], spec["args"], spec["runtime"]], spec["uid"])
    set_limits(spec)
    drop_privileges(spec["uid"])


def run_sandboxed(spec: dict, command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `command` in the sandbox `spec` describes (tests and benchmarks: the kernel goes through main)."""
    argv = hidden_args(bwrap_argv(spec, command))
    try:
        return subprocess.run(argv, preexec_fn=lambda: enter(spec), capture_output=True, text=True, timeout=timeout,
                              pass_fds=[int(argv[2])])
    finally:
        os.close(int(argv[2]))
