"""Adversarial timing: completions that do the canonical's work or more must not look faster.

One hand-made task (the sum of i*i below n for n = 20000 and 30000, a few ms a call) and
completions that wrap the canonical solution in the two blind spots a harness can have:
- state that survives from one timed call to the next (a module-level dict, functools.cache on a
  top-level helper or a static method, a class attribute, a mutable default argument);
- work at module level that a harness leaves uncharged (the answers or a table precomputed at
  import time, extra arithmetic at the top level or in the class body);
- work a clock of the calling thread alone would miss (done in another thread, or in a child
  process the solution waits for).
A trustworthy backend reports NET >= 1 for each of them (within noise), and about 3 for the ones
that add twice the canonical's work. On a harness that keeps the solution's namespace between
calls or does not charge its top level, the caches give NET ~0.001 and the extra work NET ~1.0.

Wall: only contrasts far beyond noise are asserted (a wall-clock ratio near 1 is a noise figure:
benchmarks/). Every completion beside the canonical in one interleaved run (3 processes each);
each same-work completion must measure above 0.2 (an old-style harness: ~0.001), and the
extra-work ones, here with 29x the canonical's work added (30x in all), above 5 (old-style: ~1.0).

Deterministic (valgrind): the canonical and one completion with both blind spots, instruction
counts only (callgrind with the tests and on the set-up alone: ET's two runs, not massif's).
"""

from __future__ import annotations

import shutil

import pytest

from perfrepro.config import TimingConfig
from perfrepro.execution.harness import build_program, canonical_program, run_program
from perfrepro.records import Task
from perfrepro.timing.base import make_backend

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CANONICAL = """\
class Solution:
    def sumSquares(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += i * i
        return total
"""

# the canonical's work, as a top-level function a completion can call at import time
BURN = """
def _burn(n):
    total = 0
    for i in range(n):
        total += i * i
    return total
"""

TASK = Task(
    id="sum-of-squares",
    statement="Return the sum of i * i for 0 <= i < n.",
    starter_code="class Solution:\n    def sumSquares(self, n: int) -> int:\n        ",
    canonical_solution=CANONICAL,
    test_code=("def check(candidate):\n"
               f"    assert candidate(n=20000) == {sum(i * i for i in range(20000))}\n"
               f"    assert candidate(n=30000) == {sum(i * i for i in range(30000))}\n"),
    entry_point="Solution().sumSquares",
    examples="",
    source="hand-made (tests/test_timing_adversarial.py)",
    imports="import functools\nfrom functools import *\n",
)

# name -> (completion source, its work relative to the canonical's)
SAME = 1.0
TRIPLE = 3.0
COMPLETIONS: dict[str, tuple[str, float]] = {
    "module_dict_cache": (CANONICAL + """
_memo = {}
_original = Solution.sumSquares


def _cached(self, *args, **kwargs):
    key = (args, tuple(sorted(kwargs.items())))
    if key not in _memo:
        _memo[key] = _original(self, *args, **kwargs)
    return _memo[key]


Solution.sumSquares = _cached
""", SAME),
    "functools_cache_on_helper": ("""
@cache
def _sum_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


class Solution:
    def sumSquares(self, n: int) -> int:
        return _sum_squares(n)
""", SAME),
    "lru_cache_on_static_method": ("""
import functools


class Solution:
    @staticmethod
    @functools.lru_cache(maxsize=None)
    def _compute(n):
        total = 0
        for i in range(n):
            total += i * i
        return total

    def sumSquares(self, n: int) -> int:
        return self._compute(n)
""", SAME),
    "class_attribute_cache": ("""
class Solution:
    _memo = {}

    def sumSquares(self, n: int) -> int:
        if n not in Solution._memo:
            total = 0
            for i in range(n):
                total += i * i
            Solution._memo[n] = total
        return Solution._memo[n]
""", SAME),
    "mutable_default_cache": ("""
class Solution:
    def sumSquares(self, n: int, _memo={}) -> int:
        if n not in _memo:
            total = 0
            for i in range(n):
                total += i * i
            _memo[n] = total
        return _memo[n]
""", SAME),
    "answers_precomputed_at_import": (BURN + """
_ANSWERS = {n: _burn(n) for n in (20000, 30000)}


class Solution:
    def sumSquares(self, n: int) -> int:
        return _ANSWERS[n] if n in _ANSWERS else _burn(n)
""", SAME),
    "cache_warmed_at_import": ("""
@cache
def _sum_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


_sum_squares(20000)
_sum_squares(30000)


class Solution:
    def sumSquares(self, n: int) -> int:
        return _sum_squares(n)
""", SAME),
    "answers_cached_and_extra_work_at_import": (BURN + """
@cache
def _sum_squares(n):
    return _burn(n)


_sum_squares(20000)  # the answers, cached at import time
_sum_squares(30000)
_burn(100000)  # and twice the canonical's work more


class Solution:
    def sumSquares(self, n: int) -> int:
        return _sum_squares(n)
""", TRIPLE),
    "extra_work_at_module_level": (BURN + """
_burn(100000)  # twice the canonical's work, done at import time
""" + CANONICAL, TRIPLE),
    # work handed to a thread or to a child process it waits for: the timed loop's clock counts both
    "extra_work_in_a_thread": (BURN + """
import threading


class Solution:
    def sumSquares(self, n: int) -> int:
        helper = threading.Thread(target=_burn, args=(100000,))  # twice the canonical's work
        helper.start()
        helper.join()
        return _burn(n)
""", TRIPLE),
    "extra_work_in_a_child_process": (BURN + """
import os


class Solution:
    def sumSquares(self, n: int) -> int:
        child = os.fork()
        if child == 0:
            _burn(100000)  # twice the canonical's work
            os._exit(0)
        os.waitpid(child, 0)
        return _burn(n)
""", TRIPLE),
    "extra_work_in_class_body": ("""
class Solution:
    _table = [i * i for i in range(100000)]  # about twice the canonical's work, at class creation

    def sumSquares(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += i * i
        return total
""", TRIPLE),
}
# wall: the extra work scaled from 2x (the literal below, 100000 iterations) to 29x the
# canonical's 50000, so a completion doing 30x the work must measure above 5, and one doing the
# same work above 0.2: both bounds 5x or more from the true ratio and from an old-style harness's
TWICE_THE_WORK = "100000"
WALL_EXTRA_WORK = str(29 * 50000)
WALL_LOWER_BOUND = {SAME: 0.2, TRIPLE: 5.0}


def config(backend: str, repeats: int = 3) -> TimingConfig:
    return TimingConfig(backend=backend, repeats=repeats, min_sample_ms=20.0, timeout_s=20.0,
                        memory_limit_mb=2048, rss_interval_ms=1.0)


def programs(names, extra_work: str = TWICE_THE_WORK):
    return [canonical_program(TASK), *(build_program(TASK, COMPLETIONS[name][0].replace(TWICE_THE_WORK, extra_work),
                                                     role="completion", sample=i)
                                       for i, name in enumerate(names))]


def net_by_name(backend, names, extra_work: str) -> dict[str, float]:
    canonical, *done = backend.measure(programs(names, extra_work))
    assert canonical.passed, canonical.error
    assert all(m.passed for m in done), {n: m.error for n, m in zip(names, done) if not m.passed}
    return {name: m.execution_time / canonical.execution_time for name, m in zip(names, done)}


def test_every_completion_is_correct_and_keeps_no_state_between_calls():
    # untimed, no clock: a solution counting its own calls in module state sees a fresh start in
    # every timed call (a harness that keeps the namespace fails it on the second call)
    counting = build_program(TASK, """
_calls = []


class Solution:
    def sumSquares(self, n: int) -> int:
        _calls.append(n)
        assert len(_calls) <= 2, "state survived from an earlier timed call"
        total = 0
        for i in range(n):
            total += i * i
        return total
""", role="completion")
    record, _ = run_program(counting, mode="timed", min_sample_ms=5.0, samples=2)
    assert record.passed, record.error
    assert record.n >= 1


def test_wall_charges_module_level_work_and_keeps_no_cache():
    assert all(TWICE_THE_WORK in source for source, work in COMPLETIONS.values() if work == TRIPLE)
    net = net_by_name(make_backend(config("wall")), list(COMPLETIONS), WALL_EXTRA_WORK)
    low = {name: round(value, 3) for name, value in net.items() if value < WALL_LOWER_BOUND[COMPLETIONS[name][1]]}
    assert not low, f"completions measured far below the work they do (NET): {low}; all: {net}"


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_deterministic_charges_module_level_work():
    # one completion for both blind spots (each program costs ~10 s under valgrind): the answers
    # cached at import time, plus twice the canonical's work at import time. Exact counts: the
    # canonical's loops, then twice more, give NET ~3.05 (an old-style baseline that holds the
    # solution's top level gave 0.0004)
    backend = make_backend(config("deterministic"))
    canonical, completion = programs(["answers_cached_and_extra_work_at_import"])
    counts = {}
    for program in (canonical, completion):  # callgrind only: ET is instructions; 2 valgrind runs each
        record, step, (full, base) = backend.python_instructions(program)
        assert record.passed, (step, record.error)
        counts[program.role] = full - base
    net = counts["completion"] / counts["canonical"]
    assert net >= 2.5, counts
