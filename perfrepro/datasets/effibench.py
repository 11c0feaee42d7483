"""EffiBench (huangd1999/EffiBench; hub copy DONG19/EffiBench) -> Task.

Records carry `problem_idx`, `task_name`, `markdown_description`, `canonical_solution` (a
`class Solution` without imports), `test_case` (~100 lines `assert solution.method(...) == ...`)
and `small_test_cases` (the statement's examples, after `solution = Solution()`).

The tasks are mapped to the convention LeetCodeDataset uses, so one harness runs both:
`imports + solution + test_code`, then `check(<entry_point>)` with `entry_point =
Solution().method`. `test_code` is `def check(candidate):` with `solution = Solution()` followed by
the asserts, each `solution.method(` rewritten to `candidate(`.
"""

from __future__ import annotations

import os
import re
import textwrap

from perfrepro.records import Task

from .base import LEETCODE_PRELUDE, DatasetError, Row, check_python, field, read_source, reject_duplicates

SOURCE = "effibench"
LABEL = "EffiBench"
HUB_NAME = "DONG19/EffiBench"
LOCAL_HINT = "data.tasks: path/to/EffiBench.json (a JSON list or JSONL of EffiBench records) with data.tasks_source: effibench"

_CALL = re.compile(r"\bsolution\.(\w+)\(")
_INSTANCE = re.compile(r"^\s*solution\s*=\s*Solution\(\)\s*$")


def _method(row: Row, test_case: str) -> str:
    match = _CALL.search(test_case)
    if match is None:
        raise DatasetError(f"{LABEL} file {row.where}: field 'test_case' has no `solution.<method>(` call")
    return match.group(1)


def _assert_lines(text: str) -> list[str]:
    return [line for line in text.strip("\n").splitlines() if line.strip() and not _INSTANCE.match(line)]


def _starter(canonical: str, method: str) -> str:
    signature = re.search(rf"^[ \t]*def {re.escape(method)}\(.*?\)[^:\n]*:", canonical, re.MULTILINE | re.DOTALL)
    if signature is None:
        return f"class Solution:\n    def {method}(self, *args):\n        "
    return f"class Solution:\n{signature.group(0)}\n        "


def build_test_code(test_case: str, method: str) -> str:
    """`def check(candidate):` running EffiBench's asserts against `candidate`."""
    body = "\n".join(_CALL.sub(lambda m: "candidate(" if m.group(1) == method else m.group(0), line) for line in _assert_lines(test_case))
    return "def check(candidate):\n    solution = Solution()\n" + textwrap.indent(body, "    ") + "\n"


def task_from_row(row: Row) -> Task:
    idx = field(row, "problem_idx", LABEL, (int, str))
    statement = field(row, "markdown_description", LABEL)
    canonical = field(row, "canonical_solution", LABEL)
    test_case = field(row, "test_case", LABEL)
    small = field(row, "small_test_cases", LABEL)
    method = _method(row, test_case)
    if not re.search(rf"\bdef {re.escape(method)}\(", canonical):
        raise DatasetError(f"{LABEL} file {row.where}: field 'canonical_solution' does not define {method}()")
    test_code = build_test_code(test_case, method)
    check_python(test_code, row, "test_case", LABEL)
    examples = "\n".join(_CALL.sub(r"Solution().\1(", line.strip()) for line in _assert_lines(small))
    return Task(
        id=str(idx),
        statement=statement,
        starter_code=_starter(canonical, method),
        canonical_solution=canonical,
        test_code=test_code,
        entry_point=f"Solution().{method}",
        examples=examples,
        source=SOURCE,
        imports=LEETCODE_PRELUDE,
    )


def load_tasks(path: str | os.PathLike = HUB_NAME) -> list[Task]:
    """Tasks from a local .json/.jsonl(.gz)/.parquet file, or `hf://DONG19/EffiBench[@split]`."""
    rows = read_source(path, LABEL, LOCAL_HINT)
    tasks = [task_from_row(row) for row in rows]
    reject_duplicates(((task.id, row) for task, row in zip(tasks, rows)), LABEL)
    return tasks
