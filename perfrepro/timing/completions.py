"""Measure completions beside their task's canonical solution, in one backend run.

For each task, the canonical solution and the task's completions are built into harness Programs
and handed to the backend together, so the wall backend interleaves them A B A B over repeats.
A completion without code (generation status "no_code" or "error") gets a "no_code" Measurement
and is never run. Optional reference completions (role "reference", e.g. the responses a dataset
ships) join the same run, beside the same canonical measurement.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Iterable, Sequence

from perfrepro.config import TimingConfig
from perfrepro.execution.harness import build_program, canonical_program
from perfrepro.dispatch import Executor, LocalExecutor
from perfrepro.records import Completion, Measurement, Program, Task
from perfrepro.timing.base import TimingBackend, failed
from perfrepro.timing.remote import TaskRun, check_workers, collect, run_backend

log = logging.getLogger(__name__)


REFERENCE_ROLE = "reference"


def completion_programs(task: Task, completions: Iterable[Completion],
                        role: str = "completion") -> tuple[list[Program], list[Measurement]]:
    """Programs for the completions that have code; no_code Measurements for the rest."""
    programs, missing = [], []
    for completion in sorted(completions, key=lambda c: c.sample):
        if completion.status == "ok" and completion.code and completion.code.strip():
            programs.append(build_program(task, completion.code, role=role, sample=completion.sample))
        else:
            program = Program(task_id=task.id, role=role, source="", sample=completion.sample)
            why = completion.error or f"generation status {completion.status!r}, no code"
            missing.append(failed(program, "none", "no_code", "", why))
    return programs, missing


def measure_task(config: TimingConfig, item: tuple[Task, list[Completion], list[Completion]]) -> TaskRun:
    """One task on whichever worker runs it: canonical, completions and references in one backend
    call (so `wall` interleaves them A B A B there), then the no_code records of the rest."""
    task, completions, references = item
    programs, missing = completion_programs(task, completions)
    reference_programs, reference_missing = completion_programs(task, references, role=REFERENCE_ROLE)
    missing += reference_missing

    def add_missing(measured: list[Measurement]) -> list[Measurement]:
        return measured + [dataclasses.replace(m, backend=measured[0].backend, time_unit=measured[0].time_unit)
                           for m in missing]

    return run_backend(config, [canonical_program(task), *programs, *reference_programs], then=add_missing)


def _reported_programs(task: Task, completions: list[Completion], references: list[Completion]) -> list[Program]:
    """Stubs of what `measure_task` reports for a task, in its order (for a task that failed everywhere)."""
    def split(group: list[Completion], role: str) -> tuple[list[Program], list[Program]]:
        with_code, without = [], []
        for c in sorted(group, key=lambda c: c.sample):
            has_code = c.status == "ok" and c.code and c.code.strip()
            (with_code if has_code else without).append(Program(task_id=task.id, role=role, source="", sample=c.sample))
        return with_code, without

    coded, uncoded = split(completions, "completion")
    ref_coded, ref_uncoded = split(references, REFERENCE_ROLE)
    return [Program(task_id=task.id, role="canonical", source=""), *coded, *ref_coded, *uncoded, *ref_uncoded]


def measure_tasks(
    tasks: Sequence[Task],
    completions: Iterable[Completion],
    backend: TimingBackend,
    progress: bool = True,
    references: Iterable[Completion] = (),
    executor: Executor | None = None,
) -> list[Measurement]:
    """Canonical + completion (+ reference) Measurements for every task, in task order (canonical first).

    A task with no completion at all gets a no_code completion Measurement (a failure); a task
    without a reference completion gets no reference Measurement. One task is one unit of work for
    `executor` (default: this process); `backend` gives the timing config, and its `on_run` gets
    every raw run, in task order, wherever the task ran.
    """
    by_task: dict[str, list[Completion]] = {}
    for completion in completions:
        by_task.setdefault(completion.task_id, []).append(completion)
    references_by_task: dict[str, list[Completion]] = {}
    for reference in references:
        references_by_task.setdefault(reference.task_id, []).append(reference)
    unknown = sorted(set(by_task) - {t.id for t in tasks})
    if unknown:
        log.warning("%d completions name tasks not in the task file (e.g. %s); ignored", len(unknown), unknown[0])
    items = []
    for task in tasks:
        task_completions = by_task.get(task.id) or [
            Completion(task_id=task.id, sample=0, model="", status="no_code", code=None, response=None,
                       error="no completion for this task")
        ]
        items.append((task, task_completions, references_by_task.get(task.id, [])))
    executor = executor or LocalExecutor(progress=progress)
    check_workers(executor, backend.name)
    results = executor.map(functools.partial(measure_task, backend.config), items, desc=f"measure ({backend.name})",
                           unit="task", tally=lambda run: {"failed": sum(
                               1 for m in run.measurements if m.role == "completion" and not m.passed)})
    time_unit = next((r.measurements[0].time_unit for r in results if isinstance(r, TaskRun)), "")
    out = collect(results, [_reported_programs(*item) for item in items], backend.name, time_unit, backend.on_run)
    for m in out:
        if m.role == "canonical" and not m.passed:
            log.warning("task %s: the canonical solution failed (%s: %s)", m.task_id, m.status, m.error)
    return out


def as_raw_row(program: Program, repeat: int, details: dict[str, Any]) -> dict[str, Any]:
    """One line of the raw-samples file: which program, which repeat, what the backend saw."""
    return {"task_id": program.task_id, "role": program.role, "sample": program.sample, "repeat": repeat, **details}
