"""measure_tasks through the real sandbox and wall backend: a generated program is timed only after
it passes the correctness tests (level 0 and every HumanEval+ input) in one untimed run."""

import pytest

from perfrepro.config import TimingConfig
from perfrepro.metrics.optimization import split_level_key, task_outcomes
from perfrepro.optimization.inputs import generate_task_inputs
from perfrepro.optimization.level_timing import correctness_limits, measure_tasks
from perfrepro.records import Completion
from perfrepro.timing.base import make_backend

from test_optimization_inputs import TASK

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CONFIG = TimingConfig(backend="wall", repeats=1, min_sample_ms=2.0, timeout_s=20.0, memory_limit_mb=1024, rss_interval_ms=1.0)


def completion(sample: int, code: str | None) -> Completion:
    return Completion(task_id=TASK.id, sample=sample, model="test", status="ok" if code else "no_code", code=code, response=code)


def test_only_programs_that_pass_the_correctness_run_are_timed():
    inputs = generate_task_inputs(TASK, seed=7, tests_per_level=1, plus_inputs=[[[1, 2]], [[-3]]])
    timed = []
    backend = make_backend(CONFIG, on_run=lambda program, repeat, raw: timed.append((program.role, program.sample)))
    completions = [
        completion(0, "def total(xs):\n    return sum(xs)\n"),
        completion(1, "def total(xs):\n    return sum(xs) if len(xs) != 1 else 0\n"),  # wrong on one HumanEval+ input
        completion(2, None),
    ]
    measurements = measure_tasks([TASK], lambda _: inputs, completions, backend, correctness_limits(CONFIG), levels=(1, 2))
    by = {(m.role, m.sample, split_level_key(m.task_id)[1]): m for m in measurements}
    assert len(by) == len(measurements) == 2 * 5  # slow, reference, three samples; two levels each
    assert all(by[(role, 0, level)].passed for role in ("slow", "reference", "generated") for level in (1, 2))
    for level in (1, 2):
        wrong = by[("generated", 1, level)]
        assert wrong.status == "wrong_answer" and "correctness tests" in wrong.error and "correctness test 2" in wrong.error
        assert by[("generated", 2, level)].status == "no_code"
    assert ("generated", 1) not in timed and ("generated", 2) not in timed and ("generated", 0) in timed
    outcome = task_outcomes(measurements, samples=3)[0][0]
    assert outcome.correct == (True, False, False)
