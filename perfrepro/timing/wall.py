"""Wall-clock backend: the tests' own time in a fresh process, RSS sampled by the parent.

Per repeat, a fresh sandboxed process loads the program (untimed), runs `run_tests()` once (the
correctness check and a cold call), auto-ranges an inner loop until one loop lasts at least
`min_sample_ms` (these loops also warm up), then times LOOPS_PER_PROCESS more loops of that
length by perf_counter, and keeps the fastest. A thread of this process reads the program's RSS
from /proc/<pid>/statm every `rss_interval_ms`. Per run:
- ET = the fastest loop's time / calls (ms per run of the tests),
- TMU = peak RSS inside the loop (MB = MiB, the whole process as mprof/EffiBench count it),
- MU = trapezoid integral of RSS over the loop / calls (MB·s per run of the tests).
Beside them, each loop's CPU time (every thread of the process, plus the children it waited for)
gives `cpu_share` and `cpu_time_ms`, which show a loop that waited for a CPU. They are not ET:
under the sandbox's RLIMIT_CPU the kernel's process CPU clock only advances at scheduler ticks
(4 ms here; 72% of 1 ms steps read 0 with the limit set, none without), so on 20 ms loops it is
off by up to 20% (benchmarks/calibration.py: canonical against itself within ±10% on 72-76% of
tasks by CPU time, 97% by perf_counter, in one run). Programs are interleaved A B A B over
repeats, so repeat r of one program and repeat r of another ran seconds apart: their ratio is a
paired ratio (`ratio_to_first` in the raw runs).

The Measurement holds the second-fastest repeat's ET (`second_fastest`) and the median repeat's
MU and TMU. The second-fastest, because on this 2-vCPU virtual machine the code sometimes runs
1.3-1.7x slower for ~0.1-0.3 s at a time, unseen by the guest (CPU share 1.00, no preemption,
migration or page fault): a process whose loops fall in such a stretch is slow throughout, and
three such processes in a median of five put the ratio of two identical programs at 0.6 or 1.6.
The second-fastest of seven moves only when six are slow, and one lucky process can't decide it
either (docs/timing.md). `perfrepro.timing.paired.task_ratio` gives a program's ratio to another
with its own interval.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Sequence

from perfrepro.config import TimingConfig
from perfrepro.execution import harness, sandbox
from perfrepro.execution.compile import prepare_programs
from perfrepro.records import Measurement, Program
from perfrepro.timing.base import RunCallback, failed

log = logging.getLogger(__name__)

MB = float(1 << 20)
TIME_UNIT = "ms"
# Timed loops per process; the fastest counts (timeit's rule: slower loops only add noise).
LOOPS_PER_PROCESS = 3


def second_fastest(times: Sequence[float]) -> float:
    """A program's ET over its repeats: the second-fastest of three or more, else the fastest."""
    ordered = sorted(times)
    return ordered[1] if len(ordered) >= 3 else ordered[0]


class RssSampler:
    """Samples the RSS of the interpreter process under a sandbox wrapper, `interval_s` apart."""

    def __init__(self, interpreter: str, interval_s: float):
        self.interpreter = os.path.realpath(interpreter)
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []  # (perf_counter s, RSS bytes)

    def __call__(self, pid: int, stopped: threading.Event) -> None:
        target = None
        while target is None and not stopped.is_set():
            target = _find_interpreter(pid, self.interpreter)
            if target is None:
                time.sleep(0.0005)
        if target is None:
            return
        page = os.sysconf("SC_PAGE_SIZE")
        try:
            fd = os.open(f"/proc/{target}/statm", os.O_RDONLY)
        except OSError:
            return
        try:
            next_at = time.perf_counter()
            while not stopped.is_set():
                try:
                    data = os.pread(fd, 128, 0)
                except OSError:
                    break
                if not data:
                    break
                now = time.perf_counter()
                self.samples.append((now, int(data.split()[1]) * page))
                next_at += self.interval_s
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.perf_counter()
        finally:
            os.close(fd)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _find_interpreter(root: int, interpreter: str) -> int | None:
    """The first process (breadth-first from `root`) whose executable is `interpreter`."""
    queue = [root]
    while queue:
        pid = queue.pop(0)
        try:
            if os.readlink(f"/proc/{pid}/exe") == interpreter:
                return pid
        except OSError:
            pass
        queue.extend(_children(pid))
    return None


def memory_in_window(samples: Sequence[tuple[float, int]], t0: float, t1: float) -> tuple[float, float]:
    """(peak MB, integral MB·s) of RSS over [t0, t1]: trapezoid, linear at the window's edges.

    With no sample inside the window, the nearest sample stands for the whole window.
    """
    if not samples or t1 <= t0:
        raise ValueError("no RSS samples for the timed window")
    points = sorted(samples)

    def at(t: float) -> float:
        before = [p for p in points if p[0] <= t]
        after = [p for p in points if p[0] >= t]
        if not before:
            return float(after[0][1])
        if not after:
            return float(before[-1][1])
        (ta, ra), (tb, rb) = before[-1], after[0]
        return float(ra) if tb == ta else ra + (rb - ra) * (t - ta) / (tb - ta)

    inside = [(t, float(r)) for t, r in points if t0 < t < t1]
    curve = [(t0, at(t0)), *inside, (t1, at(t1))]
    integral = sum((tb - ta) * (ra + rb) / 2.0 for (ta, ra), (tb, rb) in zip(curve, curve[1:]))
    peak = max(r for _, r in curve)
    return peak / MB, integral / MB


class WallClockBackend:
    name = "wall"

    def __init__(self, config: TimingConfig, on_run: RunCallback | None = None):
        self.config = config
        self.on_run = on_run
        self.limits = sandbox.Limits(timeout_s=config.timeout_s, memory_mb=config.memory_limit_mb)

    def run_once(self, program: Program) -> tuple[harness.RunRecord, dict]:
        """One fresh process: the driver's record and the raw numbers of this repeat."""
        interpreter = sandbox.sandbox_python()
        sampler = RssSampler(interpreter, self.config.rss_interval_ms / 1000.0)
        nonce = harness.new_nonce()
        result = sandbox.run(
            [*sandbox.python_argv(interpreter),
             *harness.driver_args("timed", self.config.min_sample_ms, LOOPS_PER_PROCESS)],
            stdin=(nonce + "\n").encode(),
            limits=self.limits,
            env=sandbox.python_env(),
            files=harness.driver_files(program, timed=True),
            channel=True,
            monitor=sampler,
        )
        record = harness.read_record(result, nonce)
        raw: dict = {"status": record.status, "error": record.error, "process_wall_s": round(result.wall_s, 6)}
        if record.passed:
            seconds = record.seconds_per_run
            try:
                peak_mb, integral = memory_in_window(sampler.samples, record.t0, record.t1)
            except ValueError as exc:
                record = harness.RunRecord("crash", f"RSS sampling failed: {exc}")
                raw.update(status=record.status, error=record.error)
                return record, raw
            inside = sum(1 for t, _ in sampler.samples if record.t0 < t < record.t1)
            raw.update(
                calls=record.n,
                loop_s=record.t1 - record.t0,
                loops_s=[round(b - a, 9) for a, b in record.windows],
                loops_cpu_s=[round(c, 9) for c in record.cpu_s],
                cpu_share=min(1.0, max(c / (b - a) for (a, b), c in zip(record.windows, record.cpu_s)))
                if record.cpu_s else None,
                execution_time_ms=seconds * 1000.0,
                cpu_time_ms=record.cpu_seconds_per_run * 1000.0 if record.cpu_s else None,
                first_call_ms=(record.first_s or 0.0) * 1000.0,
                peak_memory_mb=peak_mb,
                memory_usage_mb_s=integral / record.n,
                rss_samples_in_loop=inside,
            )
        return record, raw

    def measure(self, programs: Sequence[Program]) -> list[Measurement]:
        # C++ programs: compiled once (g++, cached by source hash) and wrapped for the Python driver
        programs, compile_errors = prepare_programs(programs, self.config.gem5_optimization_flag)
        runs: list[list[dict]] = [[] for _ in programs]
        failures: dict[int, harness.RunRecord] = {i: harness.RunRecord("crash", e) for i, e in compile_errors.items()}
        for repeat in range(self.config.repeats):
            first_ms = None  # the first program's ET in this repeat: what the others pair with
            for index, program in enumerate(programs):  # interleaved: A B A B ...
                if index in failures:
                    continue  # a failure is final: no point timing it again
                record, raw = self.run_once(program)
                raw["repeat"] = repeat
                if index == 0:
                    first_ms = raw.get("execution_time_ms")
                elif first_ms and "execution_time_ms" in raw:
                    raw["ratio_to_first"] = raw["execution_time_ms"] / first_ms
                if self.on_run:
                    self.on_run(program, repeat, raw)
                if record.passed:
                    runs[index].append(raw)
                else:
                    failures[index] = record
        out = []
        for index, program in enumerate(programs):
            if index in failures:
                record = failures[index]
                out.append(failed(program, self.name, record.status, TIME_UNIT, record.error))
                continue
            times = [r["execution_time_ms"] for r in runs[index]]
            out.append(Measurement(
                task_id=program.task_id,
                role=program.role,
                backend=self.name,
                status="ok",
                execution_time=second_fastest(times),  # see the module's docstring
                time_unit=TIME_UNIT,
                peak_memory_mb=statistics.median(r["peak_memory_mb"] for r in runs[index]),
                memory_usage=statistics.median(r["memory_usage_mb_s"] for r in runs[index]),
                sample=program.sample,
                samples=tuple(times),
            ))
        return out
