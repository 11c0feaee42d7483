"""Stage `measure`: tasks + completions -> data/timings/ (params: seed, timing, llm.backend,
data.tasks, data.tasks_source).

Writes measurements.jsonl (one Measurement per canonical solution and per completion, the
summary), raw.jsonl (per task and per repeat, what the backend saw: per-repeat times, RSS or
valgrind numbers) and environment.json (backend, sandbox isolation, interpreter). Canonical
solutions and completions are measured in the same run, interleaved.

Reference row: on LeetCodeDataset tasks, the solutions the dataset ships in its `response` field
(what `llm.backend: recorded` replays) are measured in the same run as role "reference", so the
report has a filled row next to the live model's even when the live model passes nothing. Skipped
when the live backend is `recorded` itself (it would measure the same code twice).
"""

from __future__ import annotations

import logging
import platform
import sys

from perfrepro.config import load_params
from perfrepro.execution import sandbox
from perfrepro.dispatch import make_executor
from perfrepro.generation.recorded import REFERENCE_SOURCE, reference_completions, reference_summary
from perfrepro.io import atomic_outputs, write_json
from perfrepro.records import Completion, Task, read_jsonl, write_jsonl
from perfrepro.stage import stage
from perfrepro.timing.base import make_backend
from perfrepro.timing.completions import as_raw_row, measure_tasks

log = logging.getLogger("measure")


@stage("measure", "tasks", "completions", "out", also=(ValueError, RuntimeError))
def main(args) -> int:
    isolation = sandbox.require_isolation()  # before any input is read: refuse at once
    raw_rows: list[dict] = []
    params = load_params(args.params)
    tasks = read_jsonl(args.tasks, Task)
    completions = read_jsonl(args.completions, Completion)
    references, no_reference = reference_completions(tasks, params.llm.backend, params.data.tasks_source,
                                                     params.data.tasks)
    backend = make_backend(params.timing, on_run=lambda p, r, d: raw_rows.append(as_raw_row(p, r, d)))
    interpreter = sandbox.sandbox_python()
    if no_reference:
        log.info("no reference row: %s", no_reference)
    # executor.* says where the tasks run, never what they compute (no dvc.yaml stage tracks it)
    with make_executor(params.executor) as executor:
        measurements = measure_tasks(tasks, completions, backend, references=references, executor=executor)
    with atomic_outputs(args.out) as (out,):  # all three files or none
        write_jsonl(out / "measurements.jsonl", measurements)
        write_jsonl(out / "raw.jsonl", raw_rows)
        write_json(out / "environment.json", {  # what the numbers were measured with
            "backend": params.timing.backend, "timing": params.timing.__dict__, "sandbox_isolation": isolation.name,
            "sandbox_note": isolation.note, "interpreter": interpreter, "platform": platform.platform(),
            "reference": reference_summary(references, no_reference, params.data.tasks),
        })
    passed = sum(1 for m in measurements if m.role == "completion" and m.passed)
    reference_passed = sum(1 for m in measurements if m.role == "reference" and m.passed)
    log.info("%d tasks, %d measurements, %d completions passed (reference %s: %d) -> %s", len(tasks),
             len(measurements), passed, REFERENCE_SOURCE, reference_passed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
