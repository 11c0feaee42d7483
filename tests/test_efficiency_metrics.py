"""EffiBench metrics on hand-computed fixtures, their bootstrap intervals, the paired comparison of
two experiments, and the report table's shape and labels."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest

from perfrepro import cli
from perfrepro.metrics.efficiency import efficiency_metrics, normalized, task_ratios
from perfrepro.metrics.uncertainty import bootstrap_interval, paired_comparison
from perfrepro.records import Measurement
from perfrepro.report import (
    ExperimentResult,
    efficiency_markdown,
    efficiency_paired_rows,
    efficiency_table,
    experiment_name,
    reference_name,
    study_tables,
)


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
    # the study's 13 columns in order, each mean of ratios with its interval beside it
    assert header == ["Model", "ET", "NET", "NET 95% CI", "Max_NET", "NET>5", "MU", "NMU", "NMU 95% CI", "Max_NMU",
                      "NMU>5", "TMU", "NTMU", "NTMU 95% CI", "Max_TMU", "TMU>5", "pass1"]
    assert "rag3_and_smollm2-135m-instruct" in table and "60.00" in table
    cells = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]
    assert cells[header.index("NET 95% CI")] == f"[{row.NET_lo:.2f}, {row.NET_hi:.2f}]"


def test_row_labels_say_where_the_code_came_from():
    assert experiment_name(0, "gpt-4o-mini") == "gpt-4o-mini"
    assert experiment_name(3, "gpt-4o-mini", "openai") == "rag3_and_gpt-4o-mini"
    # the recorded backend replays LeetCodeDataset's `response` field: no model name in its label
    assert experiment_name(0, "smollm2-135m-instruct", "recorded") == "leetcodedataset-response"
    assert "smollm2" not in reference_name() and reference_name().startswith("leetcodedataset-response")


# ---- uncertainty ----

def test_bootstrap_interval_edge_cases_and_seed():
    assert all(math.isnan(v) for v in bootstrap_interval([]))
    assert bootstrap_interval([2.5]) == (2.5, 2.5)
    assert bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0)
    values = [0.5 + 0.37 * i % 2.9 for i in range(30)]
    assert bootstrap_interval(values, seed=7) == bootstrap_interval(values, seed=7)
    assert bootstrap_interval(values, seed=7) != bootstrap_interval(values, seed=8)
    with pytest.raises(ValueError, match="value 1 is nan"):
        bootstrap_interval([1.0, float("nan")])


def test_bootstrap_interval_by_hand():
    # two items 0 and 1: a resample's mean is 0, 0.5 or 1 with chance 1/4, 1/2, 1/4, so with 2,000
    # resamples the 2.5% and 97.5% percentiles are 0 and 1
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    # every resample's mean lies between the smallest and largest item; the median statistic
    # (vectorised or not) stays on the items
    low, high = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 10.0])
    assert 1.0 <= low < statistics_mean([1.0, 2.0, 3.0, 4.0, 10.0]) < high <= 10.0
    low, high = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 10.0], statistic=lambda v: float(np.median(v)))
    assert bootstrap_interval([1.0, 2.0, 3.0, 4.0, 10.0], statistic=np.median) == (low, high)
    assert {low, high} <= {1.0, 2.0, 3.0, 4.0, 10.0}


def statistics_mean(values):
    return sum(values) / len(values)


def test_efficiency_row_carries_intervals():
    row = efficiency_metrics(["a", "b", "c", "d", "e"], fixture())
    # per-task NET 2, 1, 6
    assert 1.0 <= row.NET_lo < row.NET < row.NET_hi <= 6.0
    assert (row.NET_lo, row.NET_hi) == bootstrap_interval([2.0, 1.0, 6.0])
    assert row.NTMU_lo <= row.NTMU <= row.NTMU_hi
    one = efficiency_metrics(["a"], fixture())
    assert one.NET_lo == one.NET_hi == 2.0  # one task: its value twice
    none = efficiency_metrics(["c"], fixture())
    assert none.NET is None and none.NET_lo is None and none.NMU_hi is None


def test_paired_comparison_by_hand():
    a = {"x": 1.0, "y": 2.0, "z": 4.0}
    b = {"x": 2.0, "y": 4.0, "z": 8.0, "only_b": 1.0}
    done = paired_comparison(a, b)
    # three tasks both have, every ratio 2: the exact two-sided signed-rank p is 2 * (1/2)^3
    assert done.n == 3 and done.median_ratio == 2.0 and done.wilcoxon_p == pytest.approx(0.25)
    same = paired_comparison(a, a)
    assert same.n == 3 and same.median_ratio == 1.0 and same.wilcoxon_p == 1.0
    empty = paired_comparison(a, {"w": 1.0})
    assert empty.n == 0 and math.isnan(empty.median_ratio)
    with pytest.raises(ValueError, match=r"b\['x'\]"):
        paired_comparison(a, {"x": 0.0})


def _experiment(name, shots, nets):
    params = {"shots": shots, "llm": {"model": "m", "backend": "local"}, "timing": {"backend": "wall"}}
    rows = [{"task_id": t, "status": "ok" if v else "wrong_answer", "NET": v} for t, v in nets.items()]
    return ExperimentResult(name, name, params, {"metrics/efficiency.json": {"efficiency": {"NET": shots + 1.0}}},
                            per_task={"metrics/net_ratios.json": {"net_ratios": rows}})


def test_paired_comparison_across_experiments_uses_tasks_both_passed():
    zero = _experiment("zero", 0, {"t1": 1.0, "t2": 2.0, "t3": 4.0, "t4": None, "t5": 3.0})
    one = _experiment("one", 1, {"t1": 0.5, "t2": 1.0, "t3": 2.0, "t4": 1.0, "t5": None})
    (a, b, done), = efficiency_paired_rows([one, zero])
    assert (a, b) == ("m", "rag1_and_m")  # table order: shots 0 first
    assert done.n == 3 and done.median_ratio == 0.5 and done.wilcoxon_p == pytest.approx(0.25)
    text = study_tables([zero, one], "efficiency")
    assert "Wilcoxon" in text and "0.500" in text and "0.250" in text
    # without per-task files there is nothing to pair, and the table still prints
    bare = [ExperimentResult(r.name, r.rev, r.params, r.metrics) for r in (zero, one)]
    assert efficiency_paired_rows(bare) == [] and "Wilcoxon" not in study_tables(bare, "efficiency")


def test_table_reads_per_task_files_at_each_rev(tmp_path):
    git = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True)
    git("init", "-q")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "net_ratios.json").write_text(json.dumps({"net_ratios": [{"task_id": "t", "NET": 1.5}]}))
    git("add", "metrics")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    rev = git("rev-parse", "HEAD").stdout.strip()
    (tmp_path / "metrics" / "net_ratios.json").write_text(json.dumps({"net_ratios": [{"task_id": "t", "NET": 2.5}]}))
    results = cli.with_per_task([ExperimentResult("c", rev, {}, {}), ExperimentResult("workspace", "workspace", {}, {}),
                                 ExperimentResult("gone", "0" * 40, {}, {})], tmp_path)
    nets = [r.per_task.get("metrics/net_ratios.json", {}).get("net_ratios", [{}])[0].get("NET") for r in results]
    assert nets == [1.5, 2.5, None]


def test_markdown_has_the_reference_row_beside_the_live_one():
    live = efficiency_metrics(["c"], fixture())  # a wrong answer: an honest empty row
    reference = efficiency_metrics(["a", "b", "d"], fixture())
    text = efficiency_markdown("rag3_and_smollm2-135m-instruct", live, "wall", reference=(reference_name(), reference))
    lines = [line for line in text.splitlines() if line.startswith("| rag3_and") or line.startswith("| leetcodedataset")]
    assert len(lines) == 4  # main table and totals, one line each per row
    live_cells = [c.strip() for c in lines[0].strip("|").split("|")]
    ref_cells = [c.strip() for c in lines[1].strip("|").split("|")]
    assert live_cells[2] == "-" and live_cells[-1] == "0.00"
    assert ref_cells[0] == "leetcodedataset-response (reference)"
    assert ref_cells[2] == f"{reference.NET:.2f}" and ref_cells[3] == f"[{reference.NET_lo:.2f}, {reference.NET_hi:.2f}]"


@pytest.mark.slow
def test_perfrepro_table_pairs_two_real_dvc_experiments(tmp_path, capsys):
    # a real DVC repo: the commit holds shots 0 and its per-task NET; `dvc exp save` keeps shots 1,
    # twice as fast on every task both passed. `perfrepro table` reads both revs' net_ratios.json.
    env = {**__import__("os").environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "t"], [cli.find_dvc(), "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, env=env)
    (tmp_path / "dvc.yaml").write_text("params:\n  - params.yaml\nmetrics:\n  - metrics/efficiency.json\n")
    (tmp_path / "metrics").mkdir()

    def write(shots, nets):
        params = {"shots": shots, "llm": {"model": "m", "backend": "local"}, "timing": {"backend": "wall"}}
        (tmp_path / "params.yaml").write_text(json.dumps(params))
        rows = [{"task_id": t, "status": "ok" if v else "wrong_answer", "NET": v} for t, v in nets.items()]
        (tmp_path / "metrics" / "net_ratios.json").write_text(json.dumps({"net_ratios": rows}))
        mean = sum(v for v in nets.values() if v) / sum(1 for v in nets.values() if v)
        (tmp_path / "metrics" / "efficiency.json").write_text(json.dumps({"efficiency": {"NET": mean}}))

    write(0, {"t1": 1.0, "t2": 2.0, "t3": 4.0, "t4": None})
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "shots 0"], cwd=tmp_path, check=True, capture_output=True)
    write(1, {"t1": 0.5, "t2": 1.0, "t3": 2.0, "t4": 3.0})
    saved = subprocess.run([cli.find_dvc(), "exp", "save", "-n", "shots1"], cwd=tmp_path, capture_output=True,
                           text=True, env=env)
    assert saved.returncode == 0, saved.stderr
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=tmp_path, check=True)  # workspace back to shots 0
    assert cli.main(["table", "--track", "efficiency", "-C", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| m ")]
    paired = [row for row in rows if len(row) == 8]  # the efficiency table's rows have 17 cells
    # workspace == commit (one row, shots 0) against the experiment (shots 1): 3 tasks both passed,
    # every ratio 0.5 (so the interval of the median is [0.5, 0.5]); p cannot be small with 3 tasks
    assert [row[:7] for row in paired] == [["m", "rag1_and_m", "3", "0.500", "[0.500, 0.500]", "0.250", "0"]], out
    assert "only 3 item(s) differ" in paired[0][7]


def test_reported_intervals_are_the_seeded_bootstrap_and_repeat_exactly():
    """An unseeded bootstrap would move the reported NET interval from one report to the next."""
    from perfrepro.metrics import efficiency

    values = [0.5, 1.0, 2.0, 4.0, 8.0]
    seeded = bootstrap_interval(values, confidence=0.95, seed=0)
    assert efficiency.interval(values) == efficiency.interval(values) == seeded
    assert efficiency.interval(values, seed=7) == bootstrap_interval(values, confidence=0.95, seed=7) != seeded
