"""The agreement benchmark's EvalPerf diagnostics (benchmarks/published_agreement.py) on hand-made
counts: the best Spearman a set of cluster labels allows, and the pairs both sides order."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "published_agreement", Path(__file__).resolve().parents[1] / "benchmarks" / "published_agreement.py")
agreement = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(agreement)


def test_one_program_in_a_second_cluster_of_fifteen_allows_minus_sqrt3_over_4():
    # ranks 1..15 against a label that picks out rank 1: point-biserial -7.5 / sd(1..15) * sqrt(14) / 15
    values = [(4, 100.0 + i) for i in range(14)] + [(5, 1.0)]
    assert agreement.best_possible_spearman(values) == pytest.approx(-math.sqrt(3) / 4, abs=1e-12)


def test_counts_tied_within_clusters_can_reach_minus_one():
    values = [(7, 5.0), (7, 5.0), (8, 2.0), (8, 2.0), (3, math.inf)]
    assert agreement.best_possible_spearman(values) == pytest.approx(-1.0)


def test_cluster_pairs_count_only_pairs_more_than_ten_percent_apart_as_ordered():
    values = [(7, 3.99e6), (7, 3.99e6), (8, 3.991e6), (3, math.inf), (8, 2e6), (8, 5e6)]
    # 11 pairs in different clusters; the two 3.99e6-vs-3.991e6 are within 10%; of the other 9, the
    # two 3.99e6 (cluster 7) vs 5e6 (cluster 8, faster by EvalPerf) are out of EvalPerf's order
    assert agreement.cluster_pairs(values) == (11, 9, 7)
