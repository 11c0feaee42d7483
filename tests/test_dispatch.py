"""Executors on the real Dask engine (no mocks): a LocalCluster of 2 process workers measures the
fixture tasks with `deterministic` byte for byte as the in-process loop does; a worker killed by
PID mid-task gets its task retried and the output is complete; Ctrl-C on a stage running a
LocalCluster leaves no process behind, and a cluster closed mid-run no run dir and no Dask files;
the Slurm job script renders without Slurm; a missing
sbatch and an unreachable scheduler fail at once with the key and the address in the message.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from perfrepro.config import ExecutorConfig, SlurmConfig, TimingConfig
from perfrepro.dispatch import ExecutorError, LocalExecutor, TaskFailure, make_executor
from perfrepro.dispatch.dask_cluster import job_script
from perfrepro.execution.sandbox.rundir import make_run_root
from perfrepro.records import Completion, Measurement, Program, Task, read_jsonl, write_jsonl
from perfrepro.timing.base import make_backend
from perfrepro.timing.fingerprint import check_uniform
from perfrepro.timing.completions import as_raw_row, measure_tasks
from perfrepro.timing.remote import TaskRun, collect

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "efficiency_tasks.jsonl"
needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")


def timing(backend: str) -> TimingConfig:
    return TimingConfig(backend=backend, repeats=1, min_sample_ms=5.0, timeout_s=20.0, memory_limit_mb=2048,
                        rss_interval_ms=1.0)


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return read_jsonl(FIXTURE, Task)


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster of 2 single-threaded process workers for the module."""
    with make_executor(ExecutorConfig(kind="dask", workers=2, retries=2), progress=False) as executor:
        yield executor


def measure_to_files(tasks, completions, config, executor, out: Path) -> tuple[bytes, bytes, list[Measurement]]:
    raw: list[dict] = []
    backend = make_backend(config, on_run=lambda p, r, d: raw.append(as_raw_row(p, r, d)))
    measurements = measure_tasks(tasks, completions, backend, executor=executor)
    write_jsonl(out / "measurements.jsonl", measurements)
    write_jsonl(out / "raw.jsonl", raw)
    return (out / "measurements.jsonl").read_bytes(), (out / "raw.jsonl").read_bytes(), measurements


# The sandbox moves the result pipe to fd 3 in every program: a Dask worker holds more fds than the
# stage, and valgrind's counts moved with the pipe's number before (+817 instructions of ET).
@needs_valgrind
def test_deterministic_on_a_local_cluster_is_byte_identical_to_local(tmp_path, tasks, cluster):
    chosen = tasks[1:3]  # the two cheapest fixture tasks, canonical only (no completion: never run)
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    local = measure_to_files(chosen, [], timing("deterministic"), LocalExecutor(progress=False), tmp_path / "local")
    dask = measure_to_files(chosen, [], timing("deterministic"), cluster, tmp_path / "dask")
    measurements = dask[2]
    assert [(m.task_id, m.role, m.status) for m in measurements] == [
        (chosen[0].id, "canonical", "ok"), (chosen[0].id, "completion", "no_code"),
        (chosen[1].id, "canonical", "ok"), (chosen[1].id, "completion", "no_code")]
    assert all("valgrind=valgrind-" in m.environment and "python=3." in m.environment for m in measurements)
    assert dask[0] == local[0]  # measurements.jsonl
    assert dask[1] == local[1]  # raw.jsonl: every valgrind number, in task order


@pytest.fixture
def own_cluster():
    """A cluster of the test's own: the worker its nanny restarts must not outlive the test."""
    with make_executor(ExecutorConfig(kind="dask", workers=2, retries=2), progress=False) as executor:
        yield executor


def test_a_worker_killed_mid_task_gets_the_task_retried(tmp_path, tasks, own_cluster):
    # the completion sleeps at import (each timed call re-runs it): the task lasts a few seconds
    cluster = own_cluster
    slow = [Completion(t.id, 0, "test", "ok", t.canonical_solution + "\nimport time\ntime.sleep(0.4)\n", None)
            for t in tasks[1:3]]
    client = cluster.client
    pids = client.run(os.getpid)  # worker address -> pid of the worker process this cluster started
    killed: list[tuple[str, int]] = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [address for address, keys in client.processing().items() if keys and address in pids]
            if busy:
                time.sleep(1.0)  # well inside the task (canonical first, then the sleeping completion)
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append((busy[0], pids[busy[0]]))
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        *_, measurements = measure_to_files(tasks[1:3], slow, timing("wall"), cluster, tmp_path)
    finally:
        killer.join()
    assert killed, "no worker was seen running a task"
    assert not psutil.pid_exists(killed[0][1]) or psutil.Process(killed[0][1]).status() == psutil.STATUS_ZOMBIE
    assert [(m.task_id, m.role, m.status) for m in measurements] == [
        (t.id, role, "ok") for t in tasks[1:3] for role in ("canonical", "completion")]


def hold_a_run_dir(_):
    """A worker mid-run, before the sandbox's keeper has taken the run's files off the host: its
    run dir exists, and the run never reaches its `finally` (the worker is killed with the cluster)."""
    make_run_root()
    time.sleep(600)


def test_a_cluster_closed_mid_run_leaves_no_run_dir_and_no_dask_files():
    temp = Path(tempfile.gettempdir())
    before = sorted(os.listdir(temp))
    with make_executor(ExecutorConfig(kind="dask", workers=1), progress=False) as executor:
        executor.client.submit(hold_a_run_dir, 0, pure=False)
        deadline = time.monotonic() + 60
        while not (held := list(temp.glob(f"perfrepro-sbx-{executor.run_dir_owner}-*"))):
            assert time.monotonic() < deadline, "the worker made no run dir"
            time.sleep(0.1)
        assert Path(executor.scratch).parent == temp and not (temp / "dask-scratch-space").exists()
    assert not held[0].exists()
    assert sorted(os.listdir(temp)) == before  # no dask-scratch-space either


def test_a_task_failing_everywhere_is_a_failed_measurement_with_the_reason():
    ok = TaskRun([Measurement("a", "canonical", "deterministic", "ok", 1.0, "instructions", 1.0, 1.0)],
                 environment="python=3.11; valgrind=3.19", worker="tcp://w1")
    stubs = [[Program("a", "canonical", "")], [Program("b", "canonical", ""), Program("b", "completion", "", 1)]]
    out = collect([ok, TaskFailure("KilledWorker: died 3 times", 3)], stubs, "deterministic", "instructions", None)
    assert [(m.task_id, m.role, m.sample, m.status) for m in out] == [
        ("a", "canonical", 0, "ok"), ("b", "canonical", 0, "crash"), ("b", "completion", 1, "crash")]
    assert "failed on every try (3): KilledWorker: died 3 times" in out[2].error


def test_deterministic_refuses_mixed_environments_naming_the_odd_worker():
    same, odd = "python=3.11.2; valgrind=valgrind-3.19.0", "python=3.11.2; valgrind=valgrind-3.22.0"
    pairs = [("tcp://a:1", same), ("tcp://b:1", same), ("tcp://c:1", odd)]
    with pytest.raises(RuntimeError, match=r"tcp://c:1 ran .*3\.22") as error:
        check_uniform("deterministic", pairs)
    assert "tcp://a:1" not in str(error.value).split("differ from the others")[1].split("):")[1]
    check_uniform("wall", pairs)  # wall may mix: the CPU kind is on every Measurement


def test_slurm_job_script_renders_without_slurm():
    script = job_script(SlurmConfig(queue="short", cores=4, memory="8GB", walltime="01:30:00",
                                    job_extra_directives=("--constraint=skylake",), python="/opt/perfrepro/bin/python"))
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("#SBATCH -p short", "#SBATCH --cpus-per-task=4", "#SBATCH -t 01:30:00",
                      "#SBATCH --constraint=skylake", "#SBATCH -J perfrepro-worker"):
        assert directive in lines, directive
    worker = next(line for line in lines if "dask_worker" in line)
    assert worker.startswith("/opt/perfrepro/bin/python -m distributed.cli.dask_worker tcp://")
    assert "--nthreads 1" in worker and "--nworkers 4" in worker  # one single-threaded worker per core


def test_slurm_without_sbatch_says_what_is_missing(monkeypatch, tmp_path):
    if shutil.which("sbatch"):
        pytest.skip("this machine has sbatch")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutorError, match=r"executor.kind: slurm needs Slurm's `sbatch` on PATH"):
        make_executor(ExecutorConfig(kind="slurm"))


def test_an_unreachable_scheduler_fails_within_seconds_naming_the_address():
    with socket.socket() as probe:  # a free loopback port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=f"executor.address: no Dask scheduler answered at {address} within 2 s"):
        make_executor(ExecutorConfig(kind="dask", address=address, connect_timeout_s=2.0))
    assert time.monotonic() - started < 20  # seconds, not the minutes of a default retry loop


LOOP_FOREVER = "class Solution:\n    def canAliceWin(self, n):\n        while True:\n            pass\n"


def sandboxed_under_a_worker(process: psutil.Process) -> bool:
    """A sandboxed run (unshare or setpriv) that a Dask worker (its title: `dask worker [tcp://...]`)
    started, not the stage itself; a process that ended meanwhile is not one."""
    try:
        return (process.name() in ("unshare", "setpriv")
                and any("dask worker" in " ".join(parent.cmdline()) for parent in process.parents()))
    except psutil.Error:
        return False


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # it ended between the two questions
        return False


def test_ctrl_c_on_a_stage_with_a_local_cluster_leaves_no_process(tmp_path, tasks):
    task = next(t for t in tasks if t.id == "stone-removal-game")
    write_jsonl(tmp_path / "tasks.jsonl", [task])
    write_jsonl(tmp_path / "completions.jsonl", [Completion(task.id, 0, "test", "ok", LOOP_FOREVER, None)])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["timing"].update(backend="wall", repeats=1, timeout_s=120.0)
    params["executor"] = {"kind": "dask", "workers": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / "measure.py"), "--params", str(tmp_path / "params.yaml"),
         "--tasks", str(tmp_path / "tasks.jsonl"), "--completions", str(tmp_path / "completions.jsonl"),
         "--out", str(tmp_path / "timings")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        root = psutil.Process(stage.pid)
        deadline, tree = time.monotonic() + 90, []
        while time.monotonic() < deadline:  # wait for the looping program under a worker
            tree = root.children(recursive=True)
            if any(sandboxed_under_a_worker(p) for p in tree):
                break
            time.sleep(0.3)
        else:
            pytest.fail("no sandboxed run started under the stage's workers")
        time.sleep(1.0)
        tree = root.children(recursive=True)
        stage.send_signal(signal.SIGINT)
        stage.wait(timeout=60)
        gone_by = time.monotonic() + 30
        while time.monotonic() < gone_by and any(alive(p) for p in tree):
            time.sleep(0.2)
        left = [p for p in tree if alive(p)]
        assert not left, [" ".join(p.cmdline()) for p in left]
        assert not (tmp_path / "timings").exists()  # an interrupted stage writes nothing
    finally:
        if stage.poll() is None:
            stage.kill()
