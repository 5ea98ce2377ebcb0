"""The sandbox each learner's kernel runs in: bubblewrap (https://github.com/containers/bubblewrap).

Each kernel is started by `main` (run by jupyter_client as the kernel's command) which execs
`bwrap` with new user, PID, network, IPC, UTS and cgroup namespaces. Inside, the kernel sees only:
the system's /usr and a few files of /etc (read-only), the Python installation (read-only, at /opt/python and
/opt/venv whatever its host paths), the course library
without answers at /course (read-only: `utils/` without `reference/` and with only the kernel side of
`utils/grading`, and `data/`), its cwd /course/notebooks and /tmp (private tmpfs of limited size, gone with the
sandbox), the case inputs (read-only) and the folder of its own connection sockets. Its /proc shows only its own
processes; it has no network (not even loopback to the host). All processes die with the sandbox
(--die-with-parent, PID namespace). Limits: address space, file size, processes + threads (counted per
sandbox: set inside its own user namespace), CPU seconds, no core files. Every writable place is a tmpfs of limited
size (cwd, /tmp, /dev/shm) or the kernel's own socket folder; the root, /etc and /dev are read-only. When the grader
runs as root, each sandbox runs as an unprivileged uid leased for it alone on this machine (`UidPool`: a lock file per
uid, so two grader runs never share one), never as root.

Nothing in the sandbox's /proc names a host path: before exec-ing bwrap, the launcher makes each folder the sandbox
gets a filesystem of its own in a mount namespace of its own (`stage`: overlays named by file descriptor, tmpfs),
since mountinfo prints a bind mount's source as its path inside the source's filesystem.

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
from dataclasses import dataclass
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
            "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--clearenv"]
    for _, mount in python_mounts():  # the kernels' way in: namespaces of the launcher's own, staged mounts
        argv += ["--ro-bind", staged(mount), mount]
    for key, value in python_env().items():
        argv += ["--setenv", key, value]
    argv += ["--remount-ro", "/", "--", sandbox_python(), "-I", "-S", "-c", "import sys"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, preexec_fn=lambda: enter(
            dict(uid=sandbox_uid(0), memory_mb=1024, file_mb=1, cpu_seconds=60)))
    except subprocess.SubprocessError as e:
        raise SandboxUnavailable(f"cannot make the sandbox's namespaces here ({e}). {advice}") from None
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


PYTHON_MOUNT = "/opt/python"  # where a Python installation outside /usr appears in the sandbox
VENV_MOUNT = "/opt/venv"  # where a virtual environment appears in the sandbox, whatever its host path
RUNTIME_MOUNT = "/grading/runtime"  # where the kernel's socket folder appears in the sandbox
# In the launcher's own mount namespace, a fresh tmpfs holding what bwrap binds into the sandbox, over a folder the
# launcher and bwrap need nothing from once it is staged (not /tmp: checkouts, environments and bwrap may be there)
STAGE = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"


def relocated_base() -> bool:
    """Is the Python installation outside /usr (pyenv, conda, a build of its own), so mounted at PYTHON_MOUNT?"""
    return not (sys.base_prefix == "/usr" or sys.base_prefix.startswith("/usr/"))


def python_mounts() -> list[tuple[str, str]]:
    """(host path, sandbox path) of the Python installation and the virtual environment the kernel runs from, both
    read-only, at fixed sandbox paths (PYTHON_MOUNT, VENV_MOUNT) so that the sandbox names neither's host path."""
    mounts: list[tuple[str, str]] = []
    if relocated_base():
        mounts.append((sys.base_prefix, PYTHON_MOUNT))
    if sys.prefix != sys.base_prefix:
        mounts.append((sys.prefix, VENV_MOUNT))
    return mounts


def inside(path: str) -> str:
    """A host path of the Python installation or virtual environment as the sandbox sees it (else unchanged)."""
    for host, mount in sorted(python_mounts(), key=lambda m: -len(m[0])):
        if path == host or path.startswith(host + os.sep):
            return mount + path[len(host):]
    return path


def sandbox_python() -> str:
    """The interpreter's path inside the sandbox (a virtual environment's python is found under VENV_MOUNT: Python
    reads the pyvenv.cfg beside the path it was started by)."""
    return inside(sys.executable)


def python_env() -> dict[str, str]:
    """What the relocated interpreter needs: its shared libpython is found by a run path naming the host folder."""
    lib = Path(sys.base_prefix) / "lib"
    if relocated_base() and any(lib.glob("libpython*.so*")):
        return {"LD_LIBRARY_PATH": f"{PYTHON_MOUNT}/lib"}
    return {}


@dataclass(frozen=True)
class VenvPatch:
    """The top layer over the virtual environment: a pyvenv.cfg and python links that name the sandbox's paths (the
    host's name the host folders: `home`, `command`, links into the installation). Read before staging, written
    into the staging tmpfs."""

    config: str
    links: tuple[tuple[str, str], ...]

    @classmethod
    def read(cls) -> "VenvPatch | None":
        if sys.prefix == sys.base_prefix:
            return None
        keep = []
        for line in (Path(sys.prefix) / "pyvenv.cfg").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition("="))
            if key == "home":
                keep.append(f"home = {inside(value)}")
            elif key in ("include-system-site-packages", "version", "version_info", "implementation"):
                keep.append(line)
        links = []
        for link in sorted((Path(sys.prefix) / "bin").iterdir()):
            if link.is_symlink() and os.path.isabs(target := os.readlink(link)) and inside(target) != target:
                links.append((link.name, inside(target)))
        return cls("\n".join(keep) + "\n", tuple(links))

    def write(self, dest: Path) -> None:
        (dest / "bin").mkdir(parents=True)
        (dest / "pyvenv.cfg").write_text(self.config)
        for name, target in self.links:
            (dest / "bin" / name).symlink_to(target)
        for p in (dest, dest / "bin", dest / "pyvenv.cfg"):  # whatever the launcher's umask
            p.chmod(0o644 if p.is_file() else 0o755)


def bwrap_argv(spec: dict, command: list[str]) -> list[str]:
    """The whole command: bwrap, its mounts and environment, then `command` (the kernel)."""
    args = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox", "--cap-drop", "ALL"]
    args += system_binds()
    for _, mount in python_mounts():
        args += ["--ro-bind", staged(mount), mount]
    size = str(spec["disk_mb"] * 2**20)
    # every writable place is a tmpfs of limited size; /dev (bwrap's own tmpfs) and the root are read-only
    args += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    args += ["--size", size, "--tmpfs", "/tmp", "--dir", "/tmp/home"]
    args += ["--ro-bind", staged(COURSE_MOUNT), COURSE_MOUNT]
    args += ["--size", size, "--tmpfs", CWD]
    args += ["--ro-bind", staged(ARGS_MOUNT), ARGS_MOUNT]
    args += ["--bind", staged(RUNTIME_MOUNT), RUNTIME_MOUNT]
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
        "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": "", grading_env: "1", **python_env(),
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


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 1, 2, 4, 4096, 16384, 1 << 18, 2
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
LIBC = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str | os.PathLike, fstype: str | None = None, flags: int = 0,
          data: str | None = None, check: bool = True) -> bool:
    """mount(2); an OSError naming what failed (or False, with check=False)."""
    rc = LIBC.mount(os.fsencode(source), os.fsencode(target), fstype.encode() if fstype else None, flags,
                    data.encode() if data else None)
    if rc != 0 and check:
        raise OSError(ctypes.get_errno(), f"mount {fstype or source} on {target}: {os.strerror(ctypes.get_errno())}")
    return rc == 0


def unshare(flags: int) -> None:
    if LIBC.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), f"unshare({flags:#x}): {os.strerror(ctypes.get_errno())}")


def private_mount_namespace() -> None:
    """As root: this process (and what it starts) gets mounts of its own, gone when the last of them exits."""
    unshare(CLONE_NEWNS)
    mount("none", "/", flags=MS_REC | MS_PRIVATE)


def has_own_mounts(parent_pid: int) -> bool:
    """Does this process have a mount namespace other than process `parent_pid`'s (private_mount_namespace worked)?"""
    try:
        return os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{parent_pid}/ns/mnt")
    except OSError:
        return False


def mount_tmpfs(path: str | os.PathLike, size_mb: int, mode: int = 0o700) -> None:
    """As root, in the worker's private mount namespace: a tmpfs of `size_mb` (root's) on `path`, so that the
    folders a kernel sees from the worker (its socket folder, written by the kernel; its arguments folder, written
    by the worker) are size-limited and, being filesystems of their own, name no host path in the sandbox's
    /proc/self/mountinfo."""
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,nr_inodes=4096,mode={mode:o},uid=0,gid=0")


def unmount(path: str | os.PathLike) -> None:
    LIBC.umount2(os.fsencode(path), MNT_DETACH)


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
    kernel_file = sandbox_connection_file(spec, dir_fd, file_fd)
    if spec["uid"] is not None:  # the kernel must read its connection file and create its sockets
        os.fchown(dir_fd, spec["uid"], spec["uid"])
    os.close(file_fd)
    os.close(dir_fd)
    enter(spec)
    argv = hidden_args(bwrap_argv(spec, [sandbox_python(), "-m", "ipykernel_launcher", "-f", kernel_file]))
    # SIGINT (the worker's interrupt, sent to the whole process group) must reach the kernel, not end bwrap
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.execve(shutil.which(argv[0]) or argv[0], argv, {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    return 1


def sandbox_connection_file(spec: dict, dir_fd: int, file_fd: int) -> str:
    """The kernel's copy of its connection file, with its socket paths where the sandbox sees the socket folder
    (RUNTIME_MOUNT), written beside the worker's (by descriptor, never following a link); its sandbox path."""
    info = json.loads(os.read(file_fd, 1 << 16))
    runtime = os.path.normpath(spec["runtime"])
    if info.get("transport") == "ipc" and str(info.get("ip", "")).startswith(runtime + "/"):
        info["ip"] = RUNTIME_MOUNT + info["ip"][len(runtime):]
    name = "sandbox-connection.json"
    try:  # a kernel started again in the same folder: the old copy (or whatever the learner put there) goes
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
        if spec["uid"] is not None:
            os.fchown(f.fileno(), spec["uid"], spec["uid"])
    return f"{RUNTIME_MOUNT}/{name}"


def hidden_args(argv: list[str]) -> list[str]:
    """`bwrap --args FD -- COMMAND`: the options come through a pipe, so the sandbox's /proc/1/cmdline names no host
    path (where the grader keeps its files)."""
    split = argv.index("--")
    r, w = os.pipe()
    os.write(w, b"".join(a.encode() + b"\0" for a in argv[1:split]))
    os.close(w)
    os.set_inheritable(r, True)
    return [argv[0], "--args", str(r), *argv[split:]]


def staged(mount: str) -> str:
    """Where the launcher stages what bwrap binds at `mount` (in the launcher's own mount namespace)."""
    return f"{STAGE}/{mount.strip('/').replace('/', '-')}"


def sources(spec: dict) -> dict[str, tuple[int, bool]]:
    """sandbox path -> (an O_PATH descriptor of its host folder, whether it may change while the kernel runs),
    opened in the namespace where they are staged, before STAGE is covered."""
    def fd(path: str, follow: bool = True) -> int:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))

    found = {mount: (fd(host), False) for host, mount in python_mounts()}  # the instructor's (may be links)
    if "course" in spec:
        found[COURSE_MOUNT] = (fd(spec["course"]), False)
    for key, mount in (("args", ARGS_MOUNT), ("runtime", RUNTIME_MOUNT)):  # folders a kernel has written in
        if key in spec:
            found[mount] = (fd(spec[key], follow=False), True)
    return found


def own_namespaces(uid: int | None) -> None:
    """A user and mount namespace of the launcher's own, where it may mount what bwrap will bind; nothing changes
    outside it. Single-threaded processes only (a preexec_fn, or the launcher). Not root (`uid` None): the user maps
    itself. Root that may not mount (`uid`: the sandbox's): root and `uid` are mapped, so that the launcher stages as
    root and then drops to `uid`."""
    if uid is None:
        me, group = os.geteuid(), os.getegid()
        unshare(CLONE_NEWUSER | CLONE_NEWNS)
        for name, text in (("setgroups", "deny"), ("uid_map", f"{me} {me} 1"), ("gid_map", f"{group} {group} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    else:
        unshare_mapped_by_helper(f"0 0 1\n{uid} {uid} 1\n")
    mount("none", "/", flags=MS_REC | MS_PRIVATE)


def unshare_mapped_by_helper(id_map: str) -> None:
    """unshare(user, mount) with `id_map` as uid and gid map, written by a child left in the parent namespaces: only
    a process with CAP_SETUID there may map more than its own id (what newuidmap does)."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        mapped = b"0"
        try:
            os.read(go_r, 1)
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{os.getppid()}/{name}", "w") as f:
                    f.write(id_map)
            mapped = b"1"
        finally:
            os.write(done_w, mapped)
            os._exit(0)
    try:
        unshare(CLONE_NEWUSER | CLONE_NEWNS)
        os.write(go_w, b"1")
        mapped = os.read(done_r, 1)
    finally:
        for fd in (go_r, go_w, done_r, done_w):
            os.close(fd)
        os.waitpid(helper, 0)
    if mapped != b"1":
        raise OSError(errno.EPERM, "could not map root and the sandbox's uid into the launcher's namespace")


def stage(found: dict[str, tuple[int, bool]], patch: VenvPatch | None) -> None:
    """Mount, under STAGE, each folder bwrap binds into the sandbox as a filesystem of its own, so that the
    sandbox's /proc/self/mountinfo names no host path (it prints a bind mount's source as its path inside the
    source's filesystem, whatever the mount point). Read-only folders that never change (Python, the course copy)
    become read-only overlays whose layers are named by descriptor (`/proc/self/fd/N`, which is all mountinfo
    shows); the virtual environment gets a top layer naming sandbox paths (venv_patch). Folders that change while
    the kernel runs (arguments, sockets) are bound as they are: tmpfs of their own when the grader is root."""
    mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.mkdir(f"{STAGE}/empty")
    empty = os.open(f"{STAGE}/empty", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for where, (fd, changes) in found.items():
        target = staged(where)
        os.mkdir(target)
        layers = [fd, empty]
        if where == VENV_MOUNT and patch is not None:
            patch.write(Path(f"{STAGE}/venv-patch"))
            layers = [os.open(f"{STAGE}/venv-patch", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), fd]
        lower = ":".join(f"/proc/self/fd/{layer}" for layer in layers)
        if changes or not mount("overlay", target, "overlay", MS_RDONLY, f"lowerdir={lower}", check=False):
            # a kernel without overlayfs in user namespaces: a plain bind (mountinfo then names the host folder)
            mount(f"/proc/self/fd/{fd}", target, flags=MS_BIND | MS_REC)
        for layer in {fd, *layers} - {empty}:
            os.close(layer)
    os.close(empty)


def enter(spec: dict) -> None:
    """In the process about to exec bwrap: set the limits, stage the sandbox's folders (stage) in a mount namespace of
    its own, then drop root. Root gets a private mount namespace (sources opened as root, so folders the sandbox's
    user cannot reach, such as /root above a pyenv Python or the learner's private folder, need no exposing); root
    that may not mount (a container without CAP_SYS_ADMIN) and any other user get a user namespace of their own."""
    patch = VenvPatch.read()
    set_limits(spec)
    try:
        if spec["uid"] is None:
            own_namespaces(None)
        else:
            private_mount_namespace()
    except OSError:
        if spec["uid"] is None:
            raise
        own_namespaces(spec["uid"])
    stage(sources(spec), patch)
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
