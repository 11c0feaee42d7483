"""Exact values at every threshold of the metrics and verdicts (issue #15).

Each deliberate bug of the issue's mutation table that was caught by one test or none is pinned
here by at least two independent tests: MRR@k's hit at rank k vs k+1, NET's direction, %Opt's
1.10 threshold and its `>=`, NET>5 at exactly 5, the harness's nonce comparison. Plus k equal to
the corpus size, empty task lists, the split's edges. All values are hand-computed.
"""

from __future__ import annotations

import json
import math

import pytest

from perfrepro.datasets.base import DatasetError
from perfrepro.datasets.split import select_subset, split_by_problem
from perfrepro.execution.harness import read_record
from perfrepro.execution.sandbox import SandboxResult
from perfrepro.metrics import efficiency as eff
from perfrepro.metrics import optimization as opt
from perfrepro.records import Measurement
from perfrepro.retrieval import metrics as rm


# ------------------------------------------------------------------------------------------
# retrieval: rank k vs k+1, k equal to the corpus size, no queries

@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_every_per_query_metric_counts_rank_k_and_drops_rank_k_plus_1(k):
    assert rm.hit_at_k(k, k) == 1.0
    assert rm.reciprocal_rank(k, k) == pytest.approx(1.0 / k)
    assert rm.average_precision_at_k(k, k) == pytest.approx(1.0 / k)
    assert rm.ndcg_at_k(k, k) == pytest.approx(1.0 / math.log2(k + 1))
    for f in (rm.hit_at_k, rm.reciprocal_rank, rm.average_precision_at_k, rm.ndcg_at_k):
        assert f(k + 1, k) == 0.0, f.__name__
        assert f(None, k) == 0.0, f.__name__


def test_mrr_at_k_mean_over_queries_at_the_boundary():
    # ranks 2 (in), 3 (exactly k: in), 4 (k+1: out), None: MRR@3 = (1/2 + 1/3) / 4
    means = rm.mean_metrics([2, 3, 4, None], ks=[3])
    assert means["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 4)
    assert means["map@3"] == pytest.approx((1 / 2 + 1 / 3) / 4)
    assert means["hit@3"] == pytest.approx(2 / 4)
    assert means["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 4)
    # rank 1 alone at k=1: everything is 1
    assert rm.mean_metrics([1], ks=[1]) == {"hit@1": 1.0, "mrr@1": 1.0, "map@1": 1.0, "ndcg@1": 1.0}


def test_k_equal_to_the_corpus_size_finds_the_last_document():
    doc_ids = ["d0", "d1", "d2", "d3"]
    scores = [0.9, 0.8, 0.7, 0.1]  # d3, the relevant one, last: rank 4 = corpus size
    rank = rm.rank_from_scores(scores, doc_ids, "d3")
    assert rank == len(doc_ids)
    means = rm.mean_metrics([rank], ks=[len(doc_ids) - 1, len(doc_ids)])
    assert means["hit@3"] == 0.0 and means["mrr@3"] == 0.0
    assert means["hit@4"] == 1.0
    assert means["mrr@4"] == pytest.approx(0.25)
    assert means["ndcg@4"] == pytest.approx(1 / math.log2(5))


def test_rank_from_scores_counts_only_strictly_higher_and_smaller_id_ties():
    doc_ids = ["a", "b", "c", "d"]
    assert rm.rank_from_scores([0.5, 0.5, 0.5, 0.5], doc_ids, "a") == 1
    assert rm.rank_from_scores([0.5, 0.5, 0.5, 0.5], doc_ids, "c") == 3
    assert rm.rank_from_scores([0.1, 0.9, 0.5, 0.5], doc_ids, "d") == 3  # b higher, c ties first
    assert rm.rank_from_scores([0.9, 0.1, 0.2, 0.3], doc_ids, "a") == 1
    assert rm.rank_of(["x", "y", "z"], "z") == 3
    assert rm.rank_of(["x", "y", "z"], "x") == 1
    assert rm.rank_of([], "x") is None


def test_no_queries_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="no queries"):
        rm.mean_metrics([], ks=[1])


# ------------------------------------------------------------------------------------------
# efficiency: NET's direction, NET>5 / NMU>5 / TMU>5 at exactly 5, no tasks


def m(task, role, status="ok", t=None, mu=None, tmu=None, unit="ms", sample=0):
    return Measurement(task_id=task, role=role, backend="wall", status=status, execution_time=t,
                       time_unit=unit, peak_memory_mb=tmu, memory_usage=mu, sample=sample)


def pair(task, t, t_canon, mu=1.0, mu_canon=1.0, tmu=1.0, tmu_canon=1.0):
    return [m(task, "canonical", t=t_canon, mu=mu_canon, tmu=tmu_canon), m(task, "completion", t=t, mu=mu, tmu=tmu)]


def test_net_is_completion_over_canonical_not_the_inverse():
    # a: completion 4x slower; b: completion 2x faster. NET = mean(4, 0.5) = 2.25, the inverse 1.25
    row = eff.efficiency_metrics(["a", "b"], pair("a", 8.0, 2.0) + pair("b", 1.0, 2.0))
    assert row.NET == pytest.approx(2.25)
    assert row.Max_NET == pytest.approx(4.0)
    assert row.NET_total == pytest.approx((8.0 + 1.0) / (2.0 + 2.0))
    assert row.ET == pytest.approx(4.5)


def test_nmu_and_ntmu_are_completion_over_canonical_too():
    row = eff.efficiency_metrics(["a"], pair("a", 1.0, 1.0, mu=6.0, mu_canon=2.0, tmu=3.0, tmu_canon=12.0))
    assert row.NET == 1.0
    assert row.NMU == pytest.approx(3.0)
    assert row.NTMU == pytest.approx(0.25)
    assert row.MU == 6.0 and row.TMU == 3.0 and row.Max_TMU == 3.0
    assert eff.normalized(6.0, 2.0, 1e-9) == pytest.approx(3.0)
    assert eff.normalized(2.0, 6.0, 1e-9) == pytest.approx(1 / 3)


def test_net_of_exactly_5_is_not_above_5():
    # ratios 5 (exactly: not counted), 5.5 (counted), 1: NET>5 = 1/3; NMU>5 likewise
    data = (pair("a", 5.0, 1.0, mu=5.0, mu_canon=1.0) + pair("b", 11.0, 2.0, mu=11.0, mu_canon=2.0)
            + pair("c", 1.0, 1.0))
    row = eff.efficiency_metrics(["a", "b", "c"], data)
    assert row.NET_gt5 == pytest.approx(100 / 3)
    assert row.NMU_gt5 == pytest.approx(100 / 3)
    assert row.Max_NET == pytest.approx(5.5)


def test_only_a_ratio_of_exactly_5_gives_zero_above_5():
    row = eff.efficiency_metrics(["a"], pair("a", 10.0, 2.0, mu=10.0, mu_canon=2.0))
    assert row.NET == 5.0
    assert row.NET_gt5 == 0.0
    assert row.NMU_gt5 == 0.0
    row = eff.efficiency_metrics(["a"], pair("a", 10.000001, 2.0, mu=10.000001, mu_canon=2.0))
    assert row.NET_gt5 == 100.0
    assert row.NMU_gt5 == 100.0


def test_tmu_above_5_mb_at_exactly_5_mb():
    data = pair("a", 1.0, 1.0, tmu=5.0, tmu_canon=1.0) + pair("b", 1.0, 1.0, tmu=5.01, tmu_canon=1.0)
    row = eff.efficiency_metrics(["a", "b"], data)
    assert row.TMU_gt5 == 50.0
    assert row.Max_TMU == pytest.approx(5.01)


def test_an_empty_task_list_gives_an_empty_row():
    row = eff.efficiency_metrics([], [])
    assert row.tasks == 0 and row.passed == 0 and row.normalized == 0
    assert row.pass1 == 0.0
    for name in ("ET", "NET", "NET_lo", "NET_hi", "Max_NET", "NET_gt5", "MU", "NMU", "Max_NMU", "NMU_gt5",
                 "TMU", "NTMU", "Max_TMU", "TMU_gt5", "NET_total", "NMU_total", "NTMU_total"):
        assert getattr(row, name) is None, name
    assert row.status_counts == {}


def test_tasks_without_any_passing_completion_count_in_pass1_only():
    data = [m("a", "canonical", t=1.0, mu=1.0, tmu=1.0), m("a", "completion", status="timeout")]
    row = eff.efficiency_metrics(["a", "b"], data)
    assert row.tasks == 2 and row.passed == 0 and row.pass1 == 0.0
    assert row.NET is None and row.NET_gt5 is None
    assert row.status_counts == {"no_code": 1, "timeout": 1}
    row = eff.efficiency_metrics(["a", "b"], data + pair("b", 3.0, 1.0))
    assert row.pass1 == 50.0 and row.NET == pytest.approx(3.0) and row.normalized == 1


def test_failed_canonical_leaves_the_task_out_of_the_ratios_and_is_counted():
    data = [m("a", "canonical", status="crash"), m("a", "completion", t=2.0, mu=1.0, tmu=1.0)] + pair("b", 2.0, 1.0)
    row = eff.efficiency_metrics(["a", "b"], data)
    assert row.canonical_failed == 1
    assert row.normalized == 1 and row.passed == 2 and row.pass1 == 100.0
    assert row.NET == pytest.approx(2.0)


def test_the_near_zero_floor_guards_zero_and_negative_canonicals():
    assert eff.normalized(2e-6, 0.0, 1e-6) == pytest.approx(2.0)
    assert eff.normalized(2e-6, -5.0, 1e-6) == pytest.approx(2.0)
    assert eff.normalized(0.0, 0.0, 1e-6) == 1.0
    assert eff.normalized(3.0, 1.5, 1e-6) == 2.0


def test_percent_and_mean_of_nothing():
    assert eff.percent([]) == 0.0
    assert eff.percent([True, False, False, False]) == 25.0
    assert eff.mean([]) is None
    assert eff.mean([1.0, 2.0]) == 1.5


# ------------------------------------------------------------------------------------------
# optimization: Speedup exactly 1.10, %Opt's threshold, max(1, .), eff@k at k = n, no tasks


def lv(task, level, role, time, status="ok", sample=0):
    return Measurement(task_id=opt.level_key(task, level), role=role, backend="wall", status=status,
                       execution_time=time if status == "ok" else None, time_unit="ms",
                       peak_memory_mb=None, memory_usage=None, sample=sample)


def outcomes_for(speedup_pairs):
    """One task per (t_slow, t_generated) at one level; the reference is as slow as the slow program."""
    data = []
    for i, (t_slow, t_gen) in enumerate(speedup_pairs):
        task = f"T/{i}"
        data += [lv(task, 1, "slow", t_slow), lv(task, 1, "reference", t_slow), lv(task, 1, "generated", t_gen)]
    outcomes, excluded = opt.task_outcomes(data, samples=1)
    assert excluded == []
    return outcomes


def test_a_speedup_of_exactly_1_10_counts_as_optimized():
    assert opt.task_speedup(11.0, 10.0, True) == 1.1
    row = opt._row("generated", [1.10], [True], [0.0])
    assert row.pct_opt == 100.0
    row = opt._row("generated", [1.10, 1.0999999, 1.2, 1.05], [True, True, True, True], [0.0] * 4)
    assert row.pct_opt == 50.0


def test_pct_opt_through_the_outcomes_at_and_around_1_10():
    # speedups 1.10 exactly (11/10), 1.05 (below: not 1.0's threshold), 2.0, and 0.5 -> max(1, .) = 1
    outcomes = outcomes_for([(11.0, 10.0), (10.5, 10.0), (20.0, 10.0), (5.0, 10.0)])
    assert [o.speedups[0] for o in outcomes] == [pytest.approx(1.1), pytest.approx(1.05), 2.0, 1.0]
    generated = opt.summarize(outcomes, samples=1)[0]
    assert generated.label == "generated"
    assert generated.pct_opt == 50.0
    assert generated.pct_correct == 100.0
    assert generated.speedup == pytest.approx((1.1 + 1.05 + 2.0 + 1.0) / 4)
    metrics = opt.optimization_metrics(opt.summarize(outcomes, samples=1), excluded=0)
    assert metrics["optimization.generated.pct_opt"] == 50.0
    assert metrics["optimization.reference.pct_opt"] == 0.0  # the reference is the slow program here
    assert metrics["optimization.slow.speedup"] == 1.0


def test_a_speedup_just_above_1_but_below_1_10_is_not_optimized():
    assert opt._row("generated", [1.0, 1.01, 1.09], [True] * 3, [0.0] * 3).pct_opt == 0.0
    assert opt._row("generated", [1.11], [True], [0.0]).pct_opt == 100.0


def test_an_incorrect_program_is_never_optimized_and_has_speedup_1():
    assert opt.task_speedup(100.0, 1.0, False) == 1.0
    assert opt.task_speedup(100.0, None, True) == 1.0
    assert opt.task_speedup(None, 1.0, True) == 1.0
    assert opt.task_speedup(100.0, 0.0, True) == 1.0
    assert opt.task_speedup(1.0, 100.0, True) == 1.0  # slower: max(1, .)
    assert opt._row("generated", [3.0], [False], [0.0]).pct_opt == 0.0
    data = [lv("T/0", 1, "slow", 10.0), lv("T/0", 1, "generated", 1.0, status="wrong_answer")]
    (outcome,), _ = opt.task_outcomes(data, samples=1)
    assert outcome.speedups == (1.0,) and outcome.correct == (False,)


def test_no_tasks_gives_a_neutral_row():
    row = opt._row("generated", [], [], [])
    assert (row.tasks, row.speedup, row.pct_opt, row.pct_correct, row.eff) == (0, 1.0, 0.0, 0.0, 0.0)
    rows = opt.summarize([], samples=1)
    assert [r.label for r in rows] == ["generated", "reference", "slow"]
    assert all(r.tasks == 0 for r in rows)
    assert opt.task_outcomes([], samples=1) == ([], [])


def test_a_task_whose_slow_program_passes_no_level_is_left_out_and_counted():
    data = [lv("T/0", 1, "slow", None, status="timeout"), lv("T/0", 1, "generated", 1.0)] + \
           [lv("T/1", 1, "slow", 4.0), lv("T/1", 1, "generated", 2.0)]
    outcomes, excluded = opt.task_outcomes(data, samples=1)
    assert excluded == ["T/0"]
    assert [o.task_id for o in outcomes] == ["T/1"]
    assert outcomes[0].speedups == (2.0,)


def test_eff_at_k_with_k_equal_to_n_is_the_best_score_and_k_above_n_is_refused():
    scores = [0.2, 0.9, 0.5]
    assert opt.eff_at_k(scores, 3) == pytest.approx(0.9)
    assert opt.eff_at_k(scores, 1) == pytest.approx(sum(scores) / 3)
    with pytest.raises(ValueError):
        opt.eff_at_k(scores, 4)
    with pytest.raises(ValueError):
        opt.eff_at_k(scores, 0)


def test_calc_eff_at_its_edges():
    # timeout = 2 * ref: elapsed == ref -> 1, elapsed == timeout -> 0, beyond -> 0 (not negative)
    assert opt.calc_eff(1.0, 1.0, 2.0) == 1.0
    assert opt.calc_eff(2.0, 1.0, 2.0) == 0.0
    assert opt.calc_eff(3.0, 1.0, 2.0) == 0.0
    assert opt.calc_eff(1.5, 1.0, 2.0) == 0.5
    assert opt.calc_eff(None, 1.0, 2.0) == 0.0
    assert opt.calc_eff(0.5, 1.0, 2.0) == 1.5  # faster than the reference scores above 1


def test_level_keys_round_trip_and_refuse_ids_without_a_level():
    assert opt.split_level_key(opt.level_key("HumanEval/10", 3)) == ("HumanEval/10", 3)
    assert opt.split_level_key("a@Lb@L2") == ("a@Lb", 2)
    for bad in ("HumanEval/1", "HumanEval/1@L", "HumanEval/1@Lx"):
        with pytest.raises(ValueError):
            opt.split_level_key(bad)


# ------------------------------------------------------------------------------------------
# the harness's verdict: only a record carrying this run's nonce passes

NONCE = "ab" * 16


def sandbox_ok(*rows, status="ok", stderr=""):
    channel = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    return SandboxResult(status=status, exit_code=0 if status == "ok" else 1, signal=None, stdout_tail="",
                         stderr_tail=stderr, wall_s=0.1, error=None if status == "ok" else f"{status}!",
                         channel=channel)


def ok_row(nonce=NONCE, **fields):
    return {"nonce": nonce, "status": "ok", "n": 4, "windows": [[1.0, 3.0], [5.0, 6.0]], "cpu": [1.5, 0.9],
            "first_s": 0.25, **fields}


def test_a_nonce_bearing_ok_record_passes_with_its_fastest_window():
    record = read_record(sandbox_ok(ok_row()), NONCE)
    assert record.passed and record.status == "ok" and record.error is None
    assert (record.t0, record.t1, record.n) == (5.0, 6.0, 4)
    assert record.seconds_per_run == pytest.approx(0.25)
    assert record.windows == ((1.0, 3.0), (5.0, 6.0))
    assert record.cpu_s == (1.5, 0.9)
    assert record.first_s == 0.25


def test_a_record_with_another_nonce_does_not_pass():
    record = read_record(sandbox_ok(ok_row(nonce="cd" * 16)), NONCE)
    assert not record.passed and record.status == "crash"
    assert "exited before the harness reported" in record.error


def test_a_forged_record_beside_the_real_one_is_ignored_not_counted():
    # the program prints its own "ok" record with a guessed nonce: the real wrong_answer stands
    forged = ok_row(nonce="0" * 32)
    real = {"nonce": NONCE, "status": "wrong_answer", "error": "expected 3, got 4"}
    record = read_record(sandbox_ok(forged, real), NONCE)
    assert record.status == "wrong_answer" and record.error == "expected 3, got 4"
    record = read_record(sandbox_ok(real, forged), NONCE)
    assert record.status == "wrong_answer"


def test_exit_0_without_a_record_or_with_two_records_is_a_crash():
    assert read_record(sandbox_ok(), NONCE).status == "crash"
    two = read_record(sandbox_ok(ok_row(), ok_row()), NONCE)
    assert two.status == "crash" and "more than one" in two.error
    # junk lines and non-dict JSON on the channel are skipped, not fatal
    result = sandbox_ok(ok_row())
    result = SandboxResult(**{**result.__dict__, "channel": b"not json\n[1, 2]\n" + result.channel})
    assert read_record(result, NONCE).passed


def test_the_sandbox_status_wins_and_unknown_or_malformed_records_crash():
    record = read_record(sandbox_ok(ok_row(), status="timeout", stderr="line1\nline2"), NONCE)
    assert record.status == "timeout" and record.error.startswith("timeout!") and "line2" in record.error
    assert read_record(sandbox_ok(ok_row(status="fine")), NONCE).status == "crash"
    for status in ("wrong_answer", "memory", "crash"):
        record = read_record(sandbox_ok({"nonce": NONCE, "status": status, "error": "why"}), NONCE)
        assert (record.status, record.error) == (status, "why")
    malformed = read_record(sandbox_ok(ok_row(windows=[["x", 1.0]])), NONCE)
    assert malformed.status == "crash" and "malformed" in malformed.error
    no_windows = read_record(sandbox_ok(ok_row(windows=[], cpu=None, first_s=None)), NONCE)
    assert no_windows.passed and no_windows.t0 is None and no_windows.seconds_per_run is None


# ------------------------------------------------------------------------------------------
# the split: edges of test_fraction and of the subset size


class Pair:
    def __init__(self, pid, n):
        self.id, self.n = pid, n

    def __repr__(self):
        return f"{self.id}#{self.n}"


def pairs(problems=10, per=2):
    return [Pair(f"p{i:02d}", j) for i in range(problems) for j in range(per)]


def test_no_problem_is_on_both_sides_and_each_side_keeps_input_order():
    data = pairs()
    train, test = split_by_problem(data, 0.3, seed=7)
    assert {p.id for p in train}.isdisjoint({p.id for p in test})
    assert len({p.id for p in test}) == 3 and len(train) + len(test) == len(data)
    assert train == [p for p in data if p in train] and test == [p for p in data if p in test]
    # any order in, same split out; another seed, another split
    again = split_by_problem(list(reversed(data)), 0.3, seed=7)
    assert {p.id for p in again[1]} == {p.id for p in test}
    assert any({p.id for p in split_by_problem(data, 0.3, seed=s)[1]} != {p.id for p in test} for s in range(8, 12))


def test_split_keeps_at_least_one_problem_on_each_side():
    data = pairs(problems=3)
    assert len({p.id for p in split_by_problem(data, 0.01, seed=0)[1]}) == 1
    assert len({p.id for p in split_by_problem(data, 0.99, seed=0)[0]}) == 1
    two = pairs(problems=2)
    train, test = split_by_problem(two, 0.5, seed=0)
    assert len({p.id for p in train}) == 1 and len({p.id for p in test}) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_refuses_a_fraction_outside_0_1(fraction):
    with pytest.raises(DatasetError, match="test_fraction"):
        split_by_problem(pairs(), fraction, seed=0)


def test_split_refuses_fewer_than_two_problems():
    with pytest.raises(DatasetError, match="1 problem"):
        split_by_problem(pairs(problems=1, per=3), 0.5, seed=0)
    with pytest.raises(DatasetError, match="0 problem"):
        split_by_problem([], 0.5, seed=0)


def test_subset_at_its_edges():
    items = pairs(problems=5, per=1)
    assert select_subset(items, None, seed=0) == items
    assert select_subset(items, 5, seed=0) == items  # limit equal to the size: all, in order
    assert select_subset(items, 9, seed=0) == items
    four = select_subset(items, 4, seed=0)
    assert len(four) == 4 and four == [p for p in items if p in four]
    assert select_subset(list(reversed(items)), 4, seed=0) == list(reversed(four))
    assert len(select_subset(items, 1, seed=3)) == 1
    for bad in (0, -1):
        with pytest.raises(DatasetError, match="limit"):
            select_subset(items, bad, seed=0)


# ------------------------------------------------------------------------------------------
# efficiency: what the surviving mutants of the first mutation run showed untested


def test_the_row_names_its_unit_and_falls_back_to_ms():
    assert eff.efficiency_metrics([], []).time_unit == "ms"
    assert eff.efficiency_metrics(["a"], [m("a", "canonical", t=1.0, mu=1.0, tmu=1.0), m("a", "completion", status="crash")]).time_unit == "ms"
    data = [m("a", "canonical", t=100.0, mu=1.0, tmu=1.0, unit="instructions"),
            m("a", "completion", t=300.0, mu=1.0, tmu=1.0, unit="instructions")]
    row = eff.efficiency_metrics(["a"], data)
    assert row.time_unit == "instructions" and row.NET == 3.0
    assert row.as_dict()["time_unit"] == "instructions" and row.as_dict()["NET"] == 3.0


def test_an_unknown_unit_uses_the_default_floors_and_ms_its_own():
    # "cycles" is not in FLOORS: the default floors (1e-12) apply, no crash
    row = eff.efficiency_metrics(["a"], [m("a", "canonical", t=0.0, mu=1.0, tmu=1.0, unit="cycles"),
                                         m("a", "completion", t=2e-9, mu=1.0, tmu=1.0, unit="cycles")])
    assert row.NET == pytest.approx(2e-9 / 1e-12) and row.NET_total == pytest.approx(2e-9 / 1e-12)
    # ms: a zero canonical time is held at 1e-6 ms, in the per-task ratio and in the ratio of totals
    row = eff.efficiency_metrics(["a"], [m("a", "canonical", t=0.0, mu=1.0, tmu=1.0), m("a", "completion", t=2e-6, mu=1.0, tmu=1.0)])
    assert row.NET == pytest.approx(2.0) and row.NET_total == pytest.approx(2.0)


def test_every_interval_is_seeded_and_brackets_its_mean():
    data = pair("a", 2.0, 1.0, mu=3.0, mu_canon=1.0, tmu=2.0, tmu_canon=1.0) + \
        pair("b", 4.0, 1.0, mu=1.0, mu_canon=1.0, tmu=3.0, tmu_canon=1.0) + pair("c", 1.0, 1.0, mu=2.0, mu_canon=1.0)
    row = eff.efficiency_metrics(["a", "b", "c"], data)
    for name in ("NET", "NMU", "NTMU"):
        low, value, high = getattr(row, f"{name}_lo"), getattr(row, name), getattr(row, f"{name}_hi")
        assert low is not None and low <= value <= high, name
        assert low < high, name  # three different ratios: a real interval
    assert row == eff.efficiency_metrics(["a", "b", "c"], data)  # seeded: the same interval again
    assert eff.interval([2.0, 4.0, 1.0]) == eff.interval([2.0, 4.0, 1.0]) == (row.NET_lo, row.NET_hi)
    assert row.NTMU_total == pytest.approx((2.0 + 3.0 + 1.0) / 3.0)
    assert row.NMU_total == pytest.approx((3.0 + 1.0 + 2.0) / 3.0)


def test_the_row_of_another_role_and_the_ratios_carry_their_task():
    data = pair("a", 2.0, 1.0) + [m("a", "reference", t=0.5, mu=1.0, tmu=1.0), m("b", "canonical", t=1.0, mu=1.0, tmu=1.0)]
    row = eff.efficiency_metrics(["a", "b"], data, role="reference")
    assert row.NET == 0.5 and row.passed == 1 and row.status_counts == {"no_code": 1, "ok": 1}
    ratios, _, _ = eff.task_ratios(["b", "a"], data)
    assert [r.task_id for r in ratios] == ["a"] and ratios[0].net == 2.0


def test_pass_at_1_reads_sample_0_whatever_the_order():
    data = [m("a", "canonical", t=1.0, mu=1.0, tmu=1.0), m("a", "completion", status="wrong_answer", sample=1),
            m("a", "completion", t=3.0, mu=1.0, tmu=1.0, sample=0), m("a", "completion", t=9.0, mu=1.0, tmu=1.0, sample=2)]
    row = eff.efficiency_metrics(["a"], data)
    assert row.pass1 == 100.0 and row.NET == 3.0


# ------------------------------------------------------------------------------------------
# optimization: what the surviving mutants of the first mutation run showed untested


def test_an_empty_row_keeps_its_label_and_k():
    row = opt._row("generated Best@4", [], [], [], k=4)
    assert row == opt.RowSummary("generated Best@4", 0, 1.0, 0.0, 0.0, 0.0, 4)


def test_row_interval_is_seeded_and_metrics_round_as_documented():
    speedups, correct, effs = [1.0, 1.2345678, 3.0], [True, True, False], [0.1, 0.2, 0.3333333]
    row = opt._row("generated", speedups, correct, effs)
    assert row == opt._row("generated", speedups, correct, effs)  # seeded bootstrap
    assert row.speedup_lo < row.speedup < row.speedup_hi
    metrics = opt.optimization_metrics([row], excluded=2)
    assert metrics["optimization.tasks_without_slow_baseline"] == 2
    assert metrics["optimization.generated.tasks"] == 3
    assert metrics["optimization.generated.speedup"] == round((1.0 + 1.2345678 + 3.0) / 3, 4)
    assert metrics["optimization.generated.pct_opt"] == 33.33  # 1.2345678 (3.0 is incorrect)
    assert metrics["optimization.generated.pct_correct"] == 66.67
    assert metrics["optimization.generated.eff_at_1"] == round((0.1 + 0.2 + 0.3333333) / 3, 4)
    assert metrics["optimization.generated.speedup_lo"] == round(row.speedup_lo, 4)
    assert metrics["optimization.generated.speedup_hi"] == round(row.speedup_hi, 4)
    best = opt.optimization_metrics([opt._row("generated Best@2", [2.0], [True], [0.5], k=2)], excluded=0)
    assert best["optimization.generated.best_at_2.eff_at_2"] == 0.5


def test_outcomes_in_natural_order_with_their_times_and_unit():
    data = []
    for task, t_gen in (("T/10", 5.0), ("T/9", 2.0)):
        data += [lv(task, 1, "slow", 4.0), lv(task, 2, "slow", 6.0), lv(task, 1, "reference", 1.0), lv(task, 2, "reference", 1.0),
                 lv(task, 1, "generated", t_gen), lv(task, 2, "generated", t_gen)]
    outcomes, _ = opt.task_outcomes(data, samples=1)
    assert [o.task_id for o in outcomes] == ["T/9", "T/10"]
    nine = outcomes[0]
    assert (nine.t_slow, nine.t_reference, nine.t_generated, nine.time_unit) == (10.0, 2.0, (4.0,), "ms")
    assert nine.comparable_levels == (1, 2) and nine.speedups == (2.5,) and nine.reference_speedup == 5.0
    assert nine.slow_correct and nine.slow_eff == 0.0  # twice the reference's time or more scores 0


def test_task_speedup_below_one_time_unit():
    assert opt.task_speedup(1.0, 0.5, True) == 2.0
    assert opt.task_speedup(0.3, 0.1, True) == pytest.approx(3.0)


def test_enamel_levels_without_weight_or_reference_are_skipped_not_the_rest():
    # level 0 has weight 0 and comes first: skipped, level 1 still counts
    assert opt.enamel_task_eff({0: 9.0, 1: 1.0}, {0: 1.0, 1: 1.0}, True) == 1.0
    assert opt.enamel_task_eff({1: 1.0, 4: 9.0}, {1: 1.0, 4: 1.0}, True) == 1.0  # level 4: no weight
    assert opt.enamel_task_eff({1: 1.0, 2: 0.0}, {1: 1.0, 2: 0.0}, True) == 1.0  # a zero reference is skipped
    assert opt.enamel_task_eff({1: 1.0}, {1: 1.0}, True, weights={1: 1.0}) == 1.0
    assert opt.enamel_task_eff({1: 1.0}, {1: 1.0}, True, weights={1: 0.5}) == 1.0
    assert opt.enamel_task_eff({}, {}, True) == 0.0
    assert opt.enamel_task_eff({1: 1.5, 2: 2.0, 3: 1.0}, {1: 1.0, 2: 1.0, 3: 1.0}, True) == pytest.approx((3 * 0.5 + 0 + 4 * 1) / 10)
    assert opt.enamel_task_eff({1: 1.0}, {1: 1.0}, False) == 0.0


def test_best_at_k_rows_read_every_sample():
    data = [lv("T/0", 1, "slow", 4.0), lv("T/0", 1, "reference", 2.0),
            lv("T/0", 1, "generated", 4.0, sample=0), lv("T/0", 1, "generated", 1.0, sample=1)]
    outcomes, _ = opt.task_outcomes(data, samples=2)
    assert outcomes[0].speedups == (1.0, 4.0) and outcomes[0].correct == (True, True)
    rows = opt.summarize(outcomes, samples=2)
    assert [r.label for r in rows] == ["generated", "generated Best@2", "reference", "slow"]
    assert rows[0].speedup == 1.0 and rows[1].speedup == 4.0 and rows[1].k == 2
    assert rows[0].eff == outcomes[0].effs[0] == 0.0 and rows[1].eff == pytest.approx(1.5)
    wrong_first = [lv("T/0", 1, "slow", 4.0), lv("T/0", 1, "generated", 1.0, status="wrong_answer", sample=0),
                   lv("T/0", 1, "generated", 1.0, sample=1)]
    rows = opt.summarize(opt.task_outcomes(wrong_first, samples=2)[0], samples=2)
    assert rows[0].pct_correct == 0.0 and rows[1].pct_correct == 100.0


# ------------------------------------------------------------------------------------------
# optimization: what the second mutation run left alive (per-model rows, interval rounding,
# programs with missing levels)


def test_model_rows_keep_only_the_generated_rows_with_their_suffix_and_values():
    # T/1: slow 6+6 = 12, reference 3+3; samples 4+4 (12/8 = 1.5), 2+2 (3.0), wrong.
    # T/2: slow 5+5 = 10, reference 5+5; samples wrong, 10+10 (max(1, 0.5) = 1.0), 2.5+2.5 (2.0).
    data = []
    for level in (1, 2):
        data += [lv("T/1", level, "slow", 6.0), lv("T/1", level, "reference", 3.0),
                 lv("T/1", level, "generated", 4.0, sample=0), lv("T/1", level, "generated", 2.0, sample=1),
                 lv("T/1", level, "generated", None, "wrong_answer", sample=2),
                 lv("T/2", level, "slow", 5.0), lv("T/2", level, "reference", 5.0),
                 lv("T/2", level, "generated", None, "wrong_answer", sample=0),
                 lv("T/2", level, "generated", 10.0, sample=1), lv("T/2", level, "generated", 2.5, sample=2)]
    outcomes, _ = opt.task_outcomes(data, samples=3)
    first, best = opt.model_rows(outcomes, 3, "base_plain", "smollm2 q8")  # no reference or slow row
    assert first.label == "base_plain (smollm2 q8)" and best.label == "base_plain (smollm2 q8) Best@3"
    assert (first.k, first.tasks, first.speedup, first.pct_opt, first.pct_correct) == (1, 2, 1.25, 50.0, 50.0)
    assert (best.k, best.tasks, best.speedup, best.pct_opt, best.pct_correct) == (3, 2, 2.5, 100.0, 100.0)
    # ENAMEL (timeout = 2 x reference): T/1 sample 0 (6-4)/3 = 2/3, best (6-2)/3 = 4/3; T/2 sample 0
    # wrong = 0, best (10-2.5)/5 = 1.5. eff@1 = (2/3 + 0) / 2; eff@3 = max per task = (4/3 + 1.5) / 2
    assert first.eff == pytest.approx(1 / 3) and best.eff == pytest.approx(17 / 12)
    (only,) = opt.model_rows(outcomes, 1, "finetuned", "smollm2+lora")
    assert only.label == "finetuned (smollm2+lora)" and (only.k, only.speedup) == (1, 1.25)


def test_speedup_interval_keys_round_to_4_places_and_skip_the_slow_row_and_rows_without_one():
    rows = [
        opt.RowSummary("generated", 3, 1.23456789, 33.333333, 66.666667, 0.123456789,
                       speedup_lo=1.01234567, speedup_hi=1.98765432),
        opt.RowSummary("generated Best@4", 3, 2.0, 50.0, 100.0, 0.5, k=4, speedup_lo=1.87654321, speedup_hi=2.45678912),
        opt.RowSummary("reference", 0, 1.0, 0.0, 0.0, 0.0),  # no tasks: no interval
        opt.RowSummary("slow", 3, 1.0, 0.0, 100.0, 0.0, speedup_lo=1.0, speedup_hi=1.0),
    ]
    assert opt.optimization_metrics(rows, excluded=1) == {
        "optimization.tasks_without_slow_baseline": 1,
        "optimization.generated.tasks": 3,
        "optimization.generated.speedup": 1.2346,
        "optimization.generated.pct_opt": 33.33,
        "optimization.generated.pct_correct": 66.67,
        "optimization.generated.eff_at_1": 0.1235,
        "optimization.generated.speedup_lo": 1.0123,
        "optimization.generated.speedup_hi": 1.9877,
        "optimization.generated.best_at_4.tasks": 3,
        "optimization.generated.best_at_4.speedup": 2.0,
        "optimization.generated.best_at_4.pct_opt": 50.0,
        "optimization.generated.best_at_4.pct_correct": 100.0,
        "optimization.generated.best_at_4.eff_at_4": 0.5,
        "optimization.generated.best_at_4.speedup_lo": 1.8765,
        "optimization.generated.best_at_4.speedup_hi": 2.4568,
        "optimization.reference.tasks": 0,
        "optimization.reference.speedup": 1.0,
        "optimization.reference.pct_opt": 0.0,
        "optimization.reference.pct_correct": 0.0,
        "optimization.reference.eff_at_1": 0.0,
        "optimization.slow.tasks": 3,
        "optimization.slow.speedup": 1.0,
        "optimization.slow.pct_opt": 0.0,
        "optimization.slow.pct_correct": 100.0,
        "optimization.slow.eff_at_1": 0.0,
    }


def test_a_program_without_any_measurement_is_wrong_at_every_expected_level():
    assert opt._result(None, [1, 2, 3]) == opt.ProgramResult({1: None, 2: None, 3: None}, False)
    assert opt._result({}, [2]) == opt.ProgramResult({2: None}, False)


def test_a_missing_or_failed_level_is_none_and_makes_the_program_wrong():
    complete = {1: lv("T/0", 1, "generated", 2.0), 2: lv("T/0", 2, "generated", 3.0)}
    assert opt._result(complete, [1, 2]) == opt.ProgramResult({1: 2.0, 2: 3.0}, True)
    level_2_missing = {1: lv("T/0", 1, "generated", 2.0), 3: lv("T/0", 3, "generated", 4.0)}
    assert opt._result(level_2_missing, [1, 2, 3]) == opt.ProgramResult({1: 2.0, 2: None, 3: 4.0}, False)
    # a failed level is None even when its record carries a time (Measurement does not forbid it)
    timed_out = Measurement(task_id=opt.level_key("T/0", 2), role="generated", backend="wall", status="timeout",
                            execution_time=20.0, time_unit="ms", peak_memory_mb=None, memory_usage=None)
    assert opt._result({1: complete[1], 2: timed_out}, [1, 2]) == opt.ProgramResult({1: 2.0, 2: None}, False)


def test_outcomes_of_a_sample_missing_a_level_or_missing_entirely():
    # slow 4+4+4 on three levels; sample 0 lost level 2, sample 1 was never measured
    data = [lv("T/0", level, "slow", 4.0) for level in (1, 2, 3)] + \
        [lv("T/0", level, "reference", 1.0) for level in (1, 2, 3)] + \
        [lv("T/0", level, "generated", 1.0, sample=0) for level in (1, 3)]
    (outcome,), excluded = opt.task_outcomes(data, samples=2)
    assert excluded == [] and outcome.comparable_levels == (1, 2, 3)
    assert outcome.correct == (False, False) and outcome.speedups == (1.0, 1.0) and outcome.effs == (0.0, 0.0)
    assert outcome.t_generated == (None, None) and outcome.t_slow == 12.0
    first, best = opt.summarize([outcome], samples=2)[:2]
    assert (first.pct_correct, best.pct_correct, best.speedup) == (0.0, 0.0, 1.0)


def test_invalid_utf8_on_a_junk_line_does_not_hide_the_record():
    result = sandbox_ok(ok_row())
    result = SandboxResult(**{**result.__dict__, "channel": b"\xff\xfe junk \xc3\x28\n" + result.channel})
    record = read_record(result, NONCE)
    assert record.passed and record.n == 4


def test_an_ok_record_without_n_counts_zero_runs():
    row = ok_row()
    del row["n"]
    record = read_record(sandbox_ok(row), NONCE)
    assert record.passed and record.n == 0
