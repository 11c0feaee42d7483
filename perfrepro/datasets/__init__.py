"""Sources -> canonical records (CorpusPair, Task, OptTask), one module per source.

Callers pick a source by the params value (`data.corpus_source`, `data.tasks_source`) through the
two factories below and never branch on the name themselves. A new source is one module plus one
line in a table. Every loader raises DatasetError naming the file, the line/row and the field.
"""

from __future__ import annotations

import os
from typing import Callable

from perfrepro.records import CorpusPair, Task

from . import effibench, enamel, hpc_instruct, leetcodedataset, pie
from .base import DatasetError
from .enamel import load_opt_tasks
from .pie import load_pairs as load_pie_pairs
from .split import select_subset, split_by_problem

CORPUS_SOURCES: dict[str, Callable[[str | os.PathLike, str], list[CorpusPair]]] = {
    "leetcodedataset": leetcodedataset.load_corpus,
    "hpc_instruct": hpc_instruct.load_corpus,
}

TASK_SOURCES: dict[str, Callable[[str | os.PathLike], list[Task]]] = {
    "leetcodedataset": leetcodedataset.load_tasks,
    "effibench": effibench.load_tasks,
}


def load_corpus_source(name: str, path: str | os.PathLike, language: str = "python") -> list[CorpusPair]:
    """The retrieval corpus from source `name` (leetcodedataset | hpc_instruct)."""
    if name not in CORPUS_SOURCES:
        raise DatasetError(f"data.corpus_source: unknown source {name!r} (expected one of {', '.join(CORPUS_SOURCES)})")
    return CORPUS_SOURCES[name](path, language)


def load_task_source(name: str, path: str | os.PathLike) -> list[Task]:
    """The efficiency tasks from source `name` (leetcodedataset | effibench)."""
    if name not in TASK_SOURCES:
        raise DatasetError(f"data.tasks_source: unknown source {name!r} (expected one of {', '.join(TASK_SOURCES)})")
    return TASK_SOURCES[name](path)


__all__ = [
    "CORPUS_SOURCES",
    "TASK_SOURCES",
    "DatasetError",
    "load_corpus_source",
    "load_task_source",
    "load_opt_tasks",
    "load_pie_pairs",
    "select_subset",
    "split_by_problem",
]
