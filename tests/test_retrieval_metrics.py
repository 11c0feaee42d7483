"""Retrieval metrics on hand-computed cases (DESIGN.md formulas), and the exact search's tie-breaking."""

import math

import numpy as np
import pytest

from perfrepro.index.exact import ExactIndex
from perfrepro.retrieval.metrics import (
    average_precision_at_k, hit_at_k, mean_metrics, ndcg_at_k, rank_from_scores, rank_of, reciprocal_rank,
)


def test_per_query_metrics_at_rank_two():
    assert hit_at_k(2, 1) == 0.0 and hit_at_k(2, 3) == 1.0
    assert reciprocal_rank(2, 3) == 0.5
    assert average_precision_at_k(2, 3) == 0.5
    assert ndcg_at_k(2, 3) == pytest.approx(1 / math.log2(3))


def test_relevant_document_outside_top_k_scores_zero():
    for metric in (hit_at_k, reciprocal_rank, average_precision_at_k, ndcg_at_k):
        assert metric(4, 3) == 0.0
        assert metric(None, 10) == 0.0


def test_rank_of_absent_and_present():
    assert rank_of(["a", "b", "c"], "c") == 3
    assert rank_of(["a", "b"], "z") is None


def test_ties_are_broken_by_document_id():
    # d1 and d2 tie; d1 < d2, so d1 ranks first.
    assert rank_from_scores([0.5, 0.5, 0.9], ["d2", "d1", "d0"], "d2") == 3
    assert rank_from_scores([0.5, 0.5, 0.9], ["d2", "d1", "d0"], "d1") == 2
    index = ExactIndex(["d2", "d1", "d0"], np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert [doc for doc, *_ in index.query(np.array([[1.0, 0.0]]), 3)[0]] == ["d1", "d2", "d0"]


def test_k_larger_than_corpus_returns_everything():
    index = ExactIndex(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    hits = index.query(np.array([[0.0, 1.0]]), 10)[0]
    assert [doc for doc, *_ in hits] == ["b", "a"]
    assert mean_metrics([rank_of([d for d, *_ in hits], "a")], [10]) == {
        "hit@10": 1.0, "mrr@10": 0.5, "map@10": 0.5, "ndcg@10": pytest.approx(1 / math.log2(3)),
    }


def test_mean_over_queries_by_hand():
    # ranks 1, 3, absent -> Hit@3 = 2/3, MRR@3 = (1 + 1/3 + 0)/3, NDCG@3 = (1 + 1/2 + 0)/3, Hit@1 = 1/3
    got = mean_metrics([1, 3, None], [1, 3])
    assert got["hit@1"] == pytest.approx(1 / 3)
    assert got["mrr@1"] == pytest.approx(1 / 3)
    assert got["hit@3"] == pytest.approx(2 / 3)
    assert got["mrr@3"] == pytest.approx((1 + 1 / 3) / 3)
    assert got["map@3"] == got["mrr@3"]
    assert got["ndcg@3"] == pytest.approx((1 + 0.5) / 3)


def test_metric_keys_are_dvc_friendly():
    from perfrepro.retrieval.evaluation import metric_key

    assert metric_key("adapter_10_lr0.01_no_negatives [study protocol]") == "adapter_10_lr0_01_no_negatives__study"
    assert metric_key("base all-MiniLM-L6-v2") == "base_all-MiniLM-L6-v2"
