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

import argparse
import dataclasses
import logging
import platform
import sys
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.execution import sandbox
from perfrepro.dispatch import ExecutorError, make_executor
from perfrepro.io import atomic_outputs, write_json
from perfrepro.logs import setup_logging
from perfrepro.records import Completion, RecordError, Task, read_jsonl, write_jsonl
from perfrepro.timing.base import make_backend
from perfrepro.timing.completions import as_raw_row, measure_tasks

REFERENCE_SOURCE = "leetcodedataset-response"  # where the reference code came from (as perfrepro.report labels it)

log = logging.getLogger("measure")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tasks", type=Path, default=Path("data/prepared/tasks.jsonl"))
    parser.add_argument("--completions", type=Path, default=Path("data/completions/completions.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("data/timings"))
    return parser.parse_args(argv)


def reference_completions(params, tasks: list[Task]) -> tuple[list[Completion], str | None]:
    """The dataset's recorded responses as reference completions, and why there are none."""
    if params.llm.backend == "recorded":
        return [], "llm.backend is recorded: the live row already holds these responses"
    if params.data.tasks_source != "leetcodedataset":
        return [], f"data.tasks_source is {params.data.tasks_source}: no recorded responses"
    from perfrepro.datasets.leetcodedataset import load_recorded_responses
    from perfrepro.generation.backends import RecordedBackend
    from perfrepro.generation.generate import generate_completions

    backend = RecordedBackend(load_recorded_responses(params.data.tasks), source=params.data.tasks)
    completions = generate_completions(tasks, backend)  # the recorded backend's own extraction
    return [dataclasses.replace(c, model=REFERENCE_SOURCE) for c in completions], None


def main(argv=None) -> int:
    setup_logging("measure")
    args = parse_args(argv)
    try:
        isolation = sandbox.require_isolation()  # before any input is read: refuse at once
    except sandbox.SandboxUnavailable as exc:
        log.error("%s", exc)
        return 1
    raw_rows: list[dict] = []
    try:
        params = load_params(args.params)
        tasks = read_jsonl(args.tasks, Task)
        completions = read_jsonl(args.completions, Completion)
        references, no_reference = reference_completions(params, tasks)
        backend = make_backend(params.timing, on_run=lambda p, r, d: raw_rows.append(as_raw_row(p, r, d)))
        interpreter = sandbox.sandbox_python()
    except (ConfigError, RecordError, ValueError, RuntimeError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    if no_reference:
        log.info("no reference row: %s", no_reference)
    try:  # executor.* says where the tasks run, never what they compute (no dvc.yaml stage tracks it)
        with make_executor(params.executor) as executor:
            measurements = measure_tasks(tasks, completions, backend, references=references, executor=executor)
    except (ExecutorError, RuntimeError) as exc:  # no scheduler, no sbatch, mixed worker environments
        log.error("%s", exc)
        return 1
    with atomic_outputs(args.out) as (out,):  # all three files or none
        write_jsonl(out / "measurements.jsonl", measurements)
        write_jsonl(out / "raw.jsonl", raw_rows)
        write_environment(out / "environment.json", params, isolation, interpreter, references, no_reference)
    passed = sum(1 for m in measurements if m.role == "completion" and m.passed)
    reference_passed = sum(1 for m in measurements if m.role == "reference" and m.passed)
    log.info("%d tasks, %d measurements, %d completions passed (reference %s: %d) -> %s", len(tasks),
             len(measurements), passed, REFERENCE_SOURCE, reference_passed, args.out)
    return 0


def write_environment(path, params, isolation, interpreter, references, no_reference) -> None:
    """environment.json: what the numbers were measured with (backend, sandbox, interpreter, reference)."""
    write_json(path, {
        "backend": params.timing.backend,
        "timing": params.timing.__dict__,
        "sandbox_isolation": isolation.name,
        "sandbox_note": isolation.note,
        "interpreter": interpreter,
        "platform": platform.platform(),
        "reference": {"source": REFERENCE_SOURCE, "file": params.data.tasks, "completions": len(references),
                      "with_code": sum(1 for c in references if c.status == "ok")} if references
        else {"source": None, "why_none": no_reference},
    })


if __name__ == "__main__":
    sys.exit(main())
