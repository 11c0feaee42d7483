"""Measure a PIE-track run: per task, the slow program, the reference and every generated sample,
at each timed level, in one backend call (so the backend interleaves them over repeats).

A generated candidate is first run once, untimed, on the correctness tests (level 0 and every
HumanEval+ input, see `build_correctness_program`); one that fails there is recorded as failed at
every level and never timed. The slow program and the reference need no such run: the
correctness tests are, by construction, those on which both agree (perfrepro.optimization.inputs).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterable, Sequence

from perfrepro.config import TimingConfig
from perfrepro.dispatch import Executor, LocalExecutor
from perfrepro.execution.harness import run_program
from perfrepro.execution.sandbox import Limits
from perfrepro.optimization.inputs import TaskInputs
from perfrepro.optimization.programs import TIMED_LEVELS, build_correctness_program, build_level_programs, level_key
from perfrepro.records import Completion, Measurement, OptTask, Program
from perfrepro.timing.base import failed_record, make_backend
from perfrepro.timing.remote import TaskRun, check_workers, collect, run_backend

def correctness_limits(timing: TimingConfig) -> Limits:
    """The correctness run gets what one timed run gets: `timing.timeout_s` and its memory."""
    return Limits(timeout_s=timing.timeout_s, memory_mb=timing.memory_limit_mb)


def untimed_failure(completion: Completion, task_id: str, level: int, backend: str, time_unit: str,
                    status: str, error: str) -> Measurement:
    """A generated program's level that was not timed (no code, or failed the correctness run)."""
    return failed_record(level_key(task_id, level), "generated", completion.sample, backend, status, time_unit, error)


def task_programs(
    task: OptTask,
    inputs: TaskInputs,
    completions: Iterable[Completion],
    check_limits: Limits,
    levels: Sequence[int] = TIMED_LEVELS,
) -> tuple[list[Program], list[tuple[Completion, str, str]]]:
    """Programs to time for one task, and the (completion, status, error) of the generated
    programs that will not be timed: no code, or a failed correctness run (sandboxed, untimed)."""
    programs = build_level_programs(task, task.slow_program, inputs, "slow", 0, levels)
    programs += build_level_programs(task, task.reference_program, inputs, "reference", 0, levels)
    untimed = []
    for completion in completions:
        if completion.status != "ok" or not completion.code:
            untimed.append((completion, "no_code", completion.error or "the answer holds no program that defines the entry point"))
            continue
        verdict, _ = run_program(build_correctness_program(task, completion.code, inputs, completion.sample), limits=check_limits)
        if not verdict.passed:
            untimed.append((completion, verdict.status, f"correctness tests (level 0, HumanEval+): {verdict.error}"))
            continue
        programs += build_level_programs(task, completion.code, inputs, "generated", completion.sample, levels)
    return programs, untimed


def measure_task(config: TimingConfig, check_limits: Limits, levels: Sequence[int],
                 item: tuple[OptTask, TaskInputs, list[Completion]]) -> TaskRun:
    """One task on whichever worker runs it: the correctness runs, then slow, reference and the
    generated programs that passed, at every level, in one backend call; then the untimed records."""
    task, inputs, completions = item
    programs, untimed = task_programs(task, inputs, completions, check_limits, levels)

    def add_untimed(measured: list[Measurement]) -> list[Measurement]:
        unit = measured[0].time_unit if measured else ""
        return measured + [untimed_failure(c, task.id, level, config.backend, unit, status, error)
                           for c, status, error in untimed for level in levels]

    return run_backend(config, programs, then=add_untimed)


def _reported_programs(task: OptTask, completions: Sequence[Completion], levels: Sequence[int]) -> list[Program]:
    """Stubs of the Measurements a task reports (for a task that failed on every try)."""
    groups = [("slow", 0), ("reference", 0), *(("generated", c.sample) for c in completions)]
    return [Program(task_id=level_key(task.id, level), role=role, source="", sample=sample)
            for role, sample in groups for level in levels]


def measure_tasks(
    tasks: Sequence[OptTask],
    load_inputs: Callable[[str], TaskInputs],
    completions: Sequence[Completion],
    backend,
    check_limits: Limits,
    levels: Sequence[int] = TIMED_LEVELS,
    executor: Executor | None = None,
) -> list[Measurement]:
    """Measurements for every task (slow, reference, generated), in task order. One task is one
    unit of work for `executor` (default: this process), its stored inputs sent along; `backend`
    gives the timing config, and its `on_run` gets every raw run, in task order."""
    by_task: dict[str, list[Completion]] = {}
    for completion in completions:
        by_task.setdefault(completion.task_id, []).append(completion)
    items = [(task, load_inputs(task.id), by_task.get(task.id, [])) for task in tasks]
    executor = executor or LocalExecutor()
    check_workers(executor, backend.name)
    results = executor.map(functools.partial(measure_task, backend.config, check_limits, tuple(levels)), items,
                           desc="measure_pie", unit="task",
                           tally=lambda run: {"failed": sum(1 for m in run.measurements if not m.passed)})
    unit = next((r.measurements[0].time_unit for r in results if isinstance(r, TaskRun) and r.measurements), "")
    expected = [_reported_programs(task, by_task.get(task.id, []), levels) for task in tasks]
    return collect(results, expected, backend.name, unit, backend.on_run)


class PerfreproProtocol:
    """pie.protocol perfrepro: `measure_tasks` under the `timing.backend` backend."""

    name = "perfrepro"

    def __init__(self, backend, check_limits: Limits):
        self.backend, self.check_limits = backend, check_limits
        self.backend_name = backend.name
        self.settings = dataclasses.asdict(backend.config)

    def measure(self, tasks: Sequence[OptTask], load_inputs: Callable[[str], TaskInputs],
                completions: Sequence[Completion], executor: Executor | None = None) -> list[Measurement]:
        return measure_tasks(tasks, load_inputs, completions, self.backend, self.check_limits, executor=executor)


def make_protocol(protocol: str, timing: TimingConfig, enamel=None, samples_dir=None, task_ids: Sequence[str] = (),
                  on_run=None):
    """The measurement protocol named by pie.protocol: `perfrepro` (the timing backend; raises when
    it is missing something) or `enamel` (reads its sample sets from `samples_dir` now)."""
    if protocol == "enamel":
        from perfrepro.optimization.enamel_protocol import EnamelProtocol

        return EnamelProtocol(enamel, samples_dir, task_ids)
    return PerfreproProtocol(make_backend(timing, on_run=on_run), correctness_limits(timing))


def check_task_dir_protocol(manifest: dict, protocol: str, where) -> None:
    """Refuse a task directory written for the other protocol (ENAMEL's tests are not ours)."""
    written = manifest.get("protocol", "perfrepro")
    if written != protocol:
        raise ValueError(f"{where}: its tests were made for pie.protocol {written}, not {protocol}; rerun pie_tasks")
