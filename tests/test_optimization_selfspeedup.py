"""The reference measured against itself: exactly speedup 1.00 under the deterministic backend.

(The wall-clock version, 1.00 +- 0.05, is a noise target and lives in benchmarks/pie_self_speedup.py.)
"""

import dataclasses
import shutil

import pytest

from perfrepro.config import TimingConfig
from perfrepro.metrics.optimization import summarize, task_outcomes
from perfrepro.optimization.inputs import generate_task_inputs
from perfrepro.optimization.level_timing import correctness_limits, measure_tasks
from perfrepro.records import Completion
from perfrepro.timing.base import make_backend

from test_optimization_inputs import TASK

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("valgrind") is None, reason="the deterministic backend needs valgrind")]


def test_reference_against_itself_is_exactly_one_and_import_time_work_is_charged():
    task = dataclasses.replace(TASK, slow_program=TASK.reference_program)
    inputs = generate_task_inputs(task, seed=3, tests_per_level=1)
    itself = Completion(task_id=task.id, sample=0, model="self", status="ok", code=task.reference_program, response=None)
    # the reference plus module-level work it never needs: a table no test reads
    precomputing = dataclasses.replace(itself, sample=1, code="_TABLE = [i * i for i in range(2000)]\n" + task.reference_program)
    config = TimingConfig(backend="deterministic", repeats=1, min_sample_ms=1.0, timeout_s=20.0,
                          memory_limit_mb=1024, rss_interval_ms=1.0)
    measured = measure_tasks([task], lambda _: inputs, [itself, precomputing], make_backend(config),
                             correctness_limits(config), levels=(1,))
    assert all(m.passed for m in measured), [m.error for m in measured]
    measurements = [m for m in measured if m.sample == 0]
    assert len({m.execution_time for m in measurements}) == 1  # identical instruction counts
    (heavier,) = [m for m in measured if m.sample == 1]
    assert heavier.execution_time > measurements[0].execution_time + 2000  # each timed call builds the table
    outcomes, excluded = task_outcomes(measurements, samples=1)
    rows = {r.label: r for r in summarize(outcomes, 1)}
    assert not excluded
    assert rows["generated"].speedup == 1.0 and rows["reference"].speedup == 1.0
    assert rows["generated"].eff == 1.0 and rows["generated"].pct_correct == 100.0
