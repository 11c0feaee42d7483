"""The PIE track's task directory (`data/pie/tasks`): the task subset and its stored tests.

Layout:
  tasks.jsonl        the kept OptTask records, in HumanEval order
  inputs/<slug>.pkl  each kept task's TaskInputs (see perfrepro.optimization.inputs)
  manifest.json      seed, tests_per_level, plus_cap, every selected id, per-task counts and
                     sha256 of the pickles, and the skipped tasks with the reason
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from perfrepro.io import read_json, write_json
from perfrepro.dispatch import Executor, LocalExecutor, TaskFailure
from perfrepro.optimization.inputs import TaskInputs, generate_inputs_remote, select_plus_inputs
from perfrepro.records import OptTask, read_jsonl, write_jsonl

log = logging.getLogger(__name__)

# HumanEval+ inputs per task (correctness only; the release has up to 1,000): all of them by default.
# They go into one untimed run per generated program, never into the timed ones.
PLUS_CAP: int | None = None


def task_slug(task_id: str) -> str:
    """A file-name-safe id: ``HumanEval/12`` -> ``HumanEval_12``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", task_id)


def load_plus_inputs(path: str | os.PathLike) -> dict[str, list]:
    """task_id -> HumanEval+ ``plus_input`` (lists of argument lists) from HumanEvalPlus.jsonl.gz."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    found: dict[str, list] = {}
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                found[row["task_id"]] = list(row.get("plus_input") or [])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"HumanEval+ file {path}, line {number}: expected task_id and plus_input ({exc})") from None
    return found


@dataclass(frozen=True)
class PieTaskDir:
    """Read access to a written task directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def tasks(self) -> list[OptTask]:
        return read_jsonl(self.root / "tasks.jsonl", OptTask)

    @property
    def manifest(self) -> dict[str, Any]:
        return read_json(self.root / "manifest.json")

    def inputs_path(self, task_id: str) -> Path:
        return self.root / "inputs" / f"{task_slug(task_id)}.pkl"

    def inputs(self, task_id: str) -> TaskInputs:
        return TaskInputs.load(self.inputs_path(task_id))


def write_pie_tasks(
    tasks: Sequence[OptTask],
    out_dir: str | os.PathLike,
    seed: int,
    tests_per_level: int,
    plus_inputs: Mapping[str, Sequence[Any]] | None = None,
    plus_cap: int | None = PLUS_CAP,
    timeout_s: float = 900.0,
    call_timeout_s: float = 60.0,
    executor: Executor | None = None,
    enamel: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate every task's tests into `out_dir`; tasks whose generation fails are skipped and
    listed with the reason. Returns the manifest (also written to manifest.json). One task is one
    unit of work for `executor` (default: this process); the pickles are written here.

    With `enamel` ({"seed", "tests_per_level"}: pie.protocol enamel), the tests are ENAMEL's own
    (perfrepro.optimization.enamel_inputs) and no HumanEval+ input is added, as in ENAMEL."""
    if tests_per_level < 1:
        raise ValueError(f"pie.tests_per_level: expected >= 1, got {tests_per_level}")
    out = Path(out_dir)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    plus_inputs = {} if enamel else (plus_inputs or {})
    kept, summaries, skipped = [], [], []
    chosen = [select_plus_inputs(plus_inputs.get(task.id, []), plus_cap, seed, task.id) for task in tasks]
    items = [(task, [p for _, p in picked]) for task, picked in zip(tasks, chosen)]
    executor = executor or LocalExecutor()
    results = executor.map(functools.partial(generate_inputs_remote, seed, tests_per_level, timeout_s, call_timeout_s,
                                             enamel=enamel),
                           items, desc="pie_tasks", unit="task",
                           tally=lambda result: {"skipped": int(isinstance(result, str))})
    for task, picked, result in zip(tasks, chosen, results):  # task order, wherever each ran
        if isinstance(result, TaskFailure):
            result = f"input generation failed on every try ({result.tries}): {result.reason}"
        if isinstance(result, str):
            log.warning("skipping %s: %s", task.id, result)
            skipped.append({"task_id": task.id, "reason": result})
            continue
        summary, data = result
        path = out / "inputs" / f"{task_slug(task.id)}.pkl"
        path.write_bytes(data)
        summary["plus_indices"] = [i for i, _ in picked]
        kept.append(task)
        summaries.append(summary)
    write_jsonl(out / "tasks.jsonl", kept)
    manifest = {
        "protocol": "enamel" if enamel else "perfrepro",
        "enamel": dict(enamel) if enamel else None,
        "seed": seed,
        "tests_per_level": tests_per_level,
        "plus_cap": plus_cap,
        "selected": [t.id for t in tasks],
        "kept": summaries,
        "skipped": skipped,
    }
    write_json(out / "manifest.json", manifest)
    return manifest
