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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from perfrepro.dispatch import Executor, LocalExecutor, TaskFailure
from perfrepro.metrics.enamel import CENSORED, hodges_lehmann
from perfrepro.metrics.optimization import level_key
from perfrepro.optimization.enamel_driver import CaseRun, EnamelSettings, run_program
from perfrepro.optimization.enamel_inputs import task_index
from perfrepro.optimization.inputs import TaskInputs
from perfrepro.records import Completion, Measurement, OptTask
from perfrepro.timing.fingerprint import environment_fingerprint
from perfrepro.timing.remote import check_workers

BACKEND = "enamel"
TIME_UNIT = "ms"


@dataclass(frozen=True)
class Candidate:
    """One program to score on a task: `code` None is a sample with no program (`error` says why)."""

    role: str
    sample: int
    code: str | None
    error: str | None = None


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

