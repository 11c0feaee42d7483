"""LeetCodeDataset (newfacade/LeetCodeDataset, human-eval format) -> CorpusPair / Task.

Two schema versions are read alike:
- v0.2.0 / v0.3.0: `meta` = {question_id, difficulty, question_title (the full statement), lang_code}.
- v0.3.1: flat `problem_description`, `starter_code`, `question_id`, `difficulty`, `tags`, ...
Both share `task_id`, `prompt` (imports and helper classes), `completion` (the canonical
`class Solution`), `entry_point` (`Solution().method`), `test` (`def check(candidate): assert ...`),
`input_output`, `query` and `response` (an LLM answer, not the canonical solution).
"""

from __future__ import annotations

import os
import re

from perfrepro.records import CorpusPair, Task

from .base import DatasetError, Row, check_python, field, read_rows, reject_duplicates

SOURCE = "leetcodedataset"
LABEL = "LeetCodeDataset"
EXAMPLE_FALLBACK = 3  # asserts shown when the statement's examples cannot be matched to tests


def _rows(path: str | os.PathLike) -> list[Row]:
    rows = read_rows(path, LABEL)
    reject_duplicates(((field(row, "task_id", LABEL), row) for row in rows), LABEL)
    return rows


def _statement_and_starter(row: Row) -> tuple[str, str]:
    if "meta" in row.data:  # v0.2.0
        meta = field(row, "meta", LABEL, dict)
        meta_row = Row(meta, row.number, row.origin, row.unit)
        try:
            return field(meta_row, "question_title", LABEL), field(meta_row, "lang_code", LABEL)
        except DatasetError as exc:
            raise DatasetError(str(exc).replace("field '", "field 'meta.", 1)) from None
    if "problem_description" in row.data:  # v0.3.1
        return field(row, "problem_description", LABEL), field(row, "starter_code", LABEL)
    raise DatasetError(
        f"{LABEL} file {row.where}: field 'meta' (v0.2.0) or 'problem_description' (v0.3.1) is missing"
    )


def load_corpus(path: str | os.PathLike, language: str = "python") -> list[CorpusPair]:
    """Statement -> canonical solution pairs (`completion`); LeetCodeDataset is Python only."""
    if language.lower() != "python":
        raise DatasetError(f"{LABEL} file {path}: holds Python solutions only; got language {language!r}")
    pairs = []
    for row in _rows(path):
        statement, _starter = _statement_and_starter(row)
        pairs.append(
            CorpusPair(
                id=row.data["task_id"],
                problem=statement,
                solution=field(row, "completion", LABEL),
                slow_solution=None,
                language="python",
                source=SOURCE,
            )
        )
    return pairs


def load_tasks(path: str | os.PathLike) -> list[Task]:
    """Efficiency tasks: run `imports + solution + test_code`, then `check(<entry_point>)`."""
    tasks = []
    for row in _rows(path):
        statement, starter = _statement_and_starter(row)
        test_code = field(row, "test", LABEL)
        if "def check(candidate)" not in test_code:
            raise DatasetError(f"{LABEL} file {row.where}: field 'test' does not define check(candidate)")
        check_python(test_code, row, "test", LABEL)
        entry_point = field(row, "entry_point", LABEL)
        tasks.append(
            Task(
                id=row.data["task_id"],
                statement=statement,
                starter_code=starter,
                canonical_solution=field(row, "completion", LABEL),
                test_code=test_code,
                entry_point=entry_point,
                examples=statement_examples(statement, test_code, entry_point),
                source=SOURCE,
                imports=field(row, "prompt", LABEL),
            )
        )
    return tasks


def load_recorded_responses(path: str | os.PathLike) -> dict[str, str]:
    """task_id -> the LLM `response` the dataset ships (the generation track's `recorded` backend)."""
    responses = {}
    for row in _rows(path):
        responses[row.data["task_id"]] = field(row, "response", LABEL, allow_empty=True)  # some are ""
    return responses


_EXAMPLE = re.compile(r"Input:\s*(.+?)\s*\n\s*Output:", re.DOTALL)
_SPACE = re.compile(r"\s+")


def statement_examples(statement: str, test_code: str, entry_point: str) -> str:
    """The asserts of `test_code` whose inputs are the statement's examples, as runnable text.

    `candidate(` is spelled as the entry point (`Solution().twoSum(`) so a prompt can show them.
    When no example matches an assert, the first few asserts stand in.
    """
    asserts = [line.strip() for line in test_code.splitlines() if line.strip().startswith("assert candidate(")]
    wanted = [_SPACE.sub("", text) for text in _EXAMPLE.findall(statement)]
    chosen = []
    for example in wanted:
        prefix = f"assertcandidate({example})=="
        match = next((line for line in asserts if _SPACE.sub("", line).startswith(prefix)), None)
        if match is not None and match not in chosen:
            chosen.append(match)
    if not chosen:
        chosen = asserts[:EXAMPLE_FALLBACK]
    return "\n".join(line.replace("candidate(", f"{entry_point}(", 1) for line in chosen)
