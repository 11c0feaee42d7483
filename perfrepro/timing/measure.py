"""Measure completions beside their task's canonical solution, in one backend run.

For each task, the canonical solution and the task's completions are built into harness Programs
and handed to the backend together, so the wall backend interleaves them A B A B over repeats.
A completion without code (generation status "no_code" or "error") gets a "no_code" Measurement
and is never run.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable, Sequence

from tqdm import tqdm

from perfrepro.execution.harness import build_program, canonical_program
from perfrepro.records import Completion, Measurement, Program, Task
from perfrepro.timing.base import TimingBackend, failed

log = logging.getLogger(__name__)


def completion_programs(task: Task, completions: Iterable[Completion]) -> tuple[list[Program], list[Measurement]]:
    """Programs for the completions that have code; no_code Measurements for the rest."""
    programs, missing = [], []
    for completion in sorted(completions, key=lambda c: c.sample):
        if completion.status == "ok" and completion.code and completion.code.strip():
            programs.append(build_program(task, completion.code, role="completion", sample=completion.sample))
        else:
            program = Program(task_id=task.id, role="completion", source="", sample=completion.sample)
            why = completion.error or f"generation status {completion.status!r}, no code"
            missing.append(failed(program, "none", "no_code", "", why))
    return programs, missing


def measure_tasks(
    tasks: Sequence[Task],
    completions: Iterable[Completion],
    backend: TimingBackend,
    progress: bool = True,
) -> list[Measurement]:
    """Canonical + completion Measurements for every task, in task order (canonical first).

    A task with no completion at all gets a no_code completion Measurement (a failure).
    """
    by_task: dict[str, list[Completion]] = {}
    for completion in completions:
        by_task.setdefault(completion.task_id, []).append(completion)
    unknown = sorted(set(by_task) - {t.id for t in tasks})
    if unknown:
        log.warning("%d completions name tasks not in the task file (e.g. %s); ignored", len(unknown), unknown[0])
    out: list[Measurement] = []
    failures = 0
    bar = tqdm(tasks, unit="task", desc=f"measure ({backend.name})", disable=not progress, file=None)
    for task in bar:
        task_completions = by_task.get(task.id) or [
            Completion(task_id=task.id, sample=0, model="", status="no_code", code=None, response=None,
                       error="no completion for this task")
        ]
        programs, missing = completion_programs(task, task_completions)
        measured = backend.measure([canonical_program(task), *programs])
        for m in missing:
            measured.append(dataclasses.replace(m, backend=backend.name, time_unit=measured[0].time_unit))
        if not measured[0].passed:
            log.warning("task %s: the canonical solution failed (%s: %s)", task.id, measured[0].status, measured[0].error)
        failures += sum(1 for m in measured[1:] if not m.passed)
        out.extend(measured)
        bar.set_postfix(failed=failures)
    return out


def as_raw_row(program: Program, repeat: int, details: dict[str, Any]) -> dict[str, Any]:
    """One line of the raw-samples file: which program, which repeat, what the backend saw."""
    return {"task_id": program.task_id, "role": program.role, "sample": program.sample, "repeat": repeat, **details}
