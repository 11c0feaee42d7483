"""Frozen records that cross module borders, and their JSONL round trip.

This module imports nothing of perfrepro: every other module may depend on it.
One record per line on disk; field names on disk are the dataclass field names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar


@dataclass(frozen=True)
class CorpusPair:
    """A problem statement and its performant solution (the retrieval corpus)."""

    id: str
    problem: str
    solution: str
    slow_solution: str | None
    language: str
    source: str


@dataclass(frozen=True)
class Task:
    """An efficiency-evaluation task: write `entry_point`, pass `test_code`.

    `imports` is the prelude every program of the task runs after (LeetCodeDataset's `prompt`);
    `test_code` defines `check(candidate)`; `examples` are the statement's example asserts that a
    prompt may show the model.
    """

    id: str
    statement: str
    starter_code: str
    canonical_solution: str
    test_code: str
    entry_point: str
    examples: str
    source: str
    imports: str = ""


@dataclass(frozen=True)
class OptTask:
    """A PIE-style optimization task: make `slow_program` faster without changing its answers.

    `input_generator` defines `generate_input(size, lid, cid)`; `levels` are its input sizes;
    `checker` defines `__check(input, answer, output)`.
    """

    id: str
    statement: str
    slow_program: str
    reference_program: str
    input_generator: str
    levels: tuple[int, ...]
    checker: str
    source: str
    entry_point: str = ""


@dataclass(frozen=True)
class Completion:
    """One model answer for one task (`sample` numbers the answers of a task for Best@k).

    Only what the model said and how it was asked: no wall-clock field (a request's latency lives
    in the LLM cache), so the same answers give the same bytes and DVC reruns nothing downstream."""

    task_id: str
    sample: int
    model: str
    status: str  # "ok" | "no_code" | "error"
    code: str | None
    response: str | None
    retrieved_ids: tuple[str, ...] = ()
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_hash: str = ""  # sha256 of the prompt messages


@dataclass(frozen=True)
class Measurement:
    """The timing of one program on its task's tests by one backend.

    `execution_time` is the median over repeats in `time_unit` ("ms" for wall clock,
    "instructions" for the deterministic backend, "sim_seconds" for gem5). `peak_memory_mb` is
    TMU (MB); `memory_usage` is MU, the memory-time integral in MB x `time_unit` (MB·s for wall
    clock). Fields are None when the run did not pass.
    """

    task_id: str
    role: str  # "canonical" | "completion" | "slow" | "reference" | "generated"
    backend: str
    status: str  # "ok" | "wrong_answer" | "timeout" | "memory" | "disk" | "crash" | "no_code"
    execution_time: float | None
    time_unit: str
    peak_memory_mb: float | None
    memory_usage: float | None
    sample: int = 0
    samples: tuple[float, ...] = ()
    error: str | None = None
    environment: str = ""  # what the numbers depend on (interpreter, valgrind, CPU): perfrepro.timing.fingerprint

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Program:
    """A program ready to measure: what the timing backends take.

    For Python, `source` is a module that defines `run_tests()`, which raises when the program
    gives a wrong answer; everything else in the module (imports, the solution, test inputs) is
    set-up that is not timed. `role` and `sample` are copied into the Measurement.
    """

    task_id: str
    role: str
    source: str
    sample: int = 0
    language: str = "python"


Record = TypeVar("Record")


@dataclass(frozen=True)
class SftRecord:
    """One supervised fine-tuning record, template-free: the templates render it (templates.py)."""

    id: str
    problem_id: str
    source: str
    split: str  # "train" | "val"
    slow: str  # truncated to max_code_chars
    fast: str
    score: int  # 1..10, the target's performance score
    score_basis: str  # "problem" | "dataset" | "released"
    truncated: bool  # slow or fast was cut at max_code_chars


@dataclass(frozen=True)
class EvalProgram:
    """A program training data must not copy: an evaluation task's slow or reference program (or,
    for self-play, a training program)."""

    task_id: str
    role: str  # "slow" | "reference"
    code: str


class RecordError(ValueError):
    """A JSONL line that does not map to its record; the message names file, line and field."""


def _tuple_fields(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    found = set()
    for name, hint in hints.items():
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if any(typing.get_origin(option) is tuple for option in options):
            found.add(name)
    return found


def record_from_dict(cls: type[Record], row: dict[str, Any], where: str = "") -> Record:
    """Build `cls` from a dict, naming `where` (file:line) and the field when it does not fit."""
    if not isinstance(row, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(row) - set(fields))
    if unknown:
        raise RecordError(f"{where}: unknown field {unknown[0]!r} for {cls.__name__}")
    missing = [
        name
        for name, f in fields.items()
        if name not in row
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecordError(f"{where}: field {missing[0]!r} is missing for {cls.__name__}")
    values = dict(row)
    for name in _tuple_fields(cls):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return cls(**values)


def record_to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Write records atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for record in records:
                row = record if isinstance(record, dict) else record_to_dict(record)
                out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def iter_jsonl(path: str | os.PathLike, cls: type[Record]) -> Iterator[Record]:
    path = Path(path)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{where}: not valid JSON ({exc.msg})") from None
            yield record_from_dict(cls, row, where)


def read_jsonl(path: str | os.PathLike, cls: type[Record]) -> list[Record]:
    return list(iter_jsonl(path, cls))
