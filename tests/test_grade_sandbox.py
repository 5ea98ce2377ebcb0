"""The bubblewrap sandbox itself, probed from inside by a small script (no kernel, a few seconds each): what a
learner's code can see, reach and exhaust. Where bwrap cannot start here these tests fail with the grader's own
message (the grader refuses to run there without --no-sandbox)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from utils.checks.core import GRADING_ENV
from utils.grading import sandbox

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    sandbox.check()
    tmp = tmp_path_factory.mktemp("sandbox")
    tmp.chmod(0o711)
    course = sandbox.make_course(tmp / "course")
    (tmp / "args").mkdir(mode=0o755)
    (tmp / "args" / "case.pt").write_text("inputs")
    (tmp / "runtime").mkdir()
    uid = sandbox.sandbox_uid(0)
    if uid is not None:
        os.chown(tmp / "runtime", uid, uid)
    return dict(mode="bwrap", course=str(course), uid=uid, memory_mb=2800, file_mb=1, disk_mb=8, max_procs=48,
                cpu_seconds=60, args=str(tmp / "args"), runtime=str(tmp / "runtime"),
                env=sandbox.kernel_env(1, GRADING_ENV))


def probe(spec: dict, code: str, timeout: float = 120) -> dict:
    """Run `code` in the sandbox (from a read-only file, so that no host path is on its command line)."""
    (Path(spec["args"]) / "probe.py").write_text(textwrap.dedent(code))
    (Path(spec["args"]) / "probe.py").chmod(0o644)
    proc = sandbox.run_sandboxed(spec, [sandbox.sandbox_python(), f"{sandbox.ARGS_MOUNT}/probe.py"], timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sees_no_checkout_no_reference_no_grader(spec, tmp_path):
    secret = tmp_path / "grades.json"
    secret.write_text("{}")
    found = probe(spec, f"""
        import json, os, sys
        out = {{"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
        out["checkout"] = os.path.exists({str(ROOT)!r}) or os.path.exists({str(ROOT / 'utils' / 'reference')!r})
        out["results"] = os.path.exists({str(secret)!r})
        out["cmdlines"] = [open(f"/proc/{{p}}/cmdline", "rb").read().decode(errors="replace") for p in out["pids"]]
        out["cwds"] = []
        for p in out["pids"]:
            try:
                out["cwds"].append(os.readlink(f"/proc/{{p}}/cwd"))
            except OSError:
                pass
        out["env"] = dict(os.environ)
        try:
            import utils.reference
            out["reference"] = True
        except ImportError:
            out["reference"] = False
        out["course"] = sorted(os.listdir("/course/utils"))
        out["root"] = sorted(os.listdir("/"))
        print(json.dumps(out))
    """)
    assert found["uid"] != 0
    assert not found["checkout"] and not found["results"] and not found["reference"]
    assert len(found["pids"]) <= 3  # bwrap's init, this process (and nothing of the host)
    everything = json.dumps([found["cmdlines"], found["cwds"], found["env"]])
    assert str(ROOT) not in everything and spec["course"] not in everything, everything
    assert "reference" not in found["course"] and "grade.py" not in found["course"]
    assert set(found["env"]) - {"PWD", "OLDPWD"} == set(spec["env"]) - {"PWD"}


def test_proc_names_no_host_path_of_python_or_the_course(spec):
    """mountinfo prints a bind mount's source as its path inside its filesystem: the Python installation, the virtual
    environment and the course copy are overlays named by descriptor, at fixed sandbox paths, and Python runs from
    there (its compiled modules and shared libpython included). The arguments and socket folders are tmpfs of their
    own only when the grader is root (tests/test_grade_hostile_kernels.py); here they are plain folders."""
    found = probe(spec, """
        import json, os, ssl, sqlite3, sys
        text = [open(f"/proc/self/{what}").read() for what in ("mountinfo", "mounts", "mountstats", "maps")]
        links = [os.readlink("/proc/self/exe")]
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the listing's own descriptor
                pass
        print(json.dumps({"text": "\\n".join(text + links), "prefix": sys.prefix, "base": sys.base_prefix,
                          "executable": sys.executable}))
    """)
    secrets = [str(ROOT), sys.prefix, spec["course"]]
    if not (sys.base_prefix == "/usr" or sys.base_prefix.startswith("/usr/")):  # else the system's /usr
        secrets.append(sys.base_prefix)
        assert found["base"] == "/opt/python", found["base"]
    if sys.prefix != sys.base_prefix:
        assert found["prefix"] == "/opt/venv" and found["executable"].startswith("/opt/venv/"), found
    assert not [s for s in secrets if s in found["text"]], [s for s in secrets if s in found["text"]]
    assert "/opt/venv" in found["text"] or sys.prefix == sys.base_prefix  # it read what it lists


def test_no_network(spec):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    found = probe(spec, f"""
        import json, socket
        out = {{}}
        for name, addr in (("host", ("127.0.0.1", {port})), ("internet", ("1.1.1.1", 53))):
            s = socket.socket()
            s.settimeout(3)
            try:
                s.connect(addr)
                out[name] = "connected"
            except OSError as e:
                out[name] = str(e)
        print(json.dumps(out))
    """)
    server.close()
    assert found["host"] != "connected" and found["internet"] != "connected", found


def test_course_is_read_only_and_private_folders_are_small(spec):
    found = probe(spec, """
        import json, os
        out = {}
        for name, path in (("course", "/course/utils/__init__.py"), ("args", "/grading/args/case.pt")):
            try:
                with open(path, "a") as f:
                    f.write("import os; os._exit(1)")
                out[name] = "written"
            except OSError as e:
                out[name] = e.__class__.__name__
        try:
            os.remove("/course/utils/checks/core.py")
            out["delete"] = "deleted"
        except OSError as e:
            out["delete"] = e.__class__.__name__
        written = 0
        try:  # many files of under 1 MB (the file-size limit) until the tmpfs is full
            for i in range(100):
                with open(f"/tmp/fill{i}", "wb") as f:
                    f.write(b"x" * 900_000)
                written += 900_000
        except OSError as e:
            out["fill"] = e.__class__.__name__ + str(e.errno)
        out["written"] = written
        try:
            with open("big", "wb") as f:
                f.write(b"x" * 3_000_000)
            out["big"] = "written"
        except OSError as e:
            out["big"] = str(e)
        print(json.dumps(out))
    """)
    assert found["course"] != "written" and found["args"] != "written" and found["delete"] != "deleted", found
    assert found["written"] <= 8 * 2**20 and "fill" in found, found  # the tmpfs is 8 MB
    assert found["big"] != "written"  # file-size limit (1 MB here)


def test_fork_bomb_hits_the_process_limit_and_everything_dies_with_the_sandbox(spec):
    marker = f"codebreak-marker-{os.getpid()}"
    found = probe(spec, f"""
        import json, os, subprocess, sys, time
        # a daemon that detaches from everything it can
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {marker}"], start_new_session=True)
        children = 0
        error = ""
        try:
            for i in range(10000):
                pid = os.fork()
                if pid == 0:
                    time.sleep(600)
                    os._exit(0)
                children += 1
        except OSError as e:
            error = str(e)
        print(json.dumps({{"children": children, "error": error}}))
    """)
    assert found["children"] < 48 and found["error"], found
    time.sleep(1)
    left = []
    for p in Path("/proc").iterdir():
        try:
            if marker.encode() in (p / "cmdline").read_bytes():
                left.append(p.name)
        except OSError:
            pass
    assert not left, "processes outlived the sandbox"


def test_memory_limit(spec):
    found = probe(spec, """
        import json
        try:
            x = bytearray(3 * 2**30)
            print(json.dumps({"allocated": True}))
        except MemoryError:
            print(json.dumps({"allocated": False}))
    """)
    assert not found["allocated"]


def test_sandbox_start_is_cheap(spec):
    started = time.perf_counter()
    proc = sandbox.run_sandboxed(spec, ["/bin/true"])
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - started < 10
