"""Exact cosine search in numpy: the reference that chromadb's index is checked against, and the
in-memory search of the out-of-corpus evaluation set.

Results are ordered by descending cosine similarity, ties broken by ascending document id, so a
query always gives the same list.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from perfrepro.vectors import l2_normalize, rank_order

Hit = tuple[str, float, str | None]  # (document id, cosine similarity, document text or None)


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

    def query(self, query_embeddings: np.ndarray, k: int, include_documents: bool = True) -> list[list[Hit]]:
        """Top-k per query as (id, cosine similarity, document) tuples; k > corpus gives the whole corpus.
        The document is None without `include_documents` or when the index holds no texts."""
        scores = self.scores(query_embeddings)
        order = rank_order(scores, self.ids)[:, :k]
        texts = self.documents if include_documents else None
        return [[(self.ids[c], float(row[c]), texts[c] if texts is not None else None) for c in cols]
                for row, cols in zip(scores, order)]

    def get_documents(self, ids: Sequence[str]) -> dict[str, str]:
        """{id: text} for those of `ids` this index holds (none when it holds no texts)."""
        if self.documents is None:
            return {}
        text_of = dict(zip(self.ids, self.documents))
        return {doc_id: text_of[doc_id] for doc_id in ids if doc_id in text_of}
