"""Retrieved examples for RAG prompts: the task statement, encoded, passed through the query
adapter (or none), searched in the chroma index of performant solutions."""

from __future__ import annotations

import os
import sys
from typing import Sequence

Example = tuple[str, str]  # (corpus id, solution code)


def retrieve_examples(
    queries: Sequence[tuple[str, str]],
    *,
    index_dir: str | os.PathLike,
    k: int,
    adapters_dir: str | os.PathLike = "data/adapters",
    adapter: str | None = None,
    protocol: str = "heldout",
    batch_size: int = 64,
    max_seq_length: int | None = None,
) -> dict[str, list[Example]]:
    """query id -> its top-`k` (corpus id, solution) by cosine similarity, best first.

    `queries` are (id, statement) pairs; a corpus entry with the query's own id is skipped, so a
    task never sees its own solution. `k` = 0 returns empty lists without loading anything.
    """
    if k <= 0:
        return {query_id: [] for query_id, _ in queries}
    if adapter is not None and adapter in ("encoder_mnrl", "bm25", "hybrid"):
        # retrievers beyond a linear adapter (perfrepro.retrieval.retrievers): same contract
        from perfrepro.retrieval.retrievers import search

        print(f"retrieving {k} examples for {len(queries)} tasks with {adapter}", file=sys.stderr)
        return search(queries, k, adapters_dir=adapters_dir, name=adapter, protocol=protocol,
                      index_dir=index_dir, max_seq_length=max_seq_length, batch_size=batch_size)
    from perfrepro.embeddings.encoder import encode_texts, load_encoder
    from perfrepro.index.chroma import ChromaIndex

    index = ChromaIndex.open(index_dir)  # first: a missing index fails before the encoder loads
    model = load_encoder(max_seq_length=max_seq_length)
    embeddings = encode_texts(model, [text for _, text in queries], batch_size=batch_size, show_progress=False)
    if adapter is not None:
        from perfrepro.embeddings.adapter import load_variant

        embeddings = load_variant(adapters_dir, adapter, protocol=protocol).apply(embeddings)
    print(f"retrieving {k} examples for {len(queries)} tasks from {index_dir} "
          f"(adapter: {adapter or 'none'}, {protocol})", file=sys.stderr)
    hits = index.query(embeddings, k + 1)
    retrieved = {}
    for (query_id, _), row in zip(queries, hits):
        retrieved[query_id] = [(doc_id, document) for doc_id, _score, document in row if doc_id not in (query_id, f"task:{query_id}")][:k]
    return retrieved
