"""Retrieval metrics for one relevant document per query (DESIGN.md, "Metrics (exact)").

`rank` is the 1-based position of the relevant document in the ranked list, or None when it was
not retrieved (r = infinity). Ties in score are broken by document id before ranks are taken.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

METRICS = ("hit", "mrr", "map", "ndcg")


def rank_of(retrieved_ids: Sequence[str], relevant_id: str) -> int | None:
    """1-based position of `relevant_id` in `retrieved_ids`, None when absent."""
    for position, doc_id in enumerate(retrieved_ids, start=1):
        if doc_id == relevant_id:
            return position
    return None


def rank_from_scores(scores: Sequence[float], doc_ids: Sequence[str], relevant_id: str) -> int:
    """Rank of `relevant_id` among all documents: 1 + (#higher scores) + (#equal scores with a smaller id)."""
    position = list(doc_ids).index(relevant_id)
    target = scores[position]
    return 1 + sum(
        1 for s, d in zip(scores, doc_ids) if s > target or (s == target and d < relevant_id)
    )


def hit_at_k(rank: int | None, k: int) -> float:
    """1 when the relevant document is within the top k, else 0."""
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int) -> float:
    """1/rank when the relevant document is within the top k, else 0 (MRR@k per query)."""
    return 0.0 if rank is None or rank > k else 1.0 / rank


def average_precision_at_k(rank: int | None, k: int) -> float:
    """AP@k with a single relevant document: precision at its rank, i.e. 1/rank (= MRR@k)."""
    return reciprocal_rank(rank, k)


def ndcg_at_k(rank: int | None, k: int) -> float:
    """1/log2(rank + 1) within the top k, else 0 (ideal DCG is 1 with one relevant document)."""
    return 0.0 if rank is None or rank > k else 1.0 / math.log2(rank + 1)


PER_QUERY = {"hit": hit_at_k, "mrr": reciprocal_rank, "map": average_precision_at_k, "ndcg": ndcg_at_k}


def mean_metrics(ranks: Iterable[int | None], ks: Sequence[int]) -> dict[str, float]:
    """{'hit@1': ..., 'mrr@1': ..., 'map@1': ..., 'ndcg@1': ..., 'hit@3': ...}, averaged over queries."""
    ranks = list(ranks)
    if not ranks:
        raise ValueError("mean_metrics: no queries")
    out = {}
    for k in ks:
        for name in METRICS:
            out[f"{name}@{k}"] = float(np.mean([PER_QUERY[name](r, k) for r in ranks]))
    return out
