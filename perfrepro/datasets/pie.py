"""PIE (madaan/pie-perf `data/sample/py_reference.jsonl`) -> CorpusPair slow -> fast examples.

Each line is a CodeNet submission pair of one user on one problem: `input` (the slow program),
`target` (the fast one), `problem_id`, `submission_id_v0/v1`, `measured_runtime_v0/v1` (seconds,
re-measured by PIE), `key` (= [submission_id_v0, submission_id_v1]) and more.
"""

from __future__ import annotations

import os

from perfrepro.records import CorpusPair

from .base import DatasetError, Row, field, read_rows, reject_duplicates

SOURCE = "pie"
LABEL = "PIE"


def pair_id(row: Row) -> str:
    problem = field(row, "problem_id", LABEL)
    return f"{problem}_{field(row, 'submission_id_v0', LABEL)}_{field(row, 'submission_id_v1', LABEL)}"


def _rows(path: str | os.PathLike) -> list[Row]:
    rows = read_rows(path, LABEL)
    reject_duplicates(((pair_id(row), row) for row in rows), LABEL)
    return rows


def load_pairs(path: str | os.PathLike) -> list[CorpusPair]:
    """Slow -> fast pairs: `problem` is the CodeNet problem id (PIE ships no statements here)."""
    pairs = []
    for row in _rows(path):
        language = row.data.get("language") or "python"
        pairs.append(
            CorpusPair(
                id=pair_id(row),
                problem=row.data["problem_id"],
                solution=field(row, "target", LABEL),
                slow_solution=field(row, "input", LABEL),
                language=str(language).lower(),
                source=SOURCE,
            )
        )
    return pairs


def load_runtimes(path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """pair id -> (measured_runtime_v0, measured_runtime_v1) in seconds (slow, fast)."""
    runtimes = {}
    for row in _rows(path):
        slow = field(row, "measured_runtime_v0", LABEL, (int, float))
        fast = field(row, "measured_runtime_v1", LABEL, (int, float))
        if slow <= 0 or fast <= 0:
            raise DatasetError(f"{LABEL} file {row.where}: measured runtimes should be positive, got {slow}, {fast}")
        runtimes[pair_id(row)] = (float(slow), float(fast))
    return runtimes
