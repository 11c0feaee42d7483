"""Sandbox + harness: adversarial programs end as failure records and touch nothing outside.

Every adversarial "solution" below is run through the real harness and sandbox against a real
LeetCodeDataset task (tests/fixtures/efficiency_tasks.jsonl). None may pass, the test process
must survive, and files outside the run's temp dir must be untouched.
"""

from __future__ import annotations

import glob
import os
import socket
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from perfrepro.execution import harness, sandbox
from perfrepro.execution.sandbox import Limits
from perfrepro.records import Task, read_jsonl

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


def test_isolation_is_detected_and_named():
    iso = sandbox.isolation()
    assert iso.name in ("full", "userns", "uid", "none")
    if os.geteuid() == 0 and iso.name != "full":
        pytest.skip(f"namespaces not permitted here ({iso.note}); the remaining checks need them")


def test_infinite_loop_times_out(task):
    record, result = run_solution(task, """
        class Solution:
            def canAliceWin(self, n):
                while True:
                    pass
    """, Limits(timeout_s=2, memory_mb=1024))
    assert record.status == "timeout"
    assert result.wall_s < 10


def test_fork_bomb_is_contained(task):
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


def test_deleting_files_outside_the_working_dir_fails(task, tmp_path):
    canaries = []
    for parent in (tmp_path, Path(tempfile.mkdtemp(dir="/var/tmp"))):
        os.chmod(parent, 0o777)  # the worst case: a world-writable directory
        canary = parent / "canary.txt"
        canary.write_text("keep me")
        os.chmod(canary, 0o666)
        canaries.append(canary)
    try:
        record, result = run_solution(task, f"""
            import os, shutil
            for path in {[str(c) for c in canaries]!r}:
                try:
                    os.remove(path)
                except OSError as exc:
                    print("refused", exc)
                try:
                    shutil.rmtree(os.path.dirname(path))
                except OSError as exc:
                    print("refused", exc)
            for path in ("/work", os.path.expanduser("~root"), "/etc/hostname"):
                shutil.rmtree(path, ignore_errors=True)
            raise SystemExit(0)
        """)
        assert record.status != "ok"
        if sandbox.isolation().name != "none":
            for canary in canaries:
                assert canary.read_text() == "keep me", result.stdout_tail
    finally:
        for canary in canaries:
            canary.unlink(missing_ok=True)
        canaries[1].parent.rmdir()


def test_network_socket_reaches_nothing(task):
    if not sandbox.isolation().network_isolated:
        pytest.skip("network namespaces not permitted here (documented fallback)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        record, result = run_solution(task, f"""
            import socket
            for host in ("127.0.0.1", "1.1.1.1"):
                try:
                    socket.create_connection((host, {port}), timeout=1).sendall(b"leak")
                    print("CONNECTED", host)
                except OSError as exc:
                    print("refused", host, exc)
            raise RuntimeError("no network")
        """)
        assert record.status == "crash"
        assert "CONNECTED" not in result.stdout_tail
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()


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


def test_killing_the_parent_process_group_leaves_the_pipeline_alive(task):
    record, _ = run_solution(task, """
        import os, signal
        for attempt in (lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL),
                        lambda: os.kill(os.getppid(), signal.SIGKILL),
                        lambda: os.kill(-1, signal.SIGKILL)):
            try:
                attempt()
            except OSError:
                pass
        class Solution:
            def canAliceWin(self, n):
                return n >= 10
    """)
    assert record.status != "ok"
    assert psutil.Process().is_running()  # and we are here to assert it


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
