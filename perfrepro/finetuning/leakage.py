"""Leakage between training and evaluation programs: a training program that shares a problem id
with an evaluation task, equals an evaluation program once comments and blank lines are gone, or
whose token 5-gram Jaccard similarity to one reaches the threshold.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Sequence

from perfrepro.records import EvalProgram

_TOKEN = re.compile(r"\w+|[^\w\s]")
SHINGLE = 5


def normalize_code(code: str) -> str:
    """Code without comments, blank lines and trailing spaces, for exact-duplicate checks."""
    lines = []
    for line in code.splitlines():
        line = re.sub(r"#.*$", "", line).rstrip()
        if line.strip():
            lines.append(line)
    return "\n".join(lines)


def shingles(code: str, size: int = SHINGLE) -> frozenset[str]:
    """Token `size`-grams of the normalized code (the whole token list when it is shorter)."""
    tokens = _TOKEN.findall(normalize_code(code))
    if len(tokens) < size:
        return frozenset([" ".join(tokens)]) if tokens else frozenset()
    return frozenset(" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1))


class LeakageIndex:
    """The evaluation programs' shingles, with an inverted index to find candidates fast."""

    def __init__(self, programs: Sequence[EvalProgram], threshold: float):
        self.programs = list(programs)
        self.threshold = threshold
        self.task_ids = {p.task_id for p in programs}
        self.sets = [shingles(p.code) for p in self.programs]
        self.exact = {normalize_code(p.code): i for i, p in enumerate(self.programs)}
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, grams in enumerate(self.sets):
            for gram in grams:
                self.postings[gram].append(i)

    def match(self, problem_id: str, code: str) -> tuple[str, str, float] | None:
        """(task id, role, similarity) of the evaluation program `code` leaks, or None."""
        if problem_id in self.task_ids:
            return problem_id, "problem_id", 1.0
        exact = self.exact.get(normalize_code(code))
        if exact is not None:
            return self.programs[exact].task_id, self.programs[exact].role, 1.0
        grams = shingles(code)
        if not grams:
            return None
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for i in self.postings.get(gram, ()):
                shared[i] += 1
        best = None
        for i, common in shared.items():
            jaccard = common / (len(grams) + len(self.sets[i]) - common)
            if jaccard >= self.threshold and (best is None or jaccard > best[2]):
                best = (self.programs[i].task_id, self.programs[i].role, round(jaccard, 4))
        return best


def eval_programs_from_tasks(tasks: Iterable) -> list[EvalProgram]:
    """The slow and reference programs of OptTask records (data/prepared/opt_tasks.jsonl)."""
    programs = []
    for task in tasks:
        programs.append(EvalProgram(task.id, "slow", task.slow_program))
        if getattr(task, "reference_program", None):
            programs.append(EvalProgram(task.id, "reference", task.reference_program))
    return programs
