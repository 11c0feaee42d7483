"""ENAMEL's driver: one program's calls on a task's tests, timed ENAMEL's way, in its own sandboxed
process (perfrepro.optimization.enamel_protocol says what a timed call contains and how the times
are scored). The driver reads the task from a pickle and reports each test as a JSON line on the
sandbox's channel, so a process the sandbox kills still leaves the tests it completed.
"""

from __future__ import annotations

import json
import pickle
import secrets
from dataclasses import dataclass

from perfrepro.execution import sandbox
from perfrepro.execution.harness import READ_NONCE
from perfrepro.optimization.inputs import TaskInputs
from perfrepro.records import OptTask

DRIVER_FILE = "enamel_driver.py"
TASK_FILE = "task.pkl"


@dataclass(frozen=True)
class EnamelSettings:
    """What the measurement needs from pie.enamel (perfrepro.config.EnamelConfig)."""

    repeats: int = 6
    level_weights: tuple[float, ...] = (0.0, 3.0, 3.0, 4.0)
    timeout_factor: float = 2.0
    tolerance_s: float = 0.01
    memory_mb: int = 4096
    reference_timeout_s: float = 600.0
    clock: str = "wall"  # wall (ENAMEL's) | cpu (the process's CPU time, and a CPU-time limit)

    def repeats_at(self, level: int) -> int:
        """ENAMEL repeats only the levels that count: a level of weight 0 runs once."""
        return self.repeats if self.level_weights[level] > 0 else 1


DRIVER_SOURCE = r'''
# perfrepro ENAMEL driver: times one program's calls on a task's tests, one JSON line per test.
import copy as _copy
import gc as _gc
import json as _json
import os as _os
import pickle as _pickle
import signal as _signal
import sys as _sys
import time as _time

_write, _exit, _read, _perf, _setitimer = _os.write, _os._exit, _os.read, _time.perf_counter, _signal.setitimer
_dumps, _deepcopy, _compile, _exec, _Base = _json.dumps, _copy.deepcopy, compile, exec, BaseException
_gc_off, _gc_on, _gc_state = _gc.disable, _gc.enable, _gc.isenabled
_BUILTINS = dict(vars(__import__("builtins")))


class _TimeLimit(BaseException):  # not an Exception: `except Exception` in a program can't swallow it
    pass


def _expired(signum, frame):
    raise _TimeLimit()


def _main():
    fd = int(_os.environ["PERFREPRO_RESULT_FD"])
@READ_NONCE@

    def report(**fields):
        fields["nonce"] = nonce
        _write(fd, (_dumps(fields) + "\n").encode())

    with open("task.pkl", "rb") as handle:
        task = _pickle.load(handle)
    _os.remove("task.pkl")  # the answers stay in this process only
    checker_ns = {"__name__": "__checker__", "__builtins__": dict(_BUILTINS)}
    try:  # the prompt's helpers (HumanEval/32's checker calls poly)
        _exec(_compile(task["prompt"], "<prompt>", "exec"), checker_ns)
    except _Base:
        pass
    _exec(_compile(task["checker"], "<checker>", "exec"), checker_ns)
    check = checker_ns["__check"]
    try:
        code = _compile(task["prompt"] + "\n" + task["code"], "<program>", "exec")
    except _Base as exc:
        report(level=0, cid=0, status="crash", error="does not compile: %s: %s" % (type(exc).__name__, exc))
        _exit(0)
    limit, entry_point = task["limit_s"], task["entry_point"]
    if task["clock"] == "cpu":  # CPU time: what other processes on the machine do is not counted
        # the thread's clock: the process's one ticks in jiffies once a CPU timer is armed (RLIMIT_CPU, ITIMER_PROF)
        _now, timer = _time.thread_time, _signal.ITIMER_PROF
        _signal.signal(_signal.SIGPROF, _expired)
    else:  # ENAMEL's: elapsed wall-clock time
        _now, timer = _perf, _signal.ITIMER_REAL
        _signal.signal(_signal.SIGALRM, _expired)
    for level, cid, args, answer, repeats in task["tests"]:
        times = []
        status, error = "ok", None
        for _ in range(repeats):
            namespace = {"__name__": "__main__", "__builtins__": dict(_BUILTINS), "time": _time,
                         "print": None, "input": None}
            try:
                call_args = _deepcopy(args)
                enabled = _gc_state()
                _gc_off()
                try:  # the limit covers the program's own top level too, as in ENAMEL; the clock only the call
                    if limit:
                        _setitimer(timer, limit)
                    _exec(code, namespace)
                    function = namespace[entry_point]
                    t0 = _now()
                    output = function(*call_args)
                    t1 = _now()
                finally:
                    _setitimer(timer, 0)
                    if enabled:
                        _gc_on()
                accepted = check(args, answer, output)
            except _TimeLimit:
                status, error = "timeout", "over the time limit of %.6f s" % limit
            except MemoryError:
                status, error = "memory", "MemoryError"
            except OverflowError as exc:
                status, error = "memory", "OverflowError: %s" % (str(exc)[:200],)
            except _Base as exc:
                status, error = "crash", "%s: %s" % (type(exc).__name__, str(exc)[:300])
            else:
                if accepted:
                    times.append(t1 - t0)
                    continue
                status, error = "wrong_answer", "wrong output"
            break
        report(level=level, cid=cid, status=status, error=error, times=times)
        if status != "ok":
            break
    report(done=True)
    _exit(0)


_main()
'''.replace("@READ_NONCE@\n", READ_NONCE)


@dataclass(frozen=True)
class CaseRun:
    """One test of one program: its status and, when ok, the times of its repeats (seconds)."""

    level: int
    cid: int
    status: str
    times: tuple[float, ...] = ()
    error: str | None = None


def task_payload(task: OptTask, code: str, inputs: TaskInputs, settings: EnamelSettings, limit_s: float | None) -> bytes:
    """The pickle the driver reads: prompt, checker, entry point, the program, every test with its
    repeats, and the per-call time limit (None: no limit, the reference's run)."""
    tests = [(t["level"], t["cid"], tuple(t["args"]), t["answer"], settings.repeats_at(t["level"])) for t in inputs.tests]
    return pickle.dumps({
        "prompt": task.statement, "checker": task.checker, "entry_point": task.entry_point, "code": code,
        "tests": tests, "limit_s": limit_s, "clock": settings.clock,
    }, protocol=4)


def parse_test_runs(channel: bytes, nonce: str) -> tuple[list[CaseRun], bool]:
    """The driver's per-test records carrying `nonce`, and whether it reported that it finished."""
    runs, done = [], False
    for line in channel.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict) or row.get("nonce") != nonce:
            continue
        if row.get("done"):
            done = True
            continue
        try:
            runs.append(CaseRun(int(row["level"]), int(row["cid"]), str(row["status"]),
                                tuple(float(t) for t in row.get("times") or ()), row.get("error")))
        except (KeyError, TypeError, ValueError):
            continue
    return runs, done


def run_program(task: OptTask, code: str, inputs: TaskInputs, settings: EnamelSettings,
                limit_s: float | None) -> list[CaseRun]:
    """Run `code` on the task's tests in the sandbox; one CaseRun per test it reached. When the
    sandbox stops the process (wall clock, memory), the first test without a record gets the
    sandbox's status."""
    calls = sum(settings.repeats_at(t["level"]) for t in inputs.tests)
    wall_s = settings.reference_timeout_s if limit_s is None else 60.0 + 3.0 * calls * limit_s
    nonce = secrets.token_hex(16)
    result = sandbox.run(
        [*sandbox.python_argv(), "-P", DRIVER_FILE],
        stdin=(nonce + "\n").encode(),
        limits=sandbox.Limits(timeout_s=wall_s, memory_mb=settings.memory_mb),
        env=sandbox.python_env(),
        files={**sandbox.python_files(), DRIVER_FILE: DRIVER_SOURCE,
               TASK_FILE: task_payload(task, code, inputs, settings, limit_s)},
        channel=True,
    )
    runs, done = parse_test_runs(result.channel, nonce)
    if done or (runs and runs[-1].status != "ok"):
        return runs
    reached = {(r.level, r.cid) for r in runs}
    missing = next((t for t in inputs.tests if (t["level"], t["cid"]) not in reached), None)
    if missing is not None:
        status = result.status if result.status in ("timeout", "memory") else "crash"
        error = f"the sandbox stopped the run ({result.status}): {result.error or result.stderr_tail[-300:]}"
        runs.append(CaseRun(missing["level"], missing["cid"], status, (), error))
    return runs
