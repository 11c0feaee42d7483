"""The report stages' files as library calls: one run's measurements in, what report and report_pie
write out, on tiny hand-made runs."""

from __future__ import annotations

from perfrepro.records import Measurement
from perfrepro.report.efficiency import efficiency_report
from perfrepro.report.optimization import pie_report


def eff(task, role, status="ok", t=None):
    return Measurement(task_id=task, role=role, backend="wall", status=status, execution_time=t, time_unit="ms",
                       peak_memory_mb=10.0 if t else None, memory_usage=t, sample=0)


def test_efficiency_report_rows_by_hand():
    # a: the completion 2x slower than the canonical; b: wrong answer; c: the canonical failed.
    # The reference (LeetCodeDataset's responses) passes a at the canonical's speed.
    measurements = [eff("a", "canonical", t=1.0), eff("a", "completion", t=2.0), eff("a", "reference", t=1.0),
                    eff("b", "canonical", t=1.0), eff("b", "completion", "wrong_answer"),
                    eff("c", "canonical", "timeout"), eff("c", "completion", t=1.0)]
    report = efficiency_report(["a", "b", "c"], measurements, "rag3_and_m", "wall")
    assert [(r["task_id"], r["status"], r["NET"]) for r in report.net_rows] == [
        ("a", "ok", 2.0), ("b", "wrong_answer", None), ("c", "canonical_timeout", None)]
    assert [(r["task_id"], r["status"], r["NET"]) for r in report.reference_rows] == [
        ("a", "ok", 1.0), ("b", "missing", None), ("c", "missing", None)]
    assert report.content["efficiency"]["NET"] == 2.0 and report.content["efficiency"]["status_wrong_answer"] == 1
    assert report.content["efficiency_reference"]["NET"] == 1.0
    assert [r["row"] for r in report.plot_rows] == ["rag3_and_m"] * 3 + ["leetcodedataset-response (reference)"] * 3
    assert "| rag3_and_m " in report.markdown and "| leetcodedataset-response (reference) " in report.markdown


def test_efficiency_report_without_a_reference_row():
    report = efficiency_report(["a"], [eff("a", "canonical", t=1.0), eff("a", "completion", t=3.0)], "m", "wall")
    assert report.reference is None and report.reference_rows == [] and "efficiency_reference" not in report.content
    assert [r["row_NET"] for r in report.plot_rows] == [3.0]


def pie(task, level, role, time, status="ok"):
    return Measurement(task_id=f"{task}@L{level}", role=role, backend="wall", status=status,
                       execution_time=time if status == "ok" else None, time_unit="ms", peak_memory_mb=None,
                       memory_usage=None, sample=0)


def test_pie_report_by_hand():
    # T1: generated 4x faster than the slow program at every level; T2: generated wrong
    rows = []
    for level in (1, 2, 3):
        rows += [pie("T1", level, "slow", 4.0), pie("T1", level, "reference", 2.0), pie("T1", level, "generated", 1.0),
                 pie("T2", level, "slow", 4.0), pie("T2", level, "reference", 4.0),
                 pie("T2", level, "generated", None, "wrong_answer")]
    report = pie_report(rows, 1, "m", "openai", None, "wall")
    assert report.tasks == 2
    assert report.metrics["optimization.generated.speedup"] == 2.5  # (4.0 + 1.0) / 2
    assert report.metrics["optimization.generated.pct_correct"] == 50.0
    assert report.per_task["rows"][0]["speedups"] == {"T1": 4.0, "T2": 1.0}
    assert report.markdown.startswith("# Optimization track") and "Model `m` (llm.backend openai); timing backend " \
        "`wall`; 2 tasks, samples 1." in report.markdown
    assert report.table in report.markdown
