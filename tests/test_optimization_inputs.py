"""ENAMEL generator helpers, seeded input generation and the timed program module (no sandbox)."""

import copy
import random
from pathlib import Path

import pytest

from perfrepro.datasets.enamel import load_opt_tasks
from perfrepro.optimization.helpers import (
    generator_scope,
    is_probable_prime,
    odd_part,
    passes_miller_rabin,
    rand_parens,
    rand_primality,
    rand_probably_prime,
)
from perfrepro.optimization.inputs import (
    InputGenerationError,
    TaskInputs,
    generate_inputs_isolated,
    generate_task_inputs,
    load_function,
)
from perfrepro.optimization.programs import statement_imports
from perfrepro.optimization.programs import build_correctness_program, build_level_programs, level_key, split_level_key
from perfrepro.records import OptTask


def balanced(text, par="()"):
    depth = 0
    for c in text:
        if c == par[0]:
            depth += 1
        elif c == par[1]:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def test_is_probable_prime_small_and_large():
    primes = [n for n in range(60) if is_probable_prime(n)]
    assert primes == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]
    assert is_probable_prime(1_000_000_007)
    assert not is_probable_prime(1_000_000_007 * 998_244_353)
    assert not is_probable_prime(561)  # Carmichael


def test_one_miller_rabin_round_by_hand():
    assert odd_part(2046) == (1023, 1) and odd_part(24) == (3, 3) and odd_part(7) == (7, 0)
    # 2047 = 23 * 89 fools base 2 (2^1023 = 1 mod 2047) but not base 3
    assert passes_miller_rabin(2047, 2, 1023, 1) and not passes_miller_rabin(2047, 3, 1023, 1)
    # 25 fools base 7 only on the squarings: 7^3 = 18, 18^2 = 24 = -1 (mod 25); base 2 gives 8, 14, 21
    assert passes_miller_rabin(25, 7, 3, 3) and not passes_miller_rabin(25, 2, 3, 3)
    assert passes_miller_rabin(13, 5, 3, 2)  # a prime passes every base


def test_rand_probably_prime_ranges():
    random.seed(1)
    for _ in range(50):
        p = rand_probably_prime(9)
        assert p in (2, 3, 5, 7)
        q = rand_probably_prime(11, 100)
        assert 11 <= q <= 100 and is_probable_prime(q)
    assert is_probable_prime(rand_probably_prime(10**18))
    with pytest.raises(ValueError):
        rand_probably_prime(24, 28)


def test_rand_primality_kinds():
    random.seed(2)
    for size in (20, 100, 10_000, 10**9):
        for lid in (0, 1, 3):
            for cid in range(6):
                n = rand_primality(size, lid, cid)
                assert 2 <= n <= max(size, 4)
                assert is_probable_prime(n) == (cid % 6 == 2)  # only kind 2 is prime (HumanEval/59 relies on it)


def test_rand_parens_valid_invalid_sep():
    random.seed(3)
    for size in (2, 7, 100, 1001):
        s = rand_parens(size)
        assert balanced(s) and len(s) == max(2, size - size % 2)
        assert not balanced(rand_parens(size, valid=False))
        angled = rand_parens(size, par="<>")
        assert set(angled) <= {"<", ">"} and balanced(angled, "<>")
    groups = rand_parens(200, sep=" ").split(" ")
    assert all(g and balanced(g) for g in groups)
    assert "".join(groups).count("(") == 100


TASK = OptTask(
    id="Toy/1",
    statement='from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n',
    slow_program="from typing import List\n\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n",
    reference_program="def total(xs):\n    return sum(xs)\n",
    input_generator=(
        "def generate_input(size, lid, cid):\n"
        "    return [random.randint(-9, 9) for _ in range(size)] + [rand_probably_prime(50)],\n"
    ),
    levels=(3, 10, 20, 30),
    checker="def __check(input, answer, output):\n    return type(output) == type(answer) and output == answer\n",
    source="test",
    entry_point="total",
)


def test_generation_is_seeded_and_answered():
    a = generate_task_inputs(TASK, seed=7, tests_per_level=2, plus_inputs=[[[1, 2]], [[5]]])
    b = generate_task_inputs(TASK, seed=7, tests_per_level=2, plus_inputs=[[[1, 2]], [[5]]])
    c = generate_task_inputs(TASK, seed=8, tests_per_level=2)
    assert a == b and a.tests != c.tests
    assert [(t["level"], t["cid"]) for t in a.tests] == [(lv, c) for lv in range(4) for c in range(2)]
    assert all(t["answer"] == sum(t["args"][0]) for t in a.tests)
    assert len(a.tests[-1]["args"][0]) == 31 and len(a.plus) == 2
    # the first tests do not change when more are asked for
    more = generate_task_inputs(TASK, seed=7, tests_per_level=3)
    assert more.by_level(1)[:2] == a.by_level(1)


def test_isolated_generation_writes_same_bytes(tmp_path):
    first = generate_inputs_isolated(TASK, tmp_path / "a.pkl", 7, 1, [[[4, 4]]])
    second = generate_inputs_isolated(TASK, tmp_path / "b.pkl", 7, 1, [[[4, 4]]])
    assert first["sha256"] == second["sha256"] and first["tests"] == 4 and first["plus"] == 1
    assert TaskInputs.load(tmp_path / "a.pkl").tests[0]["level"] == 0


def test_broken_generator_is_reported(tmp_path):
    broken = OptTask(**{**TASK.__dict__, "input_generator": "def generate_input(size, lid, cid):\n    return 1 / 0\n"})
    with pytest.raises(InputGenerationError, match="generator failed .*ZeroDivisionError"):
        generate_inputs_isolated(broken, tmp_path / "x.pkl", 7, 1)


def _exec_program(source):
    namespace = {"__name__": "program"}
    exec(compile(source, "<program>", "exec"), namespace)
    return namespace


def test_level_programs_run_and_catch_wrong_answers():
    inputs = generate_task_inputs(TASK, seed=7, tests_per_level=2, plus_inputs=[[[1, 2]]])
    programs = build_level_programs(TASK, TASK.slow_program, inputs, "slow")
    assert [split_level_key(p.task_id) for p in programs] == [("Toy/1", 1), ("Toy/1", 2), ("Toy/1", 3)]
    for program in programs:
        _exec_program(program.source)["run_tests"]()
    # wrong on the largest inputs only: levels 1-2 and the correctness tests pass, level 3 does not
    sneaky = "def total(xs):\n    return sum(xs) + (len(xs) > 25)\n"
    _exec_program(build_level_programs(TASK, sneaky, inputs, "generated", levels=(1,))[0].source)["run_tests"]()
    _exec_program(build_correctness_program(TASK, sneaky, inputs).source)["run_tests"]()
    level3 = build_level_programs(TASK, sneaky, inputs, "generated", levels=(3,))[0]
    with pytest.raises(AssertionError, match="wrong answer on timed test 0"):
        _exec_program(level3.source)["run_tests"]()
    with pytest.raises(NameError):
        _exec_program(build_level_programs(TASK, "x = 1\n", inputs, "generated", levels=(1,))[0].source)["run_tests"]()


def test_each_timed_call_runs_the_candidate_top_level_afresh():
    inputs = generate_task_inputs(TASK, seed=7, tests_per_level=2)
    # counts its own top-level runs where no namespace resets them; answers wrong from a cache,
    # so a cache that outlived a call would fail the second one
    cached = ("import builtins\nbuiltins._perfrepro_imports += 1\n_seen = {}\n"
              "def total(xs):\n    key = tuple(xs)\n    if key in _seen:\n        return -1\n"
              "    _seen[key] = True\n    return sum(xs)\n")
    import builtins
    builtins._perfrepro_imports = 0
    try:
        namespace = _exec_program(build_level_programs(TASK, cached, inputs, "generated", levels=(1,))[0].source)
        assert builtins._perfrepro_imports == 0  # set-up compiles the candidate, never runs it
        for calls in (1, 2, 3):
            namespace["run_tests"]()
            assert builtins._perfrepro_imports == calls
    finally:
        del builtins._perfrepro_imports


def test_correctness_program_holds_level_0_and_every_plus_input_and_timed_programs_hold_neither():
    inputs = generate_task_inputs(TASK, seed=7, tests_per_level=2, plus_inputs=[[[1, 2]], [[-3]]])
    # wrong only on the one-element HumanEval+ input: the timed levels cannot see it
    wrong_on_plus = "def total(xs):\n    return sum(xs) if len(xs) != 1 else 0\n"
    check = build_correctness_program(TASK, wrong_on_plus, inputs, sample=2)
    assert split_level_key(check.task_id) == ("Toy/1", 0) and check.role == "generated" and check.sample == 2
    with pytest.raises(AssertionError, match="wrong answer on correctness test 3"):  # 2 level-0 tests, then plus
        _exec_program(check.source)["run_tests"]()
    for level, program in zip((1, 2, 3), build_level_programs(TASK, wrong_on_plus, inputs, "generated")):
        namespace = _exec_program(program.source)
        namespace["run_tests"]()
        assert len(namespace["_TESTS"]) == len(inputs.by_level(level)) == 2  # its own level only
    assert len(_exec_program(build_correctness_program(TASK, TASK.slow_program, inputs).source)["_TESTS"]) == 2 + 2


def test_mutating_program_sees_fresh_inputs():
    inputs = generate_task_inputs(TASK, seed=7, tests_per_level=1)
    # records what it received (in a list the harness can't reset), then empties its input
    mutating = ("import builtins\ndef total(xs):\n    builtins._perfrepro_seen.append(list(xs))\n"
                "    s = sum(xs)\n    xs.clear()\n    return s\n")
    import builtins
    builtins._perfrepro_seen = []
    try:
        ns = _exec_program(build_level_programs(TASK, mutating, inputs, "generated", levels=(2,))[0].source)
        ns["run_tests"]()
        first = list(builtins._perfrepro_seen)
        ns["run_tests"]()  # a second call gets unmutated copies: the same, non-empty inputs
        second = builtins._perfrepro_seen[len(first):]
    finally:
        del builtins._perfrepro_seen
    assert first and all(first), first
    assert second == first


def test_helpers_scope_and_keys():
    scope = generator_scope()
    assert {"random", "string", "rand_parens", "rand_probably_prime", "rand_primality"} <= set(scope)
    assert level_key("HumanEval/3", 2) == "HumanEval/3@L2"
    with pytest.raises(ValueError):
        split_level_key("HumanEval/3")
    assert statement_imports(TASK.statement) == "from typing import List\n"


def _tasks_calling_helpers():
    enamel_dir = Path(__file__).resolve().parents[1] / "data" / "raw" / "enamel"
    helpers = ("rand_parens", "rand_probably_prime", "rand_primality")
    return [t for t in load_opt_tasks(enamel_dir, include_excluded=True) if any(h in t.input_generator for h in helpers)]


HELPER_TASKS = _tasks_calling_helpers()


def test_shipped_generators_that_call_helpers_are_the_ones_provenance_lists():
    # data/raw/enamel/PROVENANCE.md: rand_parens for 1, 6, 56, 61, 119; primes for 13 ... 150
    listed = {1, 6, 56, 61, 119, 13, 24, 25, 31, 59, 75, 82, 94, 96, 127, 143, 144, 150}
    assert {int(t.id.split("/")[1]) for t in HELPER_TASKS} == listed


@pytest.mark.parametrize("task", HELPER_TASKS, ids=lambda t: t.id)
def test_real_generator_with_helpers_gives_inputs_the_reference_answers(task):
    # Checks the helpers' interface with the real generators (keywords, one- and two-bound forms, the
    # ranges each level asks for); their semantics are the unit tests above. The reference stands in
    # for the slow side on the large levels (HumanEval/75's canonical handles only a < 100); on level 0
    # HumanEval's canonical must agree, or pie_tasks would drop those tests.
    fast_only = OptTask(**{**task.__dict__, "slow_program": task.reference_program})
    inputs = generate_task_inputs(fast_only, seed=42, tests_per_level=2, call_timeout_s=20.0)
    assert [t["level"] for t in inputs.tests] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert inputs.level0_dropped == 0 and inputs.slow_timeouts == 0
    canonical, check = load_function(task.slow_program, task.entry_point, task.checker, task.id)
    for test in inputs.by_level(0):
        assert check(test["args"], test["answer"], canonical(*copy.deepcopy(test["args"]))), test["args"]


def test_inputs_whose_reference_answer_the_checker_rejects_are_dropped_or_skip_the_task():
    # Shaped like HumanEval/32: the checker tests a property of the output, not equality with the
    # answer, and the reference returns inf outside the contract (an all-zero input), which the
    # checker rejects while it accepts the slow program. A candidate equal to the reference would
    # fail such a test, so it must not be one.
    task = OptTask(**{
        **TASK.__dict__,
        "reference_program": "def total(xs):\n    return sum(xs) if any(xs) else float('inf')\n",
        "slow_program": "def total(xs):\n    return sum(xs)\n",
        "checker": "def __check(input, answer, output):\n    import math\n    return math.isfinite(output) and output == sum(input[0])\n",
        "input_generator": "def generate_input(size, lid, cid):\n    return ([0] * size if lid == 0 and cid == 0 else [random.randint(1, 9) for _ in range(size)]),\n",
    })
    inputs = generate_task_inputs(task, seed=7, tests_per_level=2, plus_inputs=[[[0, 0]], [[1, 2]]])
    assert inputs.level0_dropped == 1 and [t["level"] for t in inputs.tests] == [0, 1, 1, 2, 2, 3, 3]
    assert [p["index"] for p in inputs.plus] == [1] and inputs.plus_dropped == 1
    zeros_on_level_1 = task.input_generator.replace("lid == 0", "lid == 1")
    with pytest.raises(InputGenerationError, match="level 1 test 0 .*checker rejects the reference's own answer"):
        generate_task_inputs(OptTask(**{**task.__dict__, "input_generator": zeros_on_level_1}), seed=7, tests_per_level=1)
