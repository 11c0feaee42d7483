"""Programs for ENAMEL tasks: a candidate source plus some of the task's stored tests.

Two kinds, both Python modules defining ``run_tests()``, which calls the entry point on each of its
tests and raises AssertionError when ENAMEL's ``__check(input, answer, output)`` rejects an output:
- timed: one per (task, level, role, sample) (`build_level_programs`), on the level's generated inputs;
- correctness: one per generated candidate (`build_correctness_program`), on level 0 (ENAMEL's
  correctness-only level) and every HumanEval+ input; run once, untimed, before any timing
  (see perfrepro.optimization.level_timing), so the timed programs carry only their own level.

A module embeds its tests (pickled, zlib-compressed, base64) because the sandbox runs it as another
user in a fresh directory mounted on /tmp, where no path of ours is guaranteed to be visible. Its
untimed set-up loads the task's checker in one namespace (with the task statement's helpers:
HumanEval/32's checker calls ``poly``) and compiles the candidate. Each ``run_tests()`` then runs
the candidate's own module-level code in a fresh namespace (its own copy of the builtins) before
its tests, as the efficiency harness does (perfrepro.execution.harness): work a program does at
import time is charged, and a module-level cache dies between timed calls. The slow, reference and
generated programs are all built this way, so a speedup compares like with like.

Mutable arguments are copied before each call (the entry point may sort a list in place, and
``run_tests`` runs many times in one process); flat lists and dicts with a C-level copy, deeper
structures with ``copy.deepcopy``. The plan is made in set-up, so the timed loop only pays the copy.
"""

from __future__ import annotations

import base64
import pickle
import re
import zlib
from typing import Sequence

from perfrepro.execution.harness import FRESH_NAMESPACE, program_head
from perfrepro.optimization.inputs import TaskInputs
from perfrepro.metrics.optimization import LEVEL_SEPARATOR, level_key, split_level_key  # noqa: F401 (re-exported)
from perfrepro.records import OptTask, Program

_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$")

TIMED_LEVELS = (1, 2, 3)
CORRECTNESS_LEVEL = 0  # ENAMEL's level 0 checks correctness only

_IMPORTS = ("import base64 as _base64", "import builtins as _builtins_module", "import copy as _copy",
            "import pickle as _pickle", "import zlib as _zlib")

_TEMPLATE = '''\
{head}
_DATA = _pickle.loads(_zlib.decompress(_base64.b64decode({data!r})))


{fresh_namespace}

_checker_ns = _namespace("__checker__")
try:  # the statement's complete helpers (HumanEval/32's poly); its stub entry point is harmless
    exec(compile(_STATEMENT, "<statement>", "exec"), _checker_ns)
except Exception:
    pass
exec(compile(_CHECKER, "<checker>", "exec"), _checker_ns)
_check = _checker_ns["__check"]
_CANDIDATE_CODE = compile(_CANDIDATE, "<candidate>", "exec")
del _checker_ns


def _fresh_entry():
    namespace = _namespace("__candidate__")
    exec(_CANDIDATE_CODE, namespace)  # the candidate's own top level: charged, every call
    if _ENTRY_POINT not in namespace:
        raise NameError("the program defines no " + repr(_ENTRY_POINT))
    return namespace[_ENTRY_POINT]

_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def _immutable(value):
    if type(value) in _SCALARS:
        return True
    return type(value) in (tuple, frozenset) and all(_immutable(v) for v in value)


def _copier(value):
    if _immutable(value):
        return None
    if type(value) in (list, set) and all(type(v) in _SCALARS for v in value):
        return type(value).copy
    if type(value) is dict and all(type(v) in _SCALARS for v in value.values()):
        return dict.copy
    return _copy.deepcopy


def _prepare(tests):
    return [(tuple(t["args"]), tuple(_copier(a) for a in t["args"]), t["answer"]) for t in tests]


def _run(tests, what):
    entry = _fresh_entry()
    for number, (args, copiers, answer) in enumerate(tests):
        output = entry(*[a if c is None else c(a) for a, c in zip(args, copiers)])
        if not _check(args, answer, output):
            raise AssertionError("wrong answer on " + what + " test " + str(number))


_TESTS = _prepare(_DATA)
del _DATA


def run_tests():
    _run(_TESTS, {kind!r})
'''


def _pack(data: list) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(data, protocol=4), 6)).decode("ascii")


def statement_imports(statement: str) -> str:
    """The top-level import lines of a HumanEval prompt (``from typing import List``), which a
    rewritten program may leave out."""
    return "".join(line + "\n" for line in statement.splitlines() if _IMPORT.match(line))


def program_source(task: OptTask, candidate: str, tests: Sequence[dict], kind: str) -> str:
    """The Python module a backend runs: ``run_tests()`` checks `candidate` on `tests` (`kind`
    names them in a wrong-answer message). Every candidate, whatever its role, is prefixed with the
    statement's imports: they run inside each timed call, so all roles pay the same for them."""
    head = program_head(_IMPORTS, candidate=statement_imports(task.statement) + candidate,
                        statement=task.statement, checker=task.checker, entry_point=task.entry_point)
    return _TEMPLATE.format(head=head, data=_pack(list(tests)), kind=kind, fresh_namespace=FRESH_NAMESPACE)


def build_level_programs(
    task: OptTask,
    candidate: str,
    inputs: TaskInputs,
    role: str,
    sample: int = 0,
    levels: Sequence[int] = TIMED_LEVELS,
) -> list[Program]:
    """One timed Program per level (task id ``<id>@L<level>``) on that level's tests."""
    return [
        Program(
            task_id=level_key(task.id, level),
            role=role,
            source=program_source(task, candidate, inputs.by_level(level), "timed"),
            sample=sample,
        )
        for level in levels
    ]


def build_correctness_program(task: OptTask, candidate: str, inputs: TaskInputs, sample: int = 0) -> Program:
    """The untimed correctness Program of a generated candidate (task id ``<id>@L0``): level 0 and
    every HumanEval+ input."""
    return Program(
        task_id=level_key(task.id, CORRECTNESS_LEVEL),
        role="generated",
        source=program_source(task, candidate, [*inputs.by_level(CORRECTNESS_LEVEL), *inputs.plus], "correctness"),
        sample=sample,
    )
