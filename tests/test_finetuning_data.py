"""PIE training data: performance scores by hand, the no-leakage filter, the problem split, PIE's
truncation, both templates, the released-file format and the errors (unknown data choice, empty set)."""

from __future__ import annotations

import json

import pytest

from perfrepro.datasets.base import Row
from perfrepro.finetuning.data import (
    FinetuneDataError,
    TrainingPair,
    build_training_data,
    check_data_choice,
    load_training_pairs,
    pairs_from_rows,
    performance_scores,
    split_problems,
)
from perfrepro.finetuning.templates import chat_jsonl_line, training_messages
from perfrepro.optimization.prompts import load_conditioned_template
from perfrepro.records import EvalProgram

EVAL_SLOW = "def add_all(xs):\n    total = 0\n    for x in xs:\n        total = total + x\n    return total\n"
EVAL_FAST = "def add_all(xs):\n    return sum(xs)\n"
EVAL = [EvalProgram("HumanEval/0", "slow", EVAL_SLOW), EvalProgram("HumanEval/0", "reference", EVAL_FAST)]


def pair(problem: str, n: int, slow_t: float, fast_t: float, slow: str | None = None, fast: str | None = None):
    return TrainingPair(
        id=f"{problem}_{n}", problem_id=problem, source="fixture",
        slow=slow or f"n = int(input())\nprint(sum(range(n)) + {n})  # {problem}\n",
        fast=fast or f"n = int(input())\nprint(n * (n - 1) // 2 + {n})  # {problem}\n",
        slow_runtime=slow_t, fast_runtime=fast_t,
    )


def test_scores_rank_targets_among_their_problems_solutions_and_over_the_dataset_for_single_pairs():
    pairs = [
        pair("p1", 1, 4.0, 2.0), pair("p1", 2, 3.0, 1.0),  # p1 solutions: 4, 2, 3, 1 (distinct code)
        pair("p2", 1, 10.0, 0.5),                            # single pair: ranked over all 6 solutions
    ]
    scores = performance_scores(pairs)
    # p1_1: target 2.0; solutions >= 2.0: 4, 2, 3 -> 3/4 -> ceil(7.5) = 8
    assert scores["p1_1"] == (8, "problem")
    # p1_2: target 1.0, the fastest of p1 -> 10
    assert scores["p1_2"] == (10, "problem")
    # p2_1: target 0.5 among {4, 2, 3, 1, 10, 0.5}: all 6 at least as slow -> 10
    assert scores["p2_1"] == (10, "dataset")


def test_slowest_target_of_many_gets_a_low_score():
    pairs = [pair("p1", i, 5.0 + i, 1.0 + i) for i in range(4)]  # fast sides 1, 2, 3, 4; slow 5..8
    scores = performance_scores(pairs)
    # target 4.0: at least as slow are 4, 5, 6, 7, 8 -> 5/8 -> ceil(6.25) = 7; target 1.0 -> 10
    assert scores["p1_3"] == (7, "problem") and scores["p1_0"] == (10, "problem")


def test_leakage_filter_removes_the_whole_problem_and_reports_zero_overlap():
    leaky = pair("p9", 1, 2.0, 1.0, slow=EVAL_SLOW.replace("total", "acc"), fast=EVAL_FAST)
    pairs = [pair("p1", 1, 2.0, 1.0), pair("p2", 1, 2.0, 1.0), leaky, pair("p9", 2, 3.0, 1.5)]
    data = build_training_data(pairs, EVAL, seed=1, val_fraction=0.34)
    ids = {r.id for r in data.train + data.val}
    assert ids == {"p1_1", "p2_1"}  # p9 is gone, its innocent-looking second pair too
    s = data.summary
    assert s["leaked_problems_removed"] == 1 and s["leaked_pairs_removed"] == 2
    assert s["leaks"]["p9"]["task_id"] == "HumanEval/0" and s["overlap_after_filter"] == 0
    assert s["eval_tasks"] == 1


def test_near_duplicate_under_the_threshold_stays():
    unrelated = pair("p1", 1, 2.0, 1.0)
    data = build_training_data([unrelated, pair("p2", 1, 2.0, 1.0)], EVAL, seed=1, val_fraction=0.5)
    assert data.summary["leaked_problems_removed"] == 0


def test_problem_id_of_an_evaluation_task_is_a_leak():
    same_id = pair("HumanEval/0", 1, 2.0, 1.0)
    data = build_training_data([same_id, pair("p2", 1, 2.0, 1.0)], EVAL, seed=1, val_fraction=0.5)
    assert data.summary["leaks"]["HumanEval/0"]["role"] == "problem_id"


def test_empty_training_set_after_the_filter_is_an_error():
    leaky = pair("p9", 1, 2.0, 1.0, slow=EVAL_SLOW, fast="print(1)\n")
    with pytest.raises(FinetuneDataError, match="no pair is left after the leakage filter"):
        build_training_data([leaky], EVAL, seed=1)


def test_split_is_by_problem_seeded_and_never_shares_a_problem():
    problems = [f"p{i}" for i in range(20)]
    train, val = split_problems(problems, 0.25, seed=3)
    assert len(val) == 5 and not train & val and train | val == set(problems)
    assert split_problems(reversed(problems), 0.25, seed=3) == (train, val)  # order-free, seeded
    assert split_problems(problems, 0.25, seed=4) != (train, val)
    pairs = [pair(p, n, 2.0, 1.0) for p in problems for n in range(2)]
    data = build_training_data(pairs, EVAL, seed=3, val_fraction=0.25)
    assert {r.problem_id for r in data.val} == val and data.summary["problems_shared_by_splits"] == 0


def test_programs_are_truncated_at_max_code_chars_and_counted():
    long = pair("p1", 1, 2.0, 1.0, slow="x = 1\n" * 400)
    data = build_training_data([long, pair("p2", 1, 2.0, 1.0)], EVAL, seed=1, val_fraction=0.5, max_code_chars=1500)
    record = next(r for r in data.train + data.val if r.id == "p1_1")
    assert len(record.slow) == 1500 and record.truncated and data.summary["truncated_records"] == 1


def test_data_choice_is_pie_or_pie_plus_self_play():
    check_data_choice("pie")
    check_data_choice("pie+self_play")  # the self-play pairs: tests/test_self_play.py
    with pytest.raises(FinetuneDataError, match="finetune.data: expected one of pie, pie\\+self_play"):
        check_data_choice("self_play")


def test_templates_render_plain_and_score_conditioned_chats():
    plain = training_messages("print(1)", "print(2)", 7, "plain")
    assert [m["role"] for m in plain] == ["system", "user", "assistant"]
    assert "# slower version:" in plain[1]["content"] and "print(1)" in plain[1]["content"]
    assert plain[2]["content"] == "```python\nprint(2)\n```"
    template = load_conditioned_template("data/raw/pie/templates")
    conditioned = training_messages("print(1)", "print(2)", 7, "conditioned", template)
    assert "optimize 7/10" in conditioned[1]["content"] and "with score 7/10" in conditioned[1]["content"]
    line = json.loads(chat_jsonl_line(conditioned))
    assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]


def test_released_pie_format_and_the_shipped_file():
    rows = [Row({"problem_id": "p00001", "src_code": "a", "tgt_code": "b", "src_id": "s1", "tgt_id": "s2",
                 "src_agg_runtime": 2.0, "tgt_agg_runtime": 1.0, "target_reward_updated_pct_bin": 9}, 1, "train.jsonl")]
    (released,) = pairs_from_rows(rows, "train.jsonl")
    assert (released.id, released.slow, released.fast, released.released_score) == ("p00001_s1_s2", "a", "b", 9)
    assert performance_scores([released]) == {"p00001_s1_s2": (9, "released")}
    shipped = load_training_pairs(["data/raw/pie/py_reference.jsonl"])
    assert len(shipped) == 1000 and len({p.problem_id for p in shipped}) == 213


def test_a_near_copy_of_an_evaluation_program_is_caught_by_jaccard_not_only_by_exact_match():
    near = pair("p7", 1, 2.0, 1.0, slow=EVAL_SLOW + "print(add_all([1, 2, 3]))\n", fast="print(6)\n")
    data = build_training_data([near, pair("p2", 1, 2.0, 1.0)], EVAL, seed=1, val_fraction=0.5)
    leak = data.summary["leaks"]["p7"]
    assert leak["side"] == "slow" and leak["role"] == "slow" and 0.5 <= leak["similarity"] < 1.0
