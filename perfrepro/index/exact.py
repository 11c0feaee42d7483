"""Exact cosine search in numpy: the reference that chromadb's approximate index is checked against.

Results are ordered by descending cosine similarity, ties broken by ascending document id, so a
query always gives the same list.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from perfrepro.embeddings.encoder import l2_normalize

Hit = tuple[str, float, str | None]  # (document id, cosine similarity, document text or None)


def rank_order(scores: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Column order of each row of `scores` (n_queries, n_docs): score descending, then id ascending."""
    scores = np.atleast_2d(scores)
    id_rank = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    position = np.empty(len(ids), dtype=np.int64)
    position[id_rank] = np.arange(len(ids))
    # lexsort sorts by the last key first: primary -score, secondary the id's position in id order.
    return np.stack([np.lexsort((position, -row)) for row in scores]) if len(scores) else np.zeros((0, len(ids)), dtype=np.int64)


class ExactIndex:
    """All documents in memory; `query` scores every one (cosine = dot of unit rows)."""

    def __init__(self, ids: Sequence[str], embeddings: np.ndarray, documents: Sequence[str] | None = None):
        if len(ids) != len(embeddings):
            raise ValueError(f"ExactIndex: {len(ids)} ids but {len(embeddings)} embeddings")
        if len(set(ids)) != len(ids):
            raise ValueError("ExactIndex: document ids must be unique")
        self.ids = list(ids)
        self.embeddings = l2_normalize(embeddings)
        self.documents = list(documents) if documents is not None else None

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_embeddings: np.ndarray) -> np.ndarray:
        return l2_normalize(np.atleast_2d(query_embeddings)) @ self.embeddings.T

    def query(self, query_embeddings: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k per query as (id, cosine similarity, document) tuples; k > corpus gives the whole corpus."""
        scores = self.scores(query_embeddings)
        order = rank_order(scores, self.ids)[:, :k]
        results = []
        for row, cols in zip(scores, order):
            results.append([
                (self.ids[c], float(row[c]), self.documents[c] if self.documents is not None else None)
                for c in cols
            ])
        return results
