"""The sandbox each learner's kernel runs in: bubblewrap (https://github.com/containers/bubblewrap).

Each kernel is started by `launch` (run by jupyter_client as the kernel's command) which execs
`bwrap` with new user, PID, network, IPC, UTS and cgroup namespaces. Inside, the kernel sees only:
the system's /usr and a few files of /etc (read-only), the Python installation (read-only), the course library
without answers at /course (read-only: `utils/` without `reference/` and with only the kernel side of
`utils/grading`, and `data/`), its cwd /course/notebooks and /tmp (private tmpfs of limited size, gone with the
sandbox), the case inputs (read-only) and the folder of its own connection sockets. Its /proc shows only its own
processes; it has no network (not even loopback to the host). All processes die with the sandbox
(--die-with-parent, PID namespace). Limits: address space, file size, processes + threads (counted per
sandbox: set inside its own user namespace), CPU seconds, no core files. Every writable place is a tmpfs of limited
size (cwd, /tmp, /dev/shm) or the kernel's own socket folder; the root, /etc and /dev are read-only. When the grader
runs as root, each sandbox runs as an unprivileged uid leased for it alone on this machine (`UidPool`: a lock file per
uid, so two grader runs never share one), never as root.

The launcher (`main`, run by the worker as root or as the grader's user) touches no path the learner could have
changed: each kernel gets a fresh socket folder that the worker made, opened with O_NOFOLLOW and chowned by file
descriptor; bwrap starts with an empty environment (nothing of the host in the sandbox's /proc/1/environ) and with
SIGINT ignored, so that the worker's interrupt (SIGINT to the kernel's process group) stops the learner's cell and
not bwrap itself.

Where bwrap cannot start (macOS, no bubblewrap, user namespaces disabled), `check()` says what to do and the grader
refuses; `--no-sandbox` runs plain kernels as the grader's own user (trusted submissions only). There is no
unsandboxed mode for root: root acting on paths a learner controls is how a sandbox is escaped.
"""

from __future__ import annotations

import compileall
import ctypes
import errno
import fcntl
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
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
    """An unprivileged uid for a one-off sandbox when the grader is root (else None: the grader's own user).
    Graders lease theirs from `UidPool` instead, so that no two sandboxes on the machine share one."""
    return NOBODY - 1 - (slot % UID_RANGE) if os.geteuid() == 0 else None


UID_RANGE = 1000  # uids NOBODY-1000 .. NOBODY-1 are the sandboxes' (unused by real accounts on Debian/Ubuntu)
UID_LOCKS = "/run/codebreak-uids"  # a lock file per uid in use (root-only folder; flock: freed when a process dies)


class UidPool:
    """Machine-unique uids for sandboxes when the grader is root: `acquire()` takes a uid no other sandbox on this
    machine holds (any grader run: a flock on UID_LOCKS/<uid>, released by `release` or when the process dies), so
    that one learner's processes never count against another's process limit. Not root: None (the grader's user)."""

    def __init__(self, folder: str = UID_LOCKS):
        self.folder = folder
        self.held: dict[int, int] = {}
        self.lock = threading.Lock()

    def lock_dir(self) -> int:
        for folder in (self.folder, os.path.join(tempfile.gettempdir(), "codebreak-uids-0")):
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                pass
            except OSError:
                continue
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            st = os.fstat(fd)
            if st.st_uid == 0 and not st.st_mode & 0o077:
                return fd
            os.close(fd)
        raise SandboxUnavailable(f"cannot make a root-only folder for the sandboxes' uid locks ({self.folder})")

    def acquire(self) -> int | None:
        if os.geteuid() != 0:
            return None
        with self.lock:
            dir_fd = self.lock_dir()
            try:
                for uid in range(NOBODY - 1, NOBODY - 1 - UID_RANGE, -1):
                    if uid in self.held:
                        continue
                    fd = os.open(str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        os.close(fd)
                        continue
                    self.held[uid] = fd
                    return uid
            finally:
                os.close(dir_fd)
        raise SandboxUnavailable(f"all {UID_RANGE} sandbox uids are in use on this machine")

    def release(self, uid: int | None) -> None:
        with self.lock:
            fd = self.held.pop(uid, None) if uid is not None else None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for uid in list(self.held):
            self.release(uid)


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
            "--die-with-parent", "--remount-ro", "/", "--", "/bin/true"]
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
    size = str(spec["disk_mb"] * 2**20)
    # every writable place is a tmpfs of limited size; /dev (bwrap's own tmpfs) and the root are read-only
    args += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    args += ["--size", size, "--tmpfs", "/tmp", "--dir", "/tmp/home"]
    args += ["--ro-bind", spec["course"], COURSE_MOUNT]
    args += ["--size", size, "--tmpfs", CWD]
    args += ["--ro-bind", spec["args"], ARGS_MOUNT]
    args += ["--bind", spec["runtime"], spec["runtime"]]
    args += ["--remount-ro", "/", "--chdir", CWD, "--clearenv"]
    for key, value in spec["env"].items():
        args += ["--setenv", key, value]
    # the process limit is set inside the sandbox's own user namespace, where it counts this sandbox's processes
    # only (set before bwrap, it would count every process of the uid on the machine)
    nproc = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_NPROC, (%d, %d)); "
             "os.execv(sys.argv[1], sys.argv[1:])" % (spec["max_procs"], spec["max_procs"]))
    return args + ["--", sandbox_python(), "-I", "-S", "-c", nproc, *command]


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
    # RLIMIT_NPROC is set inside the sandbox (bwrap_argv): set here, before bwrap makes the user namespace, it
    # would count every process of the uid on the machine against it


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


MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 2, 4, 4096, 16384, 1 << 18, 2


def private_mount_namespace() -> None:
    """As root: this process (and what it starts) gets mounts of its own, gone when the last of them exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "private mount namespace: " + os.strerror(ctypes.get_errno()))


def mount_tmpfs(path: str | os.PathLike, size_mb: int) -> None:
    """As root, in the worker's private mount namespace: a tmpfs of `size_mb` (root's, mode 0700) on `path`, so
    that the one folder a kernel may write outside its own tmpfs (its socket folder) is size-limited too."""
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"size={size_mb}m,nr_inodes=4096,mode=0700,uid=0,gid=0".encode()
    if libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        raise OSError(ctypes.get_errno(), f"tmpfs on {path}: {os.strerror(ctypes.get_errno())}")


def unmount(path: str | os.PathLike) -> None:
    ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(path), MNT_DETACH)


def drop_privileges(uid: int | None) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def open_runtime(spec: dict, connection_file: str) -> tuple[int, int]:
    """File descriptors of the kernel's fresh socket folder and its connection file, opened without following a
    symbolic link anywhere in the last step and checked to be the worker's own (made for this kernel alone)."""
    runtime = os.path.normpath(spec["runtime"])
    if os.path.dirname(os.path.normpath(connection_file)) != runtime:
        raise SystemExit("the connection file is not in the kernel's socket folder")
    dir_fd = os.open(runtime, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(dir_fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise SystemExit("the kernel's socket folder is not the worker's own")
    file_fd = os.open(os.path.basename(connection_file), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    fst = os.fstat(file_fd)
    if not stat.S_ISREG(fst.st_mode) or fst.st_uid != os.geteuid():
        raise SystemExit("the connection file is not the worker's own")
    return dir_fd, file_fd


def main(argv: list[str]) -> int:
    """The kernel command (kernel.json): `<bootstrap> sandbox SPEC.json CONNECTION_FILE`. Never returns."""
    spec = json.loads(Path(argv[0]).read_text())
    connection_file = argv[1]
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # whatever the kernel writes to its inherited stdout goes nowhere
        os.dup2(devnull, std)
    if spec["mode"] != "bwrap":
        raise SystemExit(f"sandbox mode {spec['mode']!r}: only bwrap is supported")
    dir_fd, file_fd = open_runtime(spec, connection_file)
    if spec["uid"] is not None:  # the kernel must read its connection file and create its sockets
        os.fchown(dir_fd, spec["uid"], spec["uid"])
        os.fchown(file_fd, spec["uid"], spec["uid"])
    os.close(file_fd)
    os.close(dir_fd)
    enter(spec)
    argv = hidden_args(bwrap_argv(spec, [sandbox_python(), "-m", "ipykernel_launcher", "-f", connection_file]))
    # SIGINT (the worker's interrupt, sent to the whole process group) must reach the kernel, not end bwrap
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.execve(shutil.which(argv[0]) or argv[0], argv, {"PATH": "/usr/local/bin:/usr/bin:/bin"})
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
                              pass_fds=[int(argv[2])], env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    finally:
        os.close(int(argv[2]))


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a folder the sandbox could write into, never following a symbolic link (shutil.rmtree works by file
    descriptor on Linux; a path that is itself a link is unlinked, not followed)."""
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in (errno.ENOENT,):
            shutil.rmtree(path, ignore_errors=True)
