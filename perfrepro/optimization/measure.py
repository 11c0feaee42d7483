"""Measure a PIE-track run: per task, the slow program, the reference and every generated sample,
at each timed level, in one backend call (so the backend interleaves them over repeats)."""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping, Sequence

from tqdm import tqdm

from perfrepro.optimization.inputs import TaskInputs
from perfrepro.optimization.programs import TIMED_LEVELS, build_level_programs, level_key
from perfrepro.records import Completion, Measurement, OptTask, Program

ROLES = ("slow", "reference", "generated")
_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$")


def statement_imports(statement: str) -> str:
    """The top-level import lines of a HumanEval prompt (``from typing import List``), which a
    rewritten program may leave out."""
    return "".join(line + "\n" for line in statement.splitlines() if _IMPORT.match(line))


def task_programs(
    task: OptTask,
    inputs: TaskInputs,
    completions: Iterable[Completion],
    levels: Sequence[int] = TIMED_LEVELS,
) -> tuple[list[Program], list[tuple[Completion, int]]]:
    """Programs to time for one task, and the (completion, level) pairs that have no code."""
    programs = build_level_programs(task, task.slow_program, inputs, "slow", 0, levels)
    programs += build_level_programs(task, task.reference_program, inputs, "reference", 0, levels)
    missing = []
    for completion in completions:
        if completion.status != "ok" or not completion.code:
            missing += [(completion, level) for level in levels]
            continue
        candidate = statement_imports(task.statement) + completion.code
        programs += build_level_programs(task, candidate, inputs, "generated", completion.sample, levels)
    return programs, missing


def no_code_measurement(completion: Completion, task_id: str, level: int, backend: str, time_unit: str) -> Measurement:
    return Measurement(
        task_id=level_key(task_id, level),
        role="generated",
        backend=backend,
        status="no_code",
        execution_time=None,
        time_unit=time_unit,
        peak_memory_mb=None,
        memory_usage=None,
        sample=completion.sample,
        error=completion.error or "the answer holds no program that defines the entry point",
    )


def measure_tasks(
    tasks: Sequence[OptTask],
    load_inputs: Callable[[str], TaskInputs],
    completions: Sequence[Completion],
    backend,
    levels: Sequence[int] = TIMED_LEVELS,
) -> list[Measurement]:
    """Measurements for every task (slow, reference, generated), in task order."""
    by_task: dict[str, list[Completion]] = {}
    for completion in completions:
        by_task.setdefault(completion.task_id, []).append(completion)
    measurements: list[Measurement] = []
    failures = 0
    bar = tqdm(tasks, desc="measure_pie", unit="task")
    for task in bar:
        programs, missing = task_programs(task, load_inputs(task.id), by_task.get(task.id, []), levels)
        measured = backend.measure(programs)
        unit = measured[0].time_unit if measured else ""
        measured += [no_code_measurement(c, task.id, level, backend.name, unit) for c, level in missing]
        failures += sum(1 for m in measured if not m.passed)
        measurements += measured
        bar.set_postfix(programs=len(measurements), failed=failures)
    return measurements
