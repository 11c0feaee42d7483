"""ENAMEL's test inputs, drawn as ENAMEL draws them (pie.protocol: enamel).

ENAMEL (Qiu et al., ICLR 2025; its library `enam` 0.2.0) makes a task's tests like this:
- level ``lid`` (0-3, sizes ``task.levels``) gets ``tests_per_level[lid]`` inputs (8, 4, 4, 4);
- test ``cid`` of level ``lid`` of the task in row ``index`` of enamel.csv (its HumanEval number)
  runs ``generate_input(size, lid, cid)`` right after ``random.seed(seed ^ index ^ (offset + cid))``,
  where ``offset`` counts the tests of the lower levels and ``seed`` is 998244353;
- the generator runs in a scope holding the task's prompt, ``time``, ``random``, ``string`` and
  four helpers (below); every test starts from a fresh scope;
- the answer is the ENAMEL reference's output on a copy of the input. Nothing is dropped: a
  program that gets any of these tests wrong fails the task (HumanEval/44 with x = 0 included).

The helpers are written here from their documented behaviour so that they draw the same random
numbers in the same order as ENAMEL's (`benchmarks/published_agreement.py` compares the inputs
with `enam`'s own when that package is installed): the same seed gives the same tests as
ENAMEL's published ``eval~tests.pkl``. They differ on purpose from the current protocol's
helpers (perfrepro.optimization.helpers), which are not stream-compatible.
"""

from __future__ import annotations

import random
import time
from typing import Sequence

from perfrepro.optimization.helpers import generator_scope, odd_part, passes_miller_rabin
from perfrepro.optimization.inputs import (
    InputGenerationError,
    TaskInputs,
    _as_args,
    _time_limit,
    load_function,
    reference_answer,
)
from perfrepro.records import OptTask

ENAMEL_SEED = 998244353
ENAMEL_TESTS_PER_LEVEL = (8, 4, 4, 4)


def rand_parens(size: int, valid: bool = True, par: str = "()", sep: str | None = ""):
    """Top-level groups of balanced brackets, about `size` brackets in all, joined by `sep` (a
    list when `sep` is None). An invalid string is two valid halves around a ``)(``."""
    if not valid:
        if sep != "":
            raise ValueError("rand_parens: an invalid string has no separator")
        half = (size + 1) // 2 - 1
        return rand_parens(half, True, par) + par[1] + par[0] + rand_parens(half, True, par)
    size += size % 2
    groups: list[list[str]] = []
    depth = 0
    for position in range(size):
        left = size - position  # brackets still to place
        # open at depth 0; else open with probability 1/2 while there is room to close again
        if depth == 0 or (depth < left and random.randint(0, 1)):
            if depth == 0:
                groups.append([])
            groups[-1].append(par[0])
            depth += 1
        else:
            groups[-1].append(par[1])
            depth -= 1
    joined = ["".join(group) for group in groups]
    return joined if sep is None else sep.join(joined)


def miller_rabin(n: int, k: int = 5) -> bool:
    """Miller-Rabin with `k` random witnesses drawn from ``random`` (as ENAMEL's helper does)."""
    if n in (2, 3):
        return True
    if n == 1 or n % 2 == 0:
        return False
    d, r = odd_part(n - 1)
    # one witness drawn per round, and none after the first round that fails: ENAMEL's stream
    return all(passes_miller_rabin(n, random.randint(2, n - 2), d, r) for _ in range(k))


def rand_probably_prime(lb: int, ub: int | None = None) -> int:
    """A random probable prime: in [lb // 2, lb] (Bertrand) with one bound (lb at least 3), else in
    [lb, max(2 lb, ub, 3)]; uniform draws until Miller-Rabin accepts."""
    if ub is None:
        lb = max(lb, 3)
        lb, ub = lb // 2, lb
    else:
        lb = max(lb, 0)
        ub = max(lb * 2, ub, 3)
    while True:
        candidate = random.randint(lb, ub)
        if miller_rabin(candidate):
            return candidate


def rand_primality(size: int, lid: int, cid: int) -> int:
    """A hard case for primality code: four fixed edge cases at level 0 (the composite
    2*3*5*7*11*13 + 1, the Carmichael number 561, 2, 125), then by ``cid % 3`` a prime near
    `size`, the square of a prime near sqrt(size), or a product of two such primes."""
    size = max(size, 4)
    if lid == 0 and cid < 4:
        return (30031, 561, 2, 125)[cid]
    if cid % 3 == 0:
        return rand_probably_prime(size)
    root = int(size ** 0.5 + 1)
    if cid % 3 == 1:
        return rand_probably_prime(root) ** 2
    first = rand_probably_prime(root)
    return first * rand_probably_prime(root)


def enamel_scope() -> dict:
    """A fresh scope for one generator call: what ENAMEL's generators see besides their prompt."""
    return generator_scope(time=time, rand_parens=rand_parens, miller_rabin=miller_rabin,
                           rand_probably_prime=rand_probably_prime, rand_primality=rand_primality)


def task_index(task_id: str) -> int:
    """The task's row in enamel.csv, which is its HumanEval number: ``HumanEval/12`` -> 12."""
    prefix, _, number = task_id.partition("/")
    if prefix != "HumanEval" or not number.isdigit():
        raise ValueError(f"{task_id!r}: ENAMEL's seeds need a HumanEval id like 'HumanEval/12'")
    return int(number)


def enamel_test_seed(seed: int, index: int, offset: int, cid: int) -> int:
    """ENAMEL's seed of one test: ``seed ^ index ^ (offset + cid)``."""
    return seed ^ index ^ (offset + cid)


def generate_enamel_inputs(
    task: OptTask,
    seed: int = ENAMEL_SEED,
    tests_per_level: Sequence[int] = ENAMEL_TESTS_PER_LEVEL,
    call_timeout_s: float = 60.0,
) -> TaskInputs:
    """Generate a task's tests and the reference's answers in this process (see module docstring).

    Raises InputGenerationError when a generator or the reference fails (ENAMEL assumes neither
    does), naming the level, the test and the size."""
    if len(tests_per_level) != len(task.levels):
        raise InputGenerationError(f"{task.id}: {len(task.levels)} levels, but tests_per_level has {len(tests_per_level)}")
    index = task_index(task.id)
    reference, _ = load_function(task.reference_program, task.entry_point, task.checker, f"{task.id} reference")
    result = TaskInputs(task_id=task.id, seed=seed, levels=tuple(task.levels))
    offset = 0
    for level, (size, count) in enumerate(zip(task.levels, tests_per_level)):
        for cid in range(count):
            where = f"{task.id} level {level} test {cid} (size {size})"
            scope = enamel_scope()
            try:
                with _time_limit(call_timeout_s, f"{where}: generator"):
                    exec(compile(task.statement, f"<{task.id} prompt>", "exec"), scope)
                    exec(compile(task.input_generator, f"<{task.id} generator>", "exec"), scope)
                    random.seed(enamel_test_seed(seed, index, offset, cid))
                    args = _as_args(scope["generate_input"](size=size, lid=level, cid=cid))
            except InputGenerationError:
                raise
            except Exception as exc:  # dataset code: report, don't crash
                raise InputGenerationError(f"{where}: generator failed ({type(exc).__name__}: {exc})") from None
            answer = reference_answer(reference, args, call_timeout_s, where)
            result.tests.append({"level": level, "cid": cid, "size": size, "args": args, "answer": answer})
        offset += count
    return result
