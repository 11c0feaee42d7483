"""ENAMEL (q-rz/enamel, Apache-2.0) -> OptTask.

`enamel.csv` holds one row per HumanEval task: `task_id`, `prompt`, `input_generator`
(`def generate_input(size, lid, cid)`), `input_levels` (4 sizes), `reference_solution` (a body),
`checker` (`def __check(input, answer, output)`), `entry_point`. `samples/humaneval-canonical.json`
and `samples/enamel-references.json` are lists of 164 one-program lists: the HumanEval canonical
program (the slow side) and the ENAMEL reference program (the fast side).

Only the 142 tasks the benchmark scores are loaded: upstream `enam/__init__.py` leaves out 22.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from perfrepro.records import OptTask

from .base import DatasetError, Row, check_python, field, read_rows, reject_duplicates

SOURCE = "enamel"
LABEL = "ENAMEL"
# 0-based rows of enamel.csv that ENAMEL itself does not score (upstream enam/__init__.py).
EXCLUDED = frozenset({2, 23, 41, 45, 53, 60, 71, 92, 97, 99, 102, 123, 124, 135, 137, 138, 144, 148, 156, 157, 159, 160})
N_TASKS = 164
SLOW_FILE = "samples/humaneval-canonical.json"
REFERENCE_FILE = "samples/enamel-references.json"


def _programs(path: Path, expected: int) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{LABEL} file {path}: not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{LABEL} file {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list) or len(data) != expected:
        size = len(data) if isinstance(data, list) else type(data).__name__
        raise DatasetError(f"{LABEL} file {path}: expected a list of {expected} program lists, got {size}")
    programs = []
    for number, item in enumerate(data, start=1):
        if not (isinstance(item, list) and item and isinstance(item[0], str) and item[0].strip()):
            raise DatasetError(f"{LABEL} file {path}, row {number}: expected a list holding one program")
        programs.append(item[0])
    return programs


def _levels(row: Row) -> tuple[int, ...]:
    text = field(row, "input_levels", LABEL)
    try:
        levels = tuple(int(part) for part in text.split())
    except ValueError:
        levels = ()
    if len(levels) != 4 or any(level <= 0 for level in levels):
        raise DatasetError(f"{LABEL} file {row.where}: field 'input_levels' should be 4 positive sizes, got {text!r}")
    return levels


def load_opt_tasks(enamel_dir: str | os.PathLike, include_excluded: bool = False) -> list[OptTask]:
    """The 142 scored ENAMEL tasks (all 164 with `include_excluded`), in HumanEval order."""
    root = Path(enamel_dir)
    rows = read_rows(root / "enamel.csv", LABEL)
    if len(rows) != N_TASKS:
        raise DatasetError(f"{LABEL} file {root / 'enamel.csv'}: expected {N_TASKS} rows, got {len(rows)}")
    reject_duplicates(((field(row, "task_id", LABEL), row) for row in rows), LABEL)
    slow = _programs(root / SLOW_FILE, len(rows))
    reference = _programs(root / REFERENCE_FILE, len(rows))
    tasks = []
    for index, row in enumerate(rows):
        if index in EXCLUDED and not include_excluded:
            continue
        entry_point = field(row, "entry_point", LABEL)
        generator = field(row, "input_generator", LABEL)
        checker = field(row, "checker", LABEL)
        check_python(generator, row, "input_generator", LABEL)
        check_python(checker, row, "checker", LABEL)
        if f"def {entry_point}(" not in slow[index] or f"def {entry_point}(" not in reference[index]:
            raise DatasetError(
                f"{LABEL} file {row.where}: field 'entry_point' {entry_point!r} is not defined by the "
                f"programs at row {index + 1} of {SLOW_FILE} and {REFERENCE_FILE}"
            )
        tasks.append(
            OptTask(
                id=row.data["task_id"],
                statement=field(row, "prompt", LABEL),
                slow_program=slow[index],
                reference_program=reference[index],
                input_generator=generator,
                levels=_levels(row),
                checker=checker,
                source=SOURCE,
                entry_point=entry_point,
            )
        )
    return tasks
