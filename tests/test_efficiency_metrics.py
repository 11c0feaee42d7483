"""EffiBench metrics on hand-computed fixtures, and the report table's shape."""

from __future__ import annotations

import pytest

from perfrepro.metrics.efficiency import efficiency_metrics, normalized, task_ratios
from perfrepro.records import Measurement
from perfrepro.report import efficiency_table, experiment_name


def m(task, role, status="ok", t=None, mu=None, tmu=None, unit="ms", sample=0):
    return Measurement(task_id=task, role=role, backend="wall", status=status, execution_time=t,
                       time_unit=unit, peak_memory_mb=tmu, memory_usage=mu, sample=sample)


def fixture():
    # a: 2x slower, 3x the memory-time, peak 12 vs 10; b: same as canonical; c: wrong answer;
    # d: 6x slower, peak 4 MB; e: no completion at all
    return [
        m("a", "canonical", t=1.0, mu=1.0, tmu=10.0), m("a", "completion", t=2.0, mu=3.0, tmu=12.0),
        m("b", "canonical", t=4.0, mu=2.0, tmu=10.0), m("b", "completion", t=4.0, mu=2.0, tmu=10.0),
        m("c", "canonical", t=1.0, mu=1.0, tmu=10.0), m("c", "completion", status="wrong_answer"),
        m("d", "canonical", t=1.0, mu=1.0, tmu=4.0), m("d", "completion", t=6.0, mu=1.0, tmu=4.0),
        m("e", "canonical", t=1.0, mu=1.0, tmu=10.0),
    ]


def test_table_row_by_hand():
    row = efficiency_metrics(["a", "b", "c", "d", "e"], fixture())
    assert row.normalized == 3 and row.passed == 3 and row.tasks == 5
    assert row.ET == pytest.approx((2 + 4 + 6) / 3)
    assert row.NET == pytest.approx((2 + 1 + 6) / 3)
    assert row.Max_NET == pytest.approx(6.0)
    assert row.NET_gt5 == pytest.approx(100 / 3)
    assert row.MU == pytest.approx((3 + 2 + 1) / 3)
    assert row.NMU == pytest.approx((3 + 1 + 1) / 3)
    assert row.Max_NMU == pytest.approx(3.0)
    assert row.NMU_gt5 == 0.0
    assert row.TMU == pytest.approx((12 + 10 + 4) / 3)
    assert row.NTMU == pytest.approx((1.2 + 1 + 1) / 3)
    assert row.Max_TMU == pytest.approx(12.0)  # the largest TMU, not a ratio
    assert row.TMU_gt5 == pytest.approx(200 / 3)  # a and b exceed 5 MB, d does not
    assert row.pass1 == pytest.approx(60.0)  # 3 of all 5 tasks
    assert row.NET_total == pytest.approx((2 + 4 + 6) / (1 + 4 + 1))
    assert row.NMU_total == pytest.approx((3 + 2 + 1) / (1 + 2 + 1))
    assert row.status_counts == {"no_code": 1, "ok": 3, "wrong_answer": 1}


def test_a_timeout_is_a_failure_never_a_pass():
    ms = [m("a", "canonical", t=1.0, mu=1.0, tmu=10.0),
          m("a", "completion", status="timeout", t=0.5, mu=0.5, tmu=9.0)]  # numbers must be ignored
    row = efficiency_metrics(["a"], ms)
    assert row.pass1 == 0.0 and row.passed == 0 and row.normalized == 0
    assert row.NET is None and row.ET is None


def test_near_zero_canonical_is_guarded():
    assert normalized(0.5, 0.0, floor=1e-6) == pytest.approx(0.5 / 1e-6)
    assert normalized(0.0, 0.0, floor=1.0) == 1.0
    assert normalized(-5.0, -3.0, floor=1.0) == 1.0  # deterministic MU can dip below 0
    ms = [m("a", "canonical", t=0.0, mu=0.0, tmu=10.0), m("a", "completion", t=0.0, mu=0.0, tmu=10.0)]
    ratios, _, _ = task_ratios(["a"], ms)
    assert ratios[0].net == 1.0 and ratios[0].nmu == 1.0


def test_failed_canonical_leaves_the_task_out_of_ratios_but_not_pass1():
    ms = [m("a", "canonical", status="crash"), m("a", "completion", t=1.0, mu=1.0, tmu=1.0)]
    row = efficiency_metrics(["a"], ms)
    assert row.pass1 == 100.0 and row.normalized == 0 and row.canonical_failed == 1


def test_mixed_units_are_refused():
    ms = [m("a", "canonical", t=1.0, mu=1.0, tmu=1.0),
          m("a", "completion", t=1.0, mu=1.0, tmu=1.0, unit="instructions")]
    with pytest.raises(ValueError, match="time units"):
        efficiency_metrics(["a"], ms)


def test_table_has_the_study_columns_in_order():
    row = efficiency_metrics(["a", "b", "c", "d", "e"], fixture())
    name = experiment_name(3, "smollm2-135m-instruct", "local")
    table = efficiency_table({name: row})
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Model", "ET", "NET", "Max_NET", "NET>5", "MU", "NMU", "Max_NMU", "NMU>5",
                      "TMU", "NTMU", "Max_TMU", "TMU>5", "pass1"]
    assert "rag3_and_smollm2-135m-instruct" in table and "60.00" in table
    assert experiment_name(0, "gpt-4o-mini") == "gpt-4o-mini"
    assert experiment_name(0, "x", "recorded") == "x (recorded responses)"
