"""Hostile probes of the grader's bounds and hygiene that need no kernel (a few seconds each): what a learner can
write, read in /proc or exhaust inside bubblewrap, what a forged answer costs the grader, what the worker keeps of
widget messages, and what the launcher does with a socket folder or connection file that is not its own.
(tests/test_grade_hostile_kernels.py grades hostile notebooks end to end.)"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from utils.checks.core import GRADING_ENV
from utils.grading import batch, runner, sandbox, scoring
from utils.grading.records import RESULT_MIME

ROOT = Path(__file__).resolve().parent.parent


def make_spec(tmp: Path, uid: int | None, max_procs: int = 48) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o711)
    if not (tmp / "course").exists():
        sandbox.make_course(tmp / "course")
    (tmp / "args").mkdir(mode=0o755, exist_ok=True)
    (tmp / "runtime").mkdir(exist_ok=True)
    if uid is not None:
        os.chown(tmp / "runtime", uid, uid)
    return dict(mode="bwrap", course=str(tmp / "course"), uid=uid, memory_mb=2000, file_mb=1, disk_mb=8,
                max_procs=max_procs, cpu_seconds=60, args=str(tmp / "args"), runtime=str(tmp / "runtime"),
                env=sandbox.kernel_env(1, GRADING_ENV))


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    sandbox.check()
    return make_spec(tmp_path_factory.mktemp("hostile"), sandbox.sandbox_uid(0))


def write_probe(spec: dict, name: str, code: str) -> list[str]:
    path = Path(spec["args"]) / name
    path.write_text(textwrap.dedent(code))
    path.chmod(0o644)
    return [sandbox.sandbox_python(), f"{sandbox.ARGS_MOUNT}/{name}"]


def probe(spec: dict, code: str, timeout: float = 120) -> dict:
    proc = sandbox.run_sandboxed(spec, write_probe(spec, "probe.py", code), timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# Item 3: every writable place is size-limited or read-only
# ---------------------------------------------------------------------------------------------------------


def test_every_writable_place_is_limited(spec):
    """The root tmpfs (/, /etc, /root, /run, /var), /dev and /dev/shm: read-only or at most --disk-mb (8 MB here)."""
    found = probe(spec, """
        import json, os
        out = {}
        for d in ("/", "/etc", "/root", "/run", "/var", "/dev", "/dev/shm", "/tmp", "/course/notebooks", "/opt"):
            written = 0
            try:
                os.makedirs(d, exist_ok=True)
                for i in range(24):  # files under the 1 MB file-size limit, 21 MB in all
                    with open(os.path.join(d, f"fill{i}"), "wb") as f:
                        f.write(b"x" * 900_000)
                    written += 900_000
            except OSError as e:
                pass
            out[d] = written
        print(json.dumps(out))
    """)
    assert all(written <= 8 * 2**20 for written in found.values()), found
    assert found["/"] == found["/etc"] == found["/root"] == found["/dev"] == 0, found
    assert found["/tmp"] > 0 and found["/course/notebooks"] > 0 and found["/dev/shm"] > 0, found  # still usable


# ---------------------------------------------------------------------------------------------------------
# Item 9: nothing of the host in /proc
# ---------------------------------------------------------------------------------------------------------


def test_sandbox_init_has_an_empty_environment(spec):
    """/proc/1 (bwrap's init) shows no variable of the host: no home, no working folder, no host PID."""
    found = probe(spec, """
        import json, os
        env = {}
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                env[pid] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
            except OSError as e:
                env[pid] = repr(e)
        print(json.dumps(env))
    """)
    init = found["1"]
    names = {item.split("=", 1)[0] for item in init.split("\0") if item}
    assert names <= {"PATH"}, init
    assert str(ROOT) not in json.dumps(found) and os.environ.get("HOME", "/nonexistent") + "\0" not in init


# ---------------------------------------------------------------------------------------------------------
# Item 8: two grader runs on one machine never share a process limit
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("same_uid", [False, True])
def test_two_runs_do_not_share_a_process_limit(tmp_path, same_uid):
    """Run A's learner holds every process it may; run B's learner, started meanwhile, can still start threads.
    As root each run leases its own uid; with one uid for both (a grader that is not root) the limit is still
    counted inside each sandbox's own user namespace."""
    sandbox.check()
    pools = sandbox.UidPool(str(tmp_path / "locks")), sandbox.UidPool(str(tmp_path / "locks"))
    uid_a, uid_b = pools[0].acquire(), pools[1].acquire()
    if os.geteuid() == 0:
        assert uid_a != uid_b and None not in (uid_a, uid_b)
    if same_uid:
        uid_b = uid_a
    spec_a = make_spec(tmp_path / "a", uid_a, max_procs=40)
    spec_b = make_spec(tmp_path / "b", uid_b, max_procs=40)
    spec_b["course"] = spec_a["course"]
    hog = write_probe(spec_a, "hog.py", """
        import os, sys, time
        kids = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                kids += 1
        except OSError:
            pass
        print(kids, flush=True)
        time.sleep(60)
    """)
    argv = sandbox.hidden_args(sandbox.bwrap_argv(spec_a, hog))
    proc = subprocess.Popen(argv, preexec_fn=lambda: sandbox.enter(spec_a), stdout=subprocess.PIPE, text=True,
                            pass_fds=[int(argv[2])], env={"PATH": "/usr/bin:/bin"})
    os.close(int(argv[2]))
    try:
        kids = int(proc.stdout.readline())
        assert 20 < kids < 40, kids  # A is at its limit
        found = probe(spec_b, """
            import json, threading, time
            threads, error = [], ""
            try:
                for i in range(20):
                    t = threading.Thread(target=time.sleep, args=(1,))
                    t.start()
                    threads.append(t)
            except RuntimeError as e:
                error = str(e)
            print(json.dumps({"threads": len(threads), "error": error}))
        """)
        assert found == {"threads": 20, "error": ""}, found
    finally:
        proc.kill()
        proc.wait()
        for pool in pools:
            pool.close()


def test_uid_leases_are_unique_and_freed(tmp_path):
    if os.geteuid() != 0:
        assert sandbox.UidPool(str(tmp_path / "locks")).acquire() is None
        return
    one, two = sandbox.UidPool(str(tmp_path / "locks")), sandbox.UidPool(str(tmp_path / "locks"))
    a = one.acquire()
    b = two.acquire()
    assert a != b
    one.release(a)
    assert two.acquire() == a  # freed, so reused
    two.close()


# ---------------------------------------------------------------------------------------------------------
# Item 2: bounds of the grader and worker
# ---------------------------------------------------------------------------------------------------------


def forged_answer(path: Path, value) -> int:
    torch.save({"status": "ok", "value": value}, path)
    return path.stat().st_size


def test_an_answer_is_measured_before_it_is_rebuilt(tmp_path):
    """A few kB of expanded views of one storage would be rebuilt into 64 MB (gigabytes with larger shapes):
    refused from the metadata, before any copy."""
    base = torch.zeros(1)
    size = forged_answer(tmp_path / "views.pt", [base.expand(2**20) for _ in range(16)])  # 16 x 4 MB
    assert size < 10_000
    record = scoring.load_answer(tmp_path / "views.pt", max_bytes=2**20)
    assert record["status"] == "unreadable" and "MB of tensors" in record["error"], record
    nested = [[0] * 1000] * 1000  # one list referenced a thousand times: a million values
    forged_answer(tmp_path / "aliased.pt", [nested] * 2)
    record = scoring.load_answer(tmp_path / "aliased.pt", max_bytes=2**20)
    assert record["status"] == "unreadable" and "values" in record["error"], record
    honest = torch.arange(1000.0).reshape(10, 100)
    forged_answer(tmp_path / "honest.pt", {"a": honest, "b": [honest[0], 3, "x"]})
    record = scoring.load_answer(tmp_path / "honest.pt", max_bytes=2**20)
    assert record["status"] == "ok" and torch.equal(record["value"]["a"], honest)


def capped_client() -> runner.CappedClient:
    client = runner.CappedClient(nbformat.v4.new_notebook())
    client.reset_execution_trackers()
    client.clear_before_next_output = False
    client.answers, client.token = {}, "t" * 32
    return client


def test_widget_and_comm_messages_are_dropped():
    client = capped_client()
    state = {"value": "x" * 100_000, "_model_name": "IntSliderModel"}
    for i in range(200):
        msg = {"msg_type": "comm_open" if i % 2 == 0 else "comm_msg", "header": {"msg_type": "comm_open"},
               "content": {"comm_id": f"c{i}", "target_name": "jupyter.widget", "data": {"state": state}},
               "buffers": []}
        client.handle_comm_msg([], msg, 0)
    assert not client.widget_state and not client.comm_objects and not getattr(client, "widget_buffers", {})


def test_outputs_per_cell_are_capped_and_answers_still_taken():
    client = capped_client()
    outs: list = []
    for i in range(5000):
        msg = {"msg_type": "display_data", "header": {"msg_type": "display_data"}, "parent_header": {},
               "content": {"data": {"text/html": "<b>x</b>" * 100}, "metadata": {}}}
        client.output(outs, msg, None, 0)
    buf = io.BytesIO()
    torch.save({"status": "ok", "value": 1}, buf)
    answer = {"msg_type": "display_data", "header": {"msg_type": "display_data"}, "parent_header": {},
              "content": {"data": {RESULT_MIME: base64.b64encode(buf.getvalue()).decode()},
                          "metadata": {RESULT_MIME: {"token": client.token, "index": 0}}}}
    client.output(outs, answer, None, 0)
    assert len(outs) <= runner.MAX_OUTPUTS and 0 in client.answers


def test_worker_runs_under_a_memory_limit():
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=batch.limit_worker, capture_output=True, text=True,
                         check=True).stdout
    assert int(out) == batch.WORKER_MEMORY_MB * 2**20
    code = "bytearray(%d)" % ((batch.WORKER_MEMORY_MB + 256) * 2**20)
    proc = subprocess.run([sys.executable, "-c", code], preexec_fn=batch.limit_worker, capture_output=True, text=True)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# Items 1 and 9: the launcher and the clean-up never act through a path the learner could have swapped
# ---------------------------------------------------------------------------------------------------------


def test_launcher_refuses_a_socket_folder_or_connection_file_it_does_not_own(tmp_path):
    victim = tmp_path / "results"
    victim.mkdir()
    (victim / "grades.json").write_text("{}")
    runtime = tmp_path / "codebreak-kernel-x"
    runtime.mkdir(mode=0o700)
    (runtime / "kernel-1.json").symlink_to(victim / "grades.json")  # planted by a previous kernel
    with pytest.raises(OSError):
        sandbox.open_runtime({"runtime": str(runtime)}, str(runtime / "kernel-1.json"))
    link = tmp_path / "codebreak-kernel-y"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        sandbox.open_runtime({"runtime": str(link)}, str(link / "grades.json"))
    with pytest.raises(SystemExit):
        sandbox.open_runtime({"runtime": str(runtime)}, str(victim / "grades.json"))
    (runtime / "kernel-2.json").write_text("{}")
    dir_fd, file_fd = sandbox.open_runtime({"runtime": str(runtime)}, str(runtime / "kernel-2.json"))
    os.close(dir_fd)
    os.close(file_fd)
    stat_before = (victim / "grades.json").stat()
    assert (stat_before.st_uid, stat_before.st_mode) == ((victim / "grades.json").stat().st_uid, stat_before.st_mode)


def test_clean_up_never_follows_links(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    folder = tmp_path / "codebreak-kernel-z"
    folder.mkdir()
    (folder / "inside").symlink_to(victim)
    (folder / "sub").mkdir()
    (folder / "sub" / "deeper").symlink_to(victim / "keep.txt")
    swapped = tmp_path / "codebreak-kernel-swapped"
    swapped.symlink_to(victim)
    sandbox.remove_tree(folder)
    sandbox.remove_tree(swapped)
    assert not folder.exists() and not swapped.is_symlink()
    assert (victim / "keep.txt").read_text() == "keep"


def test_stale_run_folders_are_removed_at_the_next_start(tmp_path):
    """A run folder's name holds no pid (the sandbox's mountinfo may show it when the grader is not root); a folder
    whose owner file is not locked, or an older grader's named after a dead pid, is removed; a live one is kept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    legacy = tmp_path / f"{batch.RUN_PREFIX}{int(dead.stdout)}-abc"
    (legacy / "learner-1" / "codebreak-kernel-1").mkdir(parents=True)
    stale = tmp_path / f"{batch.RUN_PREFIX}stale"
    (stale / "learner-1").mkdir(parents=True)
    (stale / batch.OWNER).write_text("1")
    alive = batch.make_run_dir(tmp_path)  # locked by this process
    run_dir = batch.make_run_dir(tmp_path)
    assert not legacy.exists() and not stale.exists() and alive.exists() and run_dir.exists()
    assert str(os.getpid()) not in run_dir.name and (run_dir / batch.OWNER).read_text() == str(os.getpid())
