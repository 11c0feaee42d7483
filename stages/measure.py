"""Stage `measure`: tasks + completions -> data/timings/ (params: seed, timing).

Writes measurements.jsonl (one Measurement per canonical solution and per completion, the
summary), raw.jsonl (per task and per repeat, what the backend saw: per-repeat times, RSS or
valgrind numbers) and environment.json (backend, sandbox isolation, interpreter). Canonical
solutions and completions are measured in the same run, interleaved.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.execution import sandbox
from perfrepro.io import write_json
from perfrepro.records import Completion, RecordError, Task, read_jsonl, write_jsonl
from perfrepro.timing.base import make_backend
from perfrepro.timing.measure import as_raw_row, measure_tasks

log = logging.getLogger("measure")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tasks", type=Path, default=Path("data/prepared/tasks.jsonl"))
    parser.add_argument("--completions", type=Path, default=Path("data/completions/completions.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("data/timings"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
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
        backend = make_backend(params.timing, on_run=lambda p, r, d: raw_rows.append(as_raw_row(p, r, d)))
        interpreter = sandbox.sandbox_python()
    except (ConfigError, RecordError, ValueError, RuntimeError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    measurements = measure_tasks(tasks, completions, backend)
    write_jsonl(args.out / "measurements.jsonl", measurements)
    write_jsonl(args.out / "raw.jsonl", raw_rows)
    write_json(args.out / "environment.json", {
        "backend": params.timing.backend,
        "timing": params.timing.__dict__,
        "sandbox_isolation": isolation.name,
        "sandbox_note": isolation.note,
        "interpreter": interpreter,
        "platform": platform.platform(),
    })
    passed = sum(1 for m in measurements if m.role == "completion" and m.passed)
    log.info("%d tasks, %d measurements, %d completions passed -> %s", len(tasks), len(measurements), passed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
