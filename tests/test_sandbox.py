"""Sandbox + harness: adversarial programs end as failure records and touch nothing outside.

Every adversarial "solution" below is run through the real harness and sandbox against a real
LeetCodeDataset task (tests/fixtures/efficiency_tasks.jsonl). None may pass and the test process
must survive.

Safe by construction: a hostile payload only ever aims at canaries its test created (a root-only
file and a world-writable directory under /var/tmp, a `sleep` process in its own process group,
a listener on loopback), never at a real path or process, and it runs only after a harmless
probe inside the sandbox showed the isolation it needs (not root, its own PID namespace, no
network, the canaries unreadable or read-only). A failed probe fails the test loudly: a broken
sandbox is a red test run, never a deleted disk.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from perfrepro.execution import harness, sandbox
from perfrepro.execution.sandbox import Limits
from perfrepro.records import Task, read_jsonl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

FIXTURE = Path(__file__).parent / "fixtures" / "efficiency_tasks.jsonl"
FAST = Limits(timeout_s=10, memory_mb=1024)


@pytest.fixture(scope="module")
def task() -> Task:
    by_id = {t.id: t for t in read_jsonl(FIXTURE, Task)}
    return by_id["stone-removal-game"]  # entry point Solution().canAliceWin, 29 asserts


def run_solution(task: Task, code: str, limits: Limits = FAST) -> tuple[harness.RunRecord, sandbox.SandboxResult]:
    program = harness.build_program(task, textwrap.dedent(code), role="completion")
    return harness.run_program(program, limits=limits)


def test_canonical_passes_as_a_positive_control(task):
    record, result = run_solution(task, task.canonical_solution)
    assert record.status == "ok", (record, result.stderr_tail)


def test_wrong_answer_is_wrong_answer(task):
    record, _ = run_solution(task, """
        class Solution:
            def canAliceWin(self, n):
                return True
    """)
    assert record.status == "wrong_answer"


def test_infinite_loop_times_out(task):
    record, result = run_solution(task, """
        class Solution:
            def canAliceWin(self, n):
                while True:
                    pass
    """, Limits(timeout_s=2, memory_mb=1024))
    assert record.status == "timeout"
    assert result.wall_s < 10


def test_memory_hog_is_a_memory_failure(task):
    record, _ = run_solution(task, """
        hog = []
        while True:
            hog.append(bytearray(50 << 20))
    """, Limits(timeout_s=10, memory_mb=512))
    assert record.status == "memory"


def test_writing_a_gigabyte_is_stopped_and_cleaned_up(task):
    record, _ = run_solution(task, """
        with open("perfrepro-test-big.bin", "wb") as out:
            for _ in range(1024):
                out.write(b"x" * (1 << 20))
    """, Limits(timeout_s=10, memory_mb=1024, file_mb=16))
    assert record.status == "crash"
    assert glob.glob(os.path.join(tempfile.gettempdir(), "perfrepro-sbx-*", "work", "perfrepro-test-big.bin")) == []


def test_writing_past_the_disk_budget_is_a_disk_failure_that_never_reaches_the_host_disk(task):
    # a harmless writer: 64 MB files until 320 MB are written or the 128 MB budget refuses more
    temp = tempfile.gettempdir()
    free_before = shutil.disk_usage(temp).free
    record, result = run_solution(task, """
        import os
        written = 0
        try:
            for i in range(5):
                with open(f"block-{i}.bin", "wb") as out:
                    for _ in range(64):
                        out.write(b"x" * (1 << 20))
                        written += 1 << 20
        finally:
            print("written MB", written >> 20, "run dir MB", os.statvfs(".").f_blocks * os.statvfs(".").f_frsize >> 20)
    """, Limits(timeout_s=20, memory_mb=1024, disk_mb=128))
    free_after = shutil.disk_usage(temp).free
    assert record.status == "disk", (record, result.stderr_tail)
    assert "disk budget of 128 MB exhausted" in record.error
    written_mb, run_dir_mb = (int(word) for word in result.stdout_tail.split() if word.isdigit())
    assert 100 <= written_mb <= 128 <= run_dir_mb < 140, result.stdout_tail  # the budget, plus the run's own files
    # the writes went to the run's tmpfs, never to the host's disk (64 MB of slack: other work
    # on the machine writes too)
    assert free_before - free_after < 64 << 20


def test_creating_more_files_than_the_budget_allows_is_a_disk_failure(task):
    record, result = run_solution(task, """
        for i in range(10_000):  # more than RUN_DIR_INODES
            open(f"empty-{i}", "w").close()
    """)
    assert record.status == "disk", (record, result.stderr_tail)


def test_a_run_within_its_disk_budget_passes_and_its_files_come_back():
    writer = "import os\nwith open('out.bin', 'wb') as out:\n    out.write(os.urandom(3 << 20))\n"
    result = sandbox.run([*sandbox.python_argv(), "writer.py"], limits=Limits(timeout_s=10, disk_mb=4),
                         files={"writer.py": writer}, collect=["out.bin", "missing.bin"])
    assert result.status == "ok", result
    assert len(result.files["out.bin"]) == 3 << 20 and "missing.bin" not in result.files


def test_collect_reads_no_symlink_and_no_fifo_the_program_left():
    program = "import os\nos.symlink('/etc/passwd', 'link')\nos.mkfifo('fifo')\n"
    result = sandbox.run([*sandbox.python_argv(), "make.py"], limits=FAST, files={"make.py": program},
                         collect=["link", "fifo"])
    assert result.ok, result
    assert result.files == {}


def test_collect_names_must_be_plain_file_names():
    with pytest.raises(ValueError, match="plain file name"):
        sandbox.run(["/bin/true"], collect=["../etc/passwd"])


def test_a_program_that_never_reads_its_stdin_still_ends_and_still_times_out():
    unread = b"x" * (4 << 20)  # far more than a pipe holds
    done = sandbox.run(["/bin/sh", "-c", "echo started"], stdin=unread, limits=FAST)
    assert done.ok and done.stdout_tail == "started\n"
    stuck = sandbox.run(["/bin/sh", "-c", "sleep 60"], stdin=unread, limits=Limits(timeout_s=1))
    assert stuck.status == "timeout" and stuck.wall_s < 5


def test_environment_and_other_processes_hold_no_secrets(task, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-perfrepro-canary-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-perfrepro-canary-token")
    record, result = run_solution(task, """
        import glob, os
        print(dict(os.environ))
        for path in glob.glob("/proc/[0-9]*/environ"):
            try:
                print(open(path, "rb").read())
            except OSError:
                pass
        raise RuntimeError("done snooping")
    """)
    assert record.status == "crash"
    assert "canary" not in result.stdout_tail
    assert "PYTHONHASHSEED" in result.stdout_tail  # it did print its environment


def test_printing_100_megabytes_is_cut_off(task):
    record, result = run_solution(task, """
        import sys
        for _ in range(100):
            sys.stdout.write("x" * (1 << 20))
    """, Limits(timeout_s=10, memory_mb=1024, output_bytes=1 << 20))
    assert record.status == "crash"
    assert "output cap" in (record.error or "")
    assert len(result.stdout_tail) <= 2 * Limits().tail_bytes


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)",
                                       "raise SystemExit(0)", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
def test_exiting_before_the_tests_is_not_a_pass(task, exit_call):
    record, result = run_solution(task, exit_call)
    assert record.status != "ok"
    if "_exit" in exit_call:
        assert result.exit_code == 0  # the process "succeeded", the harness still says no


CHEATS = {
    "patch AssertionError": """
        import builtins
        builtins.AssertionError = type("AssertionError", (Exception,), {})
        class Solution:
            def canAliceWin(self, n):
                return None
    """,
    "override check": """
        def check(candidate):
            return None
        class Solution:
            def canAliceWin(self, n):
                return None
    """,
    "always-equal result": """
        class Anything:
            def __eq__(self, other):
                return True
            def __bool__(self):
                return True
        class Solution:
            def canAliceWin(self, n):
                return Anything()
    """,
    "always-equal subclass of a builtin": """
        class Yes(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        class Solution:
            def canAliceWin(self, n):
                return Yes(0)
    """,
    "fake records on every fd then exit": """
        import os, json
        for fd in range(3, 64):
            try:
                os.write(fd, json.dumps({"nonce": "0" * 32, "status": "ok", "n": 1}).encode() + b"\\n")
            except OSError:
                pass
        print('{"status": "ok"}')
        os._exit(0)
    """,
    "patch the harness's exit and write": """
        import os, builtins
        os._exit = lambda code=0: None
        os.write = lambda fd, data: len(data)
        builtins.isinstance = lambda obj, kind: False
        builtins.print = lambda *a, **k: None
        class Solution:
            def canAliceWin(self, n):
                return None
    """,
    "exit from inside the tests": """
        import sys
        class Solution:
            def canAliceWin(self, n):
                sys.exit(0)
    """,
    "swallow the tests via sys.modules": """
        import sys
        for module in list(sys.modules.values()):
            if hasattr(module, "run_tests"):
                module.run_tests = lambda: None
        class Solution:
            def canAliceWin(self, n):
                return None
    """,
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheats_do_not_pass(task, name):
    record, result = run_solution(task, CHEATS[name])
    assert record.status != "ok", (name, record, result.stderr_tail)


def test_env_refuses_secrets():
    with pytest.raises(ValueError, match="refusing"):
        sandbox.base_env({"OPENAI_API_KEY": "x"})


def test_sandboxed_python_imports_its_packages_from_the_run_dir_not_the_venv():
    # LeetCode preludes import sortedcontainers. Reached through the venv's absolute path, it was
    # missing for a checkout under /tmp (the run dir is mounted there: every canonical crashed) and
    # made sys.path, so the deterministic counts, depend on where the project lives.
    probe = "import sys, sortedcontainers\nprint(sortedcontainers.__file__)\nprint(*sys.path, sep='\\n')\n"
    result = sandbox.run([*sandbox.python_argv(), "-P", "probe.py"], limits=FAST, env=sandbox.python_env(),
                         files={**sandbox.python_files(), "probe.py": probe})
    assert result.ok, result.stderr_tail
    imported_from, *path = result.stdout_tail.splitlines()
    assert imported_from.endswith(f"/{sandbox.SANDBOX_LIBRARY}/sortedcontainers/__init__.py")
    venv = os.path.realpath(os.sys.prefix)
    assert not [entry for entry in path if os.path.realpath(entry).startswith(venv)], path


# ---------------------------------------------------------------------------------------------
# hostile programs: canaries only, after a probe


NOBODY = pwd.getpwnam("nobody")
SECRET = "perfrepro canary secret: the sandbox must not read this"


@dataclass
class Canaries:
    """What hostile programs may attack: all made by the test, all removed after it."""

    secret: Path  # 0600, owned by the test's user (root in CI): unreadable by nobody
    shared_dir: Path  # 0777, world-writable, with `shared_file` (0666) in it
    shared_file: Path
    sleeper: subprocess.Popen  # `sleep` in its own process group, same uid as a sandboxed program would be outside a user namespace
    listener: socket.socket  # on loopback, outside the sandbox's network namespace

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def intact(self) -> bool:
        return (self.secret.read_text() == SECRET and self.shared_file.read_text() == "keep me"
                and self.sleeper.poll() is None)


@pytest.fixture
def canaries():
    # /var/tmp, not tmp_path: the sandbox mounts its run dir over /tmp, so a canary there would be
    # invisible to it and prove nothing; under /var/tmp it is visible (and must be read-only)
    root = Path(tempfile.mkdtemp(prefix="perfrepro-canary-", dir="/var/tmp"))
    os.chmod(root, 0o755)
    secret = root / "secret.txt"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    shared_dir = root / "shared"
    shared_dir.mkdir()
    os.chmod(shared_dir, 0o777)
    shared_file = shared_dir / "canary.txt"
    shared_file.write_text("keep me")
    os.chmod(shared_file, 0o666)
    drop = (["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups"]
            if os.geteuid() == 0 else [])
    sleeper = subprocess.Popen([*drop, "sleep", "120"], start_new_session=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    try:
        yield Canaries(secret, shared_dir, shared_file, sleeper, listener)
    finally:
        listener.close()
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(root, ignore_errors=True)


PROBE = """
import json, os, socket
report = {"uid": os.getuid(), "pid_namespace": os.readlink("/proc/self/ns/pid")}
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
    report["network"] = True
except OSError:
    report["network"] = False
try:
    with open(SECRET) as handle:
        handle.read()
    report["secret_readable"] = True
except OSError:
    report["secret_readable"] = False
report["shared_writable"] = os.access(SHARED_DIR, os.W_OK) or os.access(SHARED_FILE, os.W_OK)
print(json.dumps(report))
"""


def prove_isolation(canaries: Canaries) -> None:
    """Fail (never skip) unless a harmless program in the sandbox shows the isolation that the
    hostile payloads need: runs as nobody, in its own PID namespace, with no route to the test's
    listener, unable to read the secret or write the shared canaries."""
    source = (PROBE.replace("PORT", str(canaries.port)).replace("SHARED_DIR", repr(str(canaries.shared_dir)))
              .replace("SHARED_FILE", repr(str(canaries.shared_file))).replace("SECRET", repr(str(canaries.secret))))
    result = sandbox.run([*sandbox.python_argv(), "-c", source], limits=FAST)
    try:
        report = json.loads(result.stdout_tail.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(f"sandbox probe gave no report; hostile payload NOT run: {result}")
    expected = {"uid": NOBODY.pw_uid, "pid_namespace": "(not ours)", "network": False,
                "secret_readable": False, "shared_writable": False}
    ours = os.readlink("/proc/self/ns/pid")
    broken = {key: report.get(key) for key in expected
              if (report.get(key) == ours if key == "pid_namespace" else report.get(key) != expected[key])}
    if broken:
        pytest.fail(f"sandbox isolation is broken ({broken}); hostile payload NOT run. Probe: {report}")
    try:  # the probe's connection attempt must not have arrived
        canaries.listener.accept()
        pytest.fail("the sandbox probe reached the loopback listener; hostile payload NOT run")
    except socket.timeout:
        pass


def test_probe_reports_the_isolation_the_payloads_need(canaries):
    prove_isolation(canaries)
    assert canaries.intact()


def test_program_runs_as_nobody_and_cannot_read_a_root_only_file(task, canaries):
    prove_isolation(canaries)
    record, result = run_solution(task, f"""
        import os
        print("uid", os.getuid())
        try:
            print("read", open({str(canaries.secret)!r}).read())
        except OSError as exc:
            print("refused", type(exc).__name__)
        raise SystemExit(0)
    """)
    assert record.status != "ok"
    assert f"uid {NOBODY.pw_uid}" in result.stdout_tail
    assert "refused PermissionError" in result.stdout_tail
    assert SECRET not in result.stdout_tail


def test_deleting_and_overwriting_files_outside_the_working_dir_fails(task, canaries):
    prove_isolation(canaries)
    record, result = run_solution(task, f"""
        import os, shutil
        attempts = [
            lambda: os.remove({str(canaries.shared_file)!r}),
            lambda: open({str(canaries.shared_file)!r}, "w").write("gone"),
            lambda: shutil.rmtree({str(canaries.shared_dir)!r}),
            lambda: open({str(canaries.secret)!r}, "w").write("gone"),
            lambda: os.chmod({str(canaries.secret)!r}, 0o666),
            lambda: shutil.rmtree({str(canaries.secret.parent)!r}),
        ]
        for attempt in attempts:
            try:
                attempt()
                print("DONE")
            except OSError as exc:
                print("refused", exc.errno)
        raise SystemExit(0)
    """)
    assert record.status != "ok"
    assert result.stdout_tail.count("refused") == 6, result.stdout_tail
    assert "DONE" not in result.stdout_tail
    assert canaries.intact()


def test_kill_minus_one_and_killpg_leave_the_canary_process_alive(task, canaries):
    prove_isolation(canaries)
    ours = os.readlink("/proc/self/ns/pid")
    record, result = run_solution(task, f"""
        import os, signal
        # the same process proves its own isolation before any signal: nobody, another PID namespace
        # (so -1 and the parent's group reach only the sandbox's own processes)
        if os.getuid() != {NOBODY.pw_uid} or os.readlink("/proc/self/ns/pid") == {ours!r}:
            print("NOT ISOLATED")
            raise SystemExit(3)
        for attempt in (lambda: os.kill(-1, signal.SIGKILL),
                        lambda: os.killpg({canaries.sleeper.pid}, signal.SIGKILL),
                        lambda: os.kill({canaries.sleeper.pid}, signal.SIGKILL),
                        lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)):
            try:
                attempt()
            except OSError:
                pass
        class Solution:
            def canAliceWin(self, n):
                return n >= 10
    """)
    assert "NOT ISOLATED" not in result.stdout_tail, "the payload's own isolation check failed; no signal was sent"
    assert record.status != "ok"
    time.sleep(0.2)
    assert canaries.sleeper.poll() is None, "kill(-1) from the sandbox reached the canary process"
    assert canaries.intact()


def test_network_socket_reaches_nothing(task, canaries):
    prove_isolation(canaries)
    record, result = run_solution(task, f"""
        import socket
        for host in ("127.0.0.1", "1.1.1.1"):
            try:
                socket.create_connection((host, {canaries.port}), timeout=1).sendall(b"leak")
                print("CONNECTED", host)
            except OSError as exc:
                print("refused", host, exc)
        raise RuntimeError("no network")
    """)
    assert record.status == "crash"
    assert result.stdout_tail.count("refused") == 2 and "CONNECTED" not in result.stdout_tail
    with pytest.raises(socket.timeout):
        canaries.listener.accept()


def test_fork_bomb_is_contained(task, canaries):
    prove_isolation(canaries)
    record, _ = run_solution(task, """
        import ctypes, os
        ctypes.CDLL(None).prctl(15, b"pr-forkbomb", 0, 0, 0)  # PR_SET_NAME: children inherit it
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """, Limits(timeout_s=3, memory_mb=512, processes=16))
    assert record.status in ("timeout", "crash", "memory")
    time.sleep(0.5)
    survivors = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "pr-forkbomb"]
    assert survivors == []
    assert canaries.intact()


# ---------------------------------------------------------------------------------------------
# the status of a finished run, from its facts alone

LIMITS = Limits(timeout_s=5, memory_mb=512, disk_mb=64, file_mb=8)  # CPU: 6 s


def facts(**changes) -> sandbox.RunFacts:
    fields = dict(exit_code=0, signal=None, killed_for=None, oom_killed=False, disk_full=False, stderr_tail="")
    return sandbox.RunFacts(**{**fields, **changes})


@pytest.mark.parametrize("changes, status, error", [
    ({}, "ok", None),
    ({"exit_code": 3}, "crash", "exit code 3"),
    ({"exit_code": 139, "signal": 11}, "crash", "killed by signal 11"),
    ({"exit_code": -9, "signal": 9, "killed_for": "timeout"}, "timeout", "killed after the 5 s wall timeout"),
    ({"exit_code": -9, "signal": 9, "killed_for": "stdout exceeded the output cap"}, "crash", "stdout exceeded the output cap"),
    ({"exit_code": 152, "signal": signal.SIGXCPU}, "timeout", "CPU time limit of 6 s exceeded"),
    ({"exit_code": 137, "signal": 9, "oom_killed": True}, "memory", "memory limit of 512 MB exceeded"),
    ({"exit_code": 1, "stderr_tail": "Traceback ...\nMemoryError\n"}, "memory", "memory limit of 512 MB exceeded"),
    ({"exit_code": 134, "signal": 6, "stderr_tail": "terminate called after throwing 'std::bad_alloc'"}, "memory",
     "memory limit of 512 MB exceeded"),
    ({"disk_full": True}, "disk", "disk budget of 64 MB exhausted (ENOSPC)"),  # even when it exits 0
    ({"exit_code": 1, "stderr_tail": "OSError: [Errno 28] No space left on device"}, "disk",
     "disk budget of 64 MB exhausted (ENOSPC)"),
    ({"exit_code": 153, "signal": signal.SIGXFSZ}, "crash", "file size limit of 8 MB exceeded"),
    # the first cause wins: a timed-out run that also filled its disk timed out
    ({"killed_for": "timeout", "disk_full": True, "oom_killed": True}, "timeout", "killed after the 5 s wall timeout"),
    ({"oom_killed": True, "disk_full": True}, "memory", "memory limit of 512 MB exceeded"),
])
def test_classify(changes, status, error):
    assert sandbox.classify(facts(**changes), LIMITS) == (status, error)


@pytest.mark.parametrize("code, wrapped, expected", [
    (0, True, None), (1, True, None), (-9, False, 9), (-9, True, 9), (137, True, 9), (137, False, None),
    (128, True, None), (160, True, None), (None, True, None),
])
def test_exit_signal(code, wrapped, expected):
    assert sandbox.exit_signal(code, wrapped) == expected
