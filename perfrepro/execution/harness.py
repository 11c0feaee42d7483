"""Test harness: a Task + a solution -> a Program; and the driver that runs a Program's tests.

A Program's source (`build_program`) is a module whose top level is the harness's untimed set-up:
it runs the task's imports and full tests in one namespace (so a solution can't redefine `check`
or the helpers the tests use), runs the task's imports once more for the solution's names, and
compiles the solution. It defines `run_tests()`, one timed unit: the solution's own module-level
code executed in a fresh namespace (the imported names copied in, its own copy of the original
builtins, so patching `builtins` can't change what the tests see), then `check(candidate)`, which
raises on any wrong answer.

So the solution is charged for all of its own work, and no state of it survives from one call to
the next: a module-level cache dict, a `functools.cache` on a top-level helper or a class
attribute dies with its namespace, and work done at import time (precomputed tables, all the
answers) is paid in every call. What stays uncharged is the harness's own set-up: reading the
program, building the test namespace, the task's imports, compiling the solution. The canonical
solution is built and measured the same way.

The driver (`DRIVER_SOURCE`, written next to the program by the timing backends) is the first
code the sandboxed process runs. It binds what it needs before the program is loaded, reads a
per-run nonce from stdin (never in the source, argv or env), and writes one JSON record holding
that nonce to the result pipe only after `run_tests()` returned. A run passes when that record is
there, carries the nonce, says ok, and the process exited 0. So `sys.exit(0)` / `os._exit(0)`
before the tests, a failed assert, a crash or a timeout can't pass; printing "ok" on stdout
counts for nothing. A result whose class (defined by the solution) overrides `==` fails too.
Each timed loop reports its perf_counter window and its CPU time; the wall backend's driver
(`TIMED_DRIVER_SOURCE`) counts the CPU time of every thread of the process and of the children
it waited for (a C++ binary per test), the others' (`DRIVER_SOURCE`) the thread's.

Limits (documented, not defended): state a solution deliberately stashes in an imported module
(an attribute of `math`, `sys.modules`, the `builtins` module itself) outlives its namespace, and
so does a cache it plants in the harness's globals by walking frames; a program that walks the
interpreter's memory (gc, frames) to find the nonce in the driver could forge a record; the CPU
time of a child process a solution starts and never waits for is not charged to it. The
process sandbox still contains all of it. Modules a solution imports itself (beyond the task's
imports) are loaded by its first call and cached by the interpreter after that.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Sequence

from perfrepro.execution import sandbox
from perfrepro.execution.sandbox import Limits, SandboxResult
from perfrepro.records import Program, Task

PROGRAM_FILE = "program.py"
DRIVER_FILE = "driver.py"

# How the driver runs the tests: `timed` warms up, auto-ranges an inner loop to at least
# min_sample_ms and times `samples` loops of that length (the fastest counts); `once` runs the
# tests once, untimed (the deterministic backend counts instructions from outside); `setup` loads
# the program only: the interpreter and the harness's set-up, never the solution (the baseline).
MODES = ("timed", "once", "setup")

# Harness programs (these, and the optimization track's) run code in fresh namespaces holding a copy
# of the builtins as they were at start: what one call does to builtins never reaches the next.
FRESH_NAMESPACE = '''def _namespace(name):
    return {"__name__": name, "__builtins__": dict(_ORIGINAL_BUILTINS)}
'''


def program_head(import_lines: Sequence[str], /, **constants: object) -> str:
    """A harness program's first lines: `import_lines` (one of them binds `_builtins_module`), the
    builtins as they are at start (what FRESH_NAMESPACE copies), then each constant as `_NAME = repr`."""
    lines = [*import_lines, "", "_ORIGINAL_BUILTINS = dict(vars(_builtins_module))"]
    return "\n".join(lines + [f"_{name.upper()} = {value!r}" for name, value in constants.items()])


_PROGRAM_TEMPLATE = '''\
# perfrepro harness program for task {task_id!r}.
# Top level = the harness's untimed set-up; run_tests() = one timed unit: the solution's own
# module-level code in a fresh namespace, then the tests; raises on a wrong answer.
{head}


{fresh_namespace}

# tests first: the names they import are bound before any solution code runs
_tests_ns = _namespace("__tests__")
exec(compile(_IMPORTS + "\\n" + _TESTS, "<tests>", "exec"), _tests_ns)
_check = _tests_ns["check"]
# the task's imports for the solution, once; each timed call starts from a copy of these names
_imports_ns = _namespace("__solution__")
exec(compile(_IMPORTS, "<imports>", "exec"), _imports_ns)
_IMPORTED = {{name: value for name, value in _imports_ns.items() if name != "__builtins__"}}
_SOLUTION_CODE = compile(_SOLUTION, "<solution>", "exec")
_ENTRY_CODE = compile(_ENTRY_POINT, "<entry_point>", "eval")
del _tests_ns, _imports_ns


def _fresh_candidate():
    namespace = dict(_IMPORTED)
    namespace["__builtins__"] = dict(_ORIGINAL_BUILTINS)
    exec(_SOLUTION_CODE, namespace)  # the solution's own top level: charged, every call
    return eval(_ENTRY_CODE, namespace)


def _fair_result(result):
    for kind in type(result).__mro__:
        if kind.__module__ == "__solution__" and ("__eq__" in vars(kind) or "__ne__" in vars(kind)):
            raise AssertionError("the result's class overrides == (a result must be plain data)")
    return result


def _guard(function):
    def candidate(*args, **kwargs):
        return _fair_result(function(*args, **kwargs))

    return candidate


def run_tests():
    _check(_guard(_fresh_candidate()))
'''


def build_program(task: Task, solution: str, role: str, sample: int = 0) -> Program:
    """The Program that runs `solution` against all of `task`'s tests (Python)."""
    if not task.test_code.strip():
        raise ValueError(f"task {task.id}: test_code is empty")
    if not task.entry_point.strip():
        raise ValueError(f"task {task.id}: entry_point is empty")
    head = program_head(["import builtins as _builtins_module"], imports=task.imports, solution=solution,
                        tests=task.test_code, entry_point=task.entry_point)
    source = _PROGRAM_TEMPLATE.format(task_id=task.id, head=head, fresh_namespace=FRESH_NAMESPACE)
    return Program(task_id=task.id, role=role, source=source, sample=sample)


def canonical_program(task: Task) -> Program:
    return build_program(task, task.canonical_solution, role="canonical")


# The drivers' first step: the nonce that signs their result records, read from stdin (then closed),
# before the program can read it. One text for every driver (the ENAMEL one too), same bytes.
READ_NONCE = '''    nonce = b""
    while not nonce.endswith(b"\\n"):
        chunk = _read(0, 256)
        if not chunk:
            break
        nonce += chunk
    nonce = nonce.strip().decode()
'''

_DRIVER_TEMPLATE = r'''
# perfrepro driver: runs program.py's run_tests() and reports to the result pipe.
import gc as _gc
import json as _json
import os as _os
import sys as _sys
import time as _time
@CPU_CLOCK_DEFINITION@

_write, _exit, _close, _read, _open = _os.write, _os._exit, _os.close, _os.read, _os.open
_dup2, _getenv, _perf, _cpu = _os.dup2, _os.environ.get, _time.perf_counter, @CPU_CLOCK@
_dumps, _collect, _int, _float, _max = _json.dumps, _gc.collect, int, float, max
_range, _Base, _Assertion, _Memory = range, BaseException, AssertionError, MemoryError
_type, _str, _len, _ceil = type, str, len, __import__("math").ceil
_isinstance, _open_file, _compile, _exec = isinstance, open, compile, exec
_BUILTINS = dict(vars(__import__("builtins")))  # the program's own copy, fixed before it runs


def _main():
    fd = _int(_getenv("PERFREPRO_RESULT_FD"))
    flushes = (_sys.stdout.flush, _sys.stderr.flush)
    mode, min_sample_s, samples = _sys.argv[1], _float(_sys.argv[2]) / 1000.0, _int(_sys.argv[3])
@READ_NONCE@
    null = _open("/dev/null", _os.O_RDONLY)
    _dup2(null, 0)
    _close(null)

    def report(status, **fields):
        for flush in flushes:  # os._exit below skips the interpreter's own flush
            try:
                flush()
            except _Base:
                pass
        fields.update(nonce=nonce, status=status)
        data = (_dumps(fields) + "\n").encode()
        _write(fd, data)
        _close(fd)
        _exit(0)

    def failure(where, exc):
        if _isinstance(exc, _Assertion):
            status = "wrong_answer"
        elif _isinstance(exc, _Memory):
            status = "memory"
        else:
            status = "crash"
        try:
            message = "%s: %s: %s" % (where, _type(exc).__name__, _str(exc)[:300])
        except _Base:
            message = where
        report(status, error=message)

    namespace = {"__name__": "__program__", "__builtins__": _BUILTINS}
    try:
        with _open_file("program.py", encoding="utf-8") as handle:
            code = _compile(handle.read(), "program.py", "exec")
        _exec(code, namespace)
        run_tests = namespace["run_tests"]
    except _Base as exc:
        failure("set-up", exc)
    if mode == "setup":
        report("ok", n=0)
    try:
        t0 = _perf()
        run_tests()
        t1 = _perf()
    except _Base as exc:
        failure("tests", exc)
    first_s = t1 - t0
    if mode == "once":  # no clock values in the record: its bytes (and cost) never vary
        report("ok", n=1)
    try:
        n, elapsed = 1, first_s
        while elapsed < min_sample_s:  # auto-range: these loops also warm up
            n = _int(_max(n * 2, _ceil(n * 1.2 * min_sample_s / _max(elapsed, 1e-7))))
            t0 = _perf()
            for _ in _range(n):
                run_tests()
            elapsed = _perf() - t0
        windows, cpu = [], []
        for _ in _range(samples):
            _collect()
            c0 = _cpu()
            t0 = _perf()
            for _ in _range(n):
                run_tests()
            t1 = _perf()
            cpu.append(_cpu() - c0)
            windows.append([t0, t1])
    except _Base as exc:
        failure("tests (repeat)", exc)
    report("ok", n=n, windows=windows, cpu=cpu, first_s=first_s)


_main()
'''.replace("@READ_NONCE@\n", READ_NONCE)

# The driver the deterministic backend counts instructions of (and `once`, `setup` runs): its loops'
# CPU clock is the thread's, and its bytes stay what they were, so its counts do too.
DRIVER_SOURCE = _DRIVER_TEMPLATE.replace("@CPU_CLOCK_DEFINITION@\n", "").replace("@CPU_CLOCK@", "_time.thread_time")
# The wall backend's driver: its loops' CPU clock counts every thread of the process and the
# children it waited for (a C++ binary per test); it gives the loops' CPU share, not ET (wall.py).
TIMED_DRIVER_SOURCE = _DRIVER_TEMPLATE.replace("@CPU_CLOCK_DEFINITION@\n", '''import resource as _resource

_process_time, _getrusage, _CHILDREN = _time.process_time, _resource.getrusage, _resource.RUSAGE_CHILDREN


def _process_cpu():
    children = _getrusage(_CHILDREN)
    return _process_time() + children.ru_utime + children.ru_stime

''').replace("@CPU_CLOCK@", "_process_cpu")


@dataclass(frozen=True)
class RunRecord:
    """The driver's verdict on one run, checked against the sandbox's account of it."""

    status: str  # ok | wrong_answer | timeout | memory | disk | crash
    error: str | None
    n: int = 0  # run_tests() calls in the timed sample
    # perf_counter at the start / end of the fastest timed loop (s): the shortest
    t0: float | None = None
    t1: float | None = None
    first_s: float | None = None  # the first (cold) run_tests() call, seconds
    windows: tuple[tuple[float, float], ...] = ()  # every timed loop (perf_counter s)
    # CPU time of each timed loop, s: the thread's (DRIVER_SOURCE), or the process's every thread's
    # plus the children it waited for (TIMED_DRIVER_SOURCE)
    cpu_s: tuple[float, ...] = ()
    loop_cpu_s: float | None = None  # CPU time of the fastest loop, s

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def seconds_per_run(self) -> float | None:
        """Wall seconds per run_tests() call in the fastest loop."""
        if self.t0 is None or self.t1 is None or self.n <= 0:
            return None
        return (self.t1 - self.t0) / self.n

    @property
    def cpu_seconds_per_run(self) -> float | None:
        """CPU seconds per run_tests() call in the fastest loop."""
        if self.loop_cpu_s is None or self.n <= 0:
            return None
        return self.loop_cpu_s / self.n


def new_nonce() -> str:
    return secrets.token_hex(16)


def driver_files(program: Program, timed: bool = False) -> dict[str, str]:
    """The run dir's files: the program, the driver (`TIMED_DRIVER_SOURCE` when `timed`) and the
    sandbox's packages."""
    if program.language != "python":
        raise ValueError(f"{program.task_id}: the Python harness can't run a {program.language} program")
    return {**sandbox.python_files(), PROGRAM_FILE: program.source,
            DRIVER_FILE: TIMED_DRIVER_SOURCE if timed else DRIVER_SOURCE}


def driver_args(mode: str, min_sample_ms: float = 0.0, samples: int = 1) -> list[str]:
    """argv after the interpreter: `samples` timed loops per process (the fastest one counts)."""
    if mode not in MODES:
        raise ValueError(f"driver mode: expected one of {MODES}, got {mode!r}")
    return ["-P", DRIVER_FILE, mode, repr(float(min_sample_ms)), str(int(samples))]


def read_record(result: SandboxResult, nonce: str) -> RunRecord:
    """Combine the sandbox result with the driver's record: only a nonce-bearing ok passes."""
    if result.status != "ok":  # timeout, memory, disk, crash (output cap, signal, exit code)
        return RunRecord(result.status, with_stderr_tail(result.error, result))
    records = []
    for line in result.channel.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("nonce") == nonce:
            records.append(row)
    if len(records) != 1:
        return RunRecord("crash", with_stderr_tail(
            "the program exited before the harness reported a result (sys.exit / os._exit?)"
            if not records else "more than one result record", result))
    row = records[0]
    status = row.get("status")
    if status not in ("ok", "wrong_answer", "memory", "crash"):
        return RunRecord("crash", f"unknown harness status {status!r}")
    if status != "ok":
        return RunRecord(status, row.get("error"))
    try:
        windows = tuple((float(a), float(b)) for a, b in row.get("windows") or ())
        cpu = tuple(float(c) for c in row.get("cpu") or ())
        fastest = min(range(len(windows)), key=lambda i: windows[i][1] - windows[i][0]) if windows else None
        t0, t1 = windows[fastest] if fastest is not None else (None, None)
        return RunRecord("ok", None, n=int(row.get("n", 0)), t0=t0, t1=t1,
                         first_s=_float_or_none(row.get("first_s")), windows=windows, cpu_s=cpu,
                         loop_cpu_s=cpu[fastest] if fastest is not None and len(cpu) == len(windows) else None)
    except (TypeError, ValueError):
        return RunRecord("crash", "malformed harness record")


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def with_stderr_tail(error: str | None, result: SandboxResult) -> str:
    tail = result.stderr_tail.strip().splitlines()[-3:]
    return (error or "failed") + (" | " + " / ".join(tail) if tail else "")


def run_program(
    program: Program,
    mode: str = "once",
    limits: Limits | None = None,
    min_sample_ms: float = 0.0,
    samples: int = 1,
) -> tuple[RunRecord, SandboxResult]:
    """Run a Program's tests in the sandbox (untimed by default): the verdict and the raw result."""
    nonce = new_nonce()
    result = sandbox.run(
        [*sandbox.python_argv(), *driver_args(mode, min_sample_ms, samples)],
        stdin=(nonce + "\n").encode(),
        limits=limits or Limits(),
        env=sandbox.python_env(),
        files=driver_files(program, timed=mode == "timed"),
        channel=True,
    )
    return read_record(result, nonce), result
