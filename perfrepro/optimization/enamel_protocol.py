"""ENAMEL's evaluation protocol for the optimization track (pie.protocol: enamel).

Per task, as ENAMEL's `Evaluator.evaluate` does (enam 0.2.0):
1. the ENAMEL reference runs on every test (ENAMEL's inputs, perfrepro.optimization.enamel_inputs):
   level 0 once per test, levels with a weight `repeats` times per test. A test's time is the
   Hodges-Lehmann estimate of its repeats; a level's reference time ``ref_j`` is the largest of its
   tests' times, and the task's timeout is ``T = timeout_factor x max_j ref_j`` over weighted levels;
2. then each program to score (the slow program, i.e. HumanEval's canonical solution; the sample
   sets; the generated programs) runs the same way, each call under a time limit of
   ``T + tolerance_s``. A level's time is the largest of its tests' estimates. A call that
   overruns, runs out of memory or overflows stops that level and every level after it (they
   score 0, the program still counts as correct); a wrong answer or any other exception on any
   level fails the program (pass 0, eff 0); a timeout on level 0 fails it too.
Scoring is perfrepro.metrics.enamel.

What a timed call contains is ENAMEL's: only the call of the entry point, on a deep copy of the
input, with the garbage collector off; the program's module-level code runs untimed before each
call, in a fresh namespace where ``print`` and ``input`` are None (as in ENAMEL). The clock is
``time.perf_counter`` (ENAMEL's ``time.time`` has a coarser tick on some systems); with
``clock: cpu`` (a difference from ENAMEL, off by default) it is the process's CPU time instead, and
the limit a CPU-time limit, so other work on a shared machine neither slows nor times out a call.

Unlike ENAMEL, which runs every program inside its own process, each program runs in its own
sandboxed process (perfrepro.execution.sandbox): generated code is untrusted. The process reports
each test as it finishes, so a process the sandbox kills still leaves the tests it completed; the
level it was on counts as a timeout (or out of memory).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pickle
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from perfrepro.dispatch import Executor, LocalExecutor, TaskFailure
from perfrepro.execution import sandbox
from perfrepro.metrics.enamel import CENSORED, hodges_lehmann
from perfrepro.metrics.optimization import level_key
from perfrepro.optimization.enamel_inputs import task_index
from perfrepro.optimization.inputs import TaskInputs
from perfrepro.records import Completion, Measurement, OptTask
from perfrepro.timing.fingerprint import environment_fingerprint
from perfrepro.timing.remote import check_workers

BACKEND = "enamel"
TIME_UNIT = "ms"
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


@dataclass(frozen=True)
class Candidate:
    """One program to score on a task: `code` None is a sample with no program (`error` says why)."""

    role: str
    sample: int
    code: str | None
    error: str | None = None


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
    nonce = b""
    while not nonce.endswith(b"\n"):
        chunk = _read(0, 256)
        if not chunk:
            break
        nonce += chunk
    nonce = nonce.strip().decode()

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
'''


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


def level_measurements(task_id: str, role: str, sample: int, levels: Sequence[int], runs: Sequence[CaseRun],
                       environment: str = "") -> list[Measurement]:
    """One Measurement per level: ``execution_time`` the largest test estimate (ms), `samples` every
    test's Hodges-Lehmann estimate (ms). A level after a timeout or out-of-memory repeats that
    status (ENAMEL does not run it); after a failure, the failure."""
    by_level: dict[int, list[CaseRun]] = {}
    for run in runs:
        by_level.setdefault(run.level, []).append(run)
    out, stopped = [], None
    for level in levels:
        tests = by_level.get(level, [])
        bad = next((t for t in tests if t.status != "ok"), None)
        if stopped is not None:
            status, error, estimates = stopped.status, f"not run: level {stopped.level} stopped ({stopped.status})", ()
        elif bad is not None:
            status, error, estimates = bad.status, f"test {bad.cid}: {bad.error}", ()
            stopped = bad
        elif not tests:
            status, error, estimates = "crash", "no test of this level reported", ()
            stopped = CaseRun(level, 0, "crash")
        else:
            status, error = "ok", None
            estimates = tuple(1000.0 * hodges_lehmann(t.times) for t in tests)
        out.append(Measurement(
            task_id=level_key(task_id, level), role=role, backend=BACKEND, status=status,
            execution_time=max(estimates) if estimates else None, time_unit=TIME_UNIT,
            peak_memory_mb=None, memory_usage=None, sample=sample, samples=estimates, error=error,
            environment=environment,
        ))
    return out


def task_timeout_ms(reference: Sequence[Measurement], settings: EnamelSettings) -> float | None:
    """T = timeout_factor x the largest reference level time over weighted levels (ms); None when
    the reference failed a weighted level."""
    times = []
    for m in reference:
        level = int(m.task_id.rpartition("@L")[2])
        if settings.level_weights[level] > 0:
            if not m.passed:
                return None
            times.append(m.execution_time)
    return settings.timeout_factor * max(times) if times else None


def measure_enamel_task(settings: EnamelSettings, item: tuple[OptTask, TaskInputs, Sequence[Candidate]]) -> list[Measurement]:
    """One task on whichever worker runs it: the reference, then every candidate under its limit."""
    task, inputs, candidates = item
    environment = environment_fingerprint("wall")
    levels = tuple(range(len(task.levels)))
    reference = level_measurements(task.id, "reference", 0, levels,
                                   run_program(task, task.reference_program, inputs, settings, None), environment)
    timeout_ms = task_timeout_ms(reference, settings)
    out = list(reference)
    for candidate in candidates:
        if candidate.code is None:
            runs = [CaseRun(0, 0, "no_code", (), candidate.error or "no program")]
        elif timeout_ms is None:
            runs = [CaseRun(0, 0, "crash", (), "not run: the ENAMEL reference failed on this task")]
        else:
            runs = run_program(task, candidate.code, inputs, settings, timeout_ms / 1000.0 + settings.tolerance_s)
        out += level_measurements(task.id, candidate.role, candidate.sample, levels, runs, environment)
    return out


def task_candidates(task: OptTask, completions: Sequence[Completion],
                    sample_sets: Mapping[str, Sequence[str]]) -> list[Candidate]:
    """What a task scores: the slow program, each sample set's programs (role = the set's name),
    then the generated completions (no program: `no_code`)."""
    out = [Candidate("slow", 0, task.slow_program)]
    for name, programs in sample_sets.items():
        out += [Candidate(name, i, code) for i, code in enumerate(programs)]
    for c in completions:
        ok = c.status == "ok" and bool(c.code)
        out.append(Candidate("generated", c.sample, c.code if ok else None,
                             None if ok else (c.error or "the answer holds no program that defines the entry point")))
    return out


def measure_enamel_tasks(
    tasks: Sequence[OptTask],
    load_inputs: Callable[[str], TaskInputs],
    completions: Sequence[Completion],
    settings: EnamelSettings,
    sample_sets: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    executor: Executor | None = None,
) -> list[Measurement]:
    """Measurements of every task (reference, slow, sample sets, generated), in task order.
    `sample_sets`: set name -> task id -> programs. One task is one unit of work for `executor`."""
    by_task: dict[str, list[Completion]] = {}
    for completion in completions:
        by_task.setdefault(completion.task_id, []).append(completion)
    sets = sample_sets or {}
    items = [(task, load_inputs(task.id),
              task_candidates(task, by_task.get(task.id, []), {name: s.get(task.id, []) for name, s in sets.items()}))
             for task in tasks]
    executor = executor or LocalExecutor()
    check_workers(executor, "wall")  # wall-clock times: say when workers share a machine
    results = executor.map(functools.partial(measure_enamel_task, settings), items, desc="measure_pie (enamel)",
                           unit="task", tally=lambda ms: {"failed": sum(1 for m in ms if m.status not in CENSORED)})
    out: list[Measurement] = []
    for (task, _, candidates), result in zip(items, results):
        if isinstance(result, TaskFailure):
            why = f"executor: the task failed on every try ({result.tries}): {result.reason}"
            roles = [("reference", 0)] + [(c.role, c.sample) for c in candidates]
            result = [Measurement(task_id=level_key(task.id, level), role=role, backend=BACKEND, status="crash",
                                  execution_time=None, time_unit=TIME_UNIT, peak_memory_mb=None, memory_usage=None,
                                  sample=sample, error=why)
                      for role, sample in roles for level in range(len(task.levels))]
        out += result
    return out


def read_sample_set(path, task_ids: Sequence[str]) -> dict[str, list[str]]:
    """An ENAMEL samples file (a JSON list with one list of programs per HumanEval task, or a dict
    from the task's number to that list), for the tasks in `task_ids`."""
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(f"ENAMEL samples file {path}: not JSON ({exc})") from None
    out = {}
    for task_id in task_ids:
        index = task_index(task_id)
        try:
            programs = data[index] if isinstance(data, list) else data[str(index)]
        except (IndexError, KeyError):
            raise ValueError(f"ENAMEL samples file {path}: no entry for {task_id} (index {index})") from None
        if not isinstance(programs, list) or not all(isinstance(p, str) for p in programs):
            raise ValueError(f"ENAMEL samples file {path}, entry {index} ({task_id}): expected a list of programs")
        out[task_id] = programs
    return out


class EnamelProtocol:
    """pie.protocol enamel (perfrepro.optimization.level_timing.make_protocol): built from a
    perfrepro.config.EnamelConfig, with its sample sets read from `samples_dir/<name>.json`."""

    name = "enamel"
    backend_name = BACKEND

    def __init__(self, config, samples_dir, task_ids: Sequence[str]):
        self.config = config
        self.settings = dataclasses.asdict(config)
        self.enamel = EnamelSettings(repeats=config.repeats, level_weights=tuple(config.level_weights),
                                     timeout_factor=config.timeout_factor, tolerance_s=config.tolerance_s,
                                     memory_mb=config.memory_mb, reference_timeout_s=config.reference_timeout_s,
                                     clock=config.clock)
        self.sample_sets = {name: read_sample_set(Path(samples_dir) / f"{name}.json", task_ids)
                            for name in config.sample_sets or ()}

    def measure(self, tasks: Sequence[OptTask], load_inputs: Callable[[str], TaskInputs],
                completions: Sequence[Completion], executor: Executor | None = None) -> list[Measurement]:
        return measure_enamel_tasks(tasks, load_inputs, completions, self.enamel, self.sample_sets, executor)

