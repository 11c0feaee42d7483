"""PIE / ENAMEL metrics on hand-computed cases."""

import math

import pytest

from perfrepro.metrics.optimization import (
    calc_eff,
    eff_at_k,
    enamel_task_eff,
    optimization_metrics,
    summarize,
    task_outcomes,
    task_speedup,
)
from perfrepro.records import Measurement


def m(task, level, role, time, status="ok", sample=0):
    return Measurement(task_id=f"{task}@L{level}", role=role, backend="wall", status=status,
                       execution_time=time if status == "ok" else None, time_unit="ms",
                       peak_memory_mb=None, memory_usage=None, sample=sample)


def test_task_speedup():
    assert task_speedup(10.0, 4.0, True) == 2.5
    assert task_speedup(10.0, 20.0, True) == 1.0  # slower counts as 1
    assert task_speedup(10.0, 1.0, False) == 1.0  # incorrect counts as 1
    assert task_speedup(10.0, None, True) == 1.0


def test_calc_eff_and_weights():
    # ref 2, timeout 4: elapsed 3 -> (4-3)/(4-2) = 0.5; elapsed 5 -> 0; elapsed 1 -> 1.5
    assert calc_eff(3.0, 2.0, 4.0) == 0.5
    assert calc_eff(5.0, 2.0, 4.0) == 0.0
    assert calc_eff(1.0, 2.0, 4.0) == 1.5
    assert calc_eff(None, 2.0, 4.0) == 0.0
    # levels 1..3 with refs 1, 2, 4: one timeout T = 2 x 4 = 8 for the task (ENAMEL's code);
    # elapsed 1 (e=(8-1)/(8-1)=1), 3 (e=(8-3)/(8-2)=5/6), 8 (e=0): (3*1 + 3*5/6 + 4*0)/10
    assert enamel_task_eff({1: 1.0, 2: 3.0, 3: 8.0}, {1: 1.0, 2: 2.0, 3: 4.0}, True) == pytest.approx(0.55)
    assert enamel_task_eff({1: 1.0, 2: 2.0, 3: 4.0}, {1: 1.0, 2: 2.0, 3: 4.0}, False) == 0.0


def test_eff_at_k_unbiased():
    scores = [0.2, 0.8, 0.5]
    assert eff_at_k(scores, 1) == pytest.approx(0.5)  # the mean
    assert eff_at_k(scores, 3) == pytest.approx(0.8)  # the max
    # k=2: pairs (0.2,0.5)->0.5, (0.2,0.8)->0.8, (0.5,0.8)->0.8: mean 0.7
    assert eff_at_k(scores, 2) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        eff_at_k(scores, 4)


def _run():
    ms = []
    # task A: slow 10+10+10, reference 2+2+2 (speedup 5), generated 5+5+5 (speedup 2)
    for level in (1, 2, 3):
        ms += [m("A", level, "slow", 10.0), m("A", level, "reference", 2.0), m("A", level, "generated", 5.0),
               m("A", level, "generated", 30.0, sample=1)]
    # task B: slow times out at level 3 -> comparable levels 1, 2: slow 4+4, generated 4.2+4.2 -> 1.0
    for level in (1, 2, 3):
        ms += [m("B", level, "slow", 4.0 if level < 3 else None, "ok" if level < 3 else "timeout"),
               m("B", level, "reference", 1.0), m("B", level, "generated", 4.2),
               m("B", level, "generated", 1.0, sample=1)]
    # task C: generated wrong on level 2; sample 1 missing entirely (no_code)
    for level in (1, 2, 3):
        ms += [m("C", level, "slow", 3.0), m("C", level, "reference", 3.0),
               m("C", level, "generated", 1.0 if level != 2 else None, "ok" if level != 2 else "wrong_answer")]
    # task D: slow wrong everywhere -> left out
    for level in (1, 2, 3):
        ms += [m("D", level, "slow", None, "wrong_answer"), m("D", level, "reference", 1.0)]
    return ms


def test_outcomes_and_rows():
    outcomes, excluded = task_outcomes(_run(), samples=2)
    assert excluded == ["D"]
    by = {o.task_id: o for o in outcomes}
    assert by["A"].speedups == (2.0, 1.0)  # sample 1 is slower: 30 vs 10 -> 1.0
    assert by["A"].reference_speedup == 5.0
    assert by["B"].comparable_levels == (1, 2)
    assert by["B"].speedups[0] == 1.0 and by["B"].speedups[1] == 4.0
    assert by["C"].correct == (False, False) and by["C"].speedups == (1.0, 1.0)
    rows = {r.label: r for r in summarize(outcomes, samples=2)}
    generated = rows["generated"]
    assert generated.tasks == 3
    assert generated.speedup == pytest.approx((2.0 + 1.0 + 1.0) / 3)
    assert generated.pct_opt == pytest.approx(100 / 3)  # only A (B's 1.0 < 1.10)
    assert generated.pct_correct == pytest.approx(200 / 3)  # A and B
    best = rows["generated Best@2"]
    assert best.speedup == pytest.approx((2.0 + 4.0 + 1.0) / 3)
    assert best.pct_opt == pytest.approx(200 / 3)
    reference = rows["reference"]
    assert reference.speedup == pytest.approx((5.0 + 4.0 + 1.0) / 3)
    assert reference.eff == pytest.approx(1.0)  # the reference against itself: e = 1 on every level
    assert rows["slow"].pct_correct == pytest.approx(200 / 3)  # B's slow timed out at level 3
    metrics = optimization_metrics(list(rows.values()), len(excluded))
    assert metrics["optimization.generated.speedup"] == pytest.approx(4 / 3, abs=1e-4)
    assert "optimization.generated.best_at_2.eff_at_2" in metrics
    assert all(all(part for part in key.split(".")) for key in metrics)
    assert metrics["optimization.tasks_without_slow_baseline"] == 1
    assert not any(math.isnan(v) for v in metrics.values())
    # Speedup's 95% bootstrap interval over tasks: generated speedups 2, 1, 1
    assert 1.0 <= generated.speedup_lo <= generated.speedup <= generated.speedup_hi <= 2.0
    assert metrics["optimization.generated.speedup_lo"] == pytest.approx(generated.speedup_lo, abs=1e-4)
    assert "optimization.reference.speedup_hi" in metrics and "optimization.slow.speedup_lo" not in metrics


def _level(task, level, role, time):
    return Measurement(task_id=f"{task}@L{level}", role=role, backend="wall", status="ok", execution_time=time,
                       time_unit="ms", peak_memory_mb=None, memory_usage=None)


def test_speedup_interval_is_the_seeded_bootstrap_and_repeats_exactly():
    from perfrepro.metrics import optimization
    from perfrepro.metrics.uncertainty import bootstrap_interval

    # many distinct values, so two unseeded bootstraps would almost surely give different quantiles
    speedups = [1.0, 1.13, 1.37, 1.52, 1.9, 2.21, 2.6, 3.05, 3.7, 4.4, 5.3, 7.9]
    first = optimization._row("generated", speedups, [True] * 12, [0.5] * 12)
    again = optimization._row("generated", speedups, [True] * 12, [0.5] * 12)
    assert (first.speedup_lo, first.speedup_hi) == (again.speedup_lo, again.speedup_hi) == bootstrap_interval(speedups, seed=0)


def test_enamel_eff_skips_a_level_the_reference_failed():
    from perfrepro.metrics.optimization import enamel_task_eff

    # level 1: timeout 2 x 1.0, (2 - 1.5) / (2 - 1) = 0.5 at weight 3; level 2 skipped (no reference
    # time); level 3: (2 - 1) / (2 - 1) = 1.0 at weight 4
    score = enamel_task_eff({1: 1.5, 2: 1.0, 3: 1.0}, {1: 1.0, 2: None, 3: 1.0}, correct=True)
    assert score == pytest.approx((3 * 0.5 + 4 * 1.0) / 7)


def test_outcomes_are_the_tasks_with_a_slow_program_and_carry_the_slow_programs_eff():
    from perfrepro.metrics.optimization import task_outcomes

    data = [_level("T/0", 1, "slow", 1.5), _level("T/0", 1, "reference", 1.0), _level("T/0", 1, "generated", 1.0),
            _level("T/1", 1, "slow", 2.0),  # nothing else measured: still a task
            _level("T/2", 1, "generated", 1.0)]  # no slow program: not a task of this run
    outcomes, excluded = task_outcomes(data, samples=1)
    assert [o.task_id for o in outcomes] == ["T/0", "T/1"] and excluded == []
    # the slow program is correct by construction: (2 x 1.0 - 1.5) / (2 x 1.0 - 1.0) = 0.5
    assert outcomes[0].slow_correct and outcomes[0].slow_eff == pytest.approx(0.5)


@pytest.mark.parametrize("key", ["T/1@Lx", "T/1@L", "5", "T/1"])
def test_split_level_key_rejects_ids_without_a_numeric_level(key):
    from perfrepro.metrics.optimization import split_level_key

    with pytest.raises(ValueError, match="is not a per-level task id"):
        split_level_key(key)
