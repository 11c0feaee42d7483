"""One retriever interface: `Retriever.rank(queries, depth) -> {query id: [(doc id, score), ...]}`,
for each query (id -> text) its top `depth` documents, best first, ties broken by document id
(BEIR's search contract, as ranked lists), and `get_documents` for the texts of what it ranked.

Implementations: `LinearRetriever` (the base all-MiniLM-L6-v2 model, with or without a linear
adapter on its queries), `EncoderRetriever` (the fine-tuned encoder_mnrl), `BM25Retriever` and
`HybridRetriever` (reciprocal-rank fusion of two retrievers). Which one a name means, and where
its files are, is decided in `perfrepro.retrieval.loading` alone.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

CANONICAL_PREFIX = "task:"
Ranking = list[tuple[str, float]]  # (doc id, score), best first
Rankings = dict[str, Ranking]  # query id -> its ranking


class RetrievalInputError(ValueError):
    """Retriever files that do not fit together (a stale index, a query without a stored embedding)."""


class Retriever(Protocol):
    def rank(self, queries: Mapping[str, str], depth: int) -> Rankings:
        """Query id -> its top `depth` (doc id, score), best first, ties by doc id."""

    def get_documents(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """{doc id: text} for those of `doc_ids` the retriever holds (the few-shot examples' code)."""


class SearchIndex(Protocol):  # ChromaIndex, ExactIndex
    def query(self, query_embeddings: np.ndarray, k: int, include_documents: bool = True) -> list[list[tuple]]: ...

    def get_documents(self, ids: Sequence[str]) -> dict[str, str]: ...

    def __len__(self) -> int: ...


def canonical_id(task_id: str) -> str:
    return f"{CANONICAL_PREFIX}{task_id}"


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = 60) -> Ranking:
    """Reciprocal-rank fusion (Cormack et al. 2009): score(d) = sum over lists of 1 / (k + rank),
    ranks 1-based within each list; highest score first, ties by id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for position, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + position)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _rankings(query_ids: Sequence[str], hits: Sequence[Sequence[tuple]]) -> Rankings:
    return {query_id: [(doc_id, score) for doc_id, score, *_ in row] for query_id, row in zip(query_ids, hits)}


# ---- query sides: encode texts now, or look up what the embed stages stored ---------------------

class ModelQueries:
    """Query texts encoded by a sentence-transformers model (unit rows), loaded on first use."""

    def __init__(self, load_model: Callable[[], Any], batch_size: int = 64):
        self.load_model, self.batch_size = load_model, batch_size

    @functools.cached_property
    def model(self) -> Any:
        return self.load_model()

    def encode(self, query_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        from perfrepro.embeddings.encoder import encode_texts

        return encode_texts(self.model, list(texts), batch_size=self.batch_size, show_progress=False)


@dataclass(frozen=True)
class StoredQueries:
    """Query embeddings an embed stage stored, by query id: evaluation ranks those very rows."""

    ids: tuple[str, ...]
    rows: np.ndarray
    source: str  # the file they came from, for errors

    def encode(self, query_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        position = {query_id: row for row, query_id in enumerate(self.ids)}
        missing = [query_id for query_id in query_ids if query_id not in position]
        if missing:
            raise RetrievalInputError(f"{self.source}: no stored embedding for query {missing[0]!r} "
                                      f"({len(missing)} of {len(query_ids)} missing); rerun its stage")
        return self.rows[[position[query_id] for query_id in query_ids]]


# ---- the retrievers ------------------------------------------------------------------------------

class DenseRetriever:
    """Embedded queries against an index of embedded solutions, by cosine similarity."""

    def __init__(self, index: SearchIndex, queries: ModelQueries | StoredQueries):
        self.index, self.queries = index, queries

    def embed(self, query_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        return self.queries.encode(query_ids, texts)

    def rank(self, queries: Mapping[str, str], depth: int) -> Rankings:
        query_ids = list(queries)
        embedded = self.embed(query_ids, [queries[query_id] for query_id in query_ids])
        return _rankings(query_ids, self.index.query(embedded, depth, include_documents=False))

    def get_documents(self, doc_ids: Sequence[str]) -> dict[str, str]:
        return self.index.get_documents(doc_ids)


class LinearRetriever(DenseRetriever):
    """The base model's query embeddings through a linear adapter (None: the base model itself),
    against the base model's solution embeddings."""

    def __init__(self, index: SearchIndex, queries: ModelQueries | StoredQueries, adapter: Any = None):
        super().__init__(index, queries)
        self.adapter = adapter  # a LinearAdapter

    def embed(self, query_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        embedded = self.queries.encode(query_ids, texts)
        return embedded if self.adapter is None else self.adapter.apply(embedded)


class EncoderRetriever(DenseRetriever):
    """A fine-tuned encoder (encoder_mnrl) embeds queries and solutions alike; no adapter."""


class BM25Retriever:
    """Lexical: the query text against a BM25 index of solutions (perfrepro.index.bm25)."""

    def __init__(self, index: Any, show_progress: bool = False):
        self.index, self.show_progress = index, show_progress

    def rank(self, queries: Mapping[str, str], depth: int) -> Rankings:
        query_ids = list(queries)
        texts = [queries[query_id] for query_id in query_ids]
        return _rankings(query_ids, self.index.query_texts(texts, depth, show_progress=self.show_progress))

    def get_documents(self, doc_ids: Sequence[str]) -> dict[str, str]:
        return self.index.get_documents(doc_ids)


@dataclass(frozen=True)
class HybridRetriever:
    """Reciprocal-rank fusion of two retrievers, each ranked to its own `depth` first; the fused
    score is the ranking's score."""

    dense: Retriever
    lexical: Retriever
    rrf_k: int = 60
    depth: int = 100

    def rank(self, queries: Mapping[str, str], depth: int) -> Rankings:
        dense, lexical = self.dense.rank(queries, self.depth), self.lexical.rank(queries, self.depth)
        return {query_id: reciprocal_rank_fusion([[d for d, _ in dense[query_id]], [d for d, _ in lexical[query_id]]],
                                                 k=self.rrf_k)[:depth]
                for query_id in queries}

    def get_documents(self, doc_ids: Sequence[str]) -> dict[str, str]:
        return {**self.dense.get_documents(doc_ids), **self.lexical.get_documents(doc_ids)}


def read_ooc_tasks(ooc_dir: str | Path) -> list[dict]:
    """The out-of-corpus set written by embed_ooc: [{"id", "statement", "canonical"}, ...]."""
    path = Path(ooc_dir) / "tasks.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (run the embed_ooc stage)")
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
