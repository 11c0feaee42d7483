"""Vector helpers that the encoder, the indices and adapter training all need; this module imports
nothing of perfrepro, so none of them has to import another for it.

- `l2_normalize`: unit rows, so a dot product is the cosine;
- `rank_order`: the one ranking order of the project, score descending with ties broken by
  ascending document id, so a query always gives the same list.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def l2_normalize(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def rank_order(scores: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Column order of each row of `scores` (n_queries, n_docs): score descending, then id ascending."""
    scores = np.atleast_2d(scores)
    id_rank = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    position = np.empty(len(ids), dtype=np.int64)
    position[id_rank] = np.arange(len(ids))
    # lexsort sorts by the last key first: primary -score, secondary the id's position in id order.
    return np.stack([np.lexsort((position, -row)) for row in scores]) if len(scores) else np.zeros((0, len(ids)), dtype=np.int64)
