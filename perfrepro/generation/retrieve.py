"""Retrieved examples for RAG prompts: the task statements ranked by the retriever that
`retrieval.adapter` names (perfrepro.retrieval.loading), the solutions' code attached."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from perfrepro.retrieval.loading import load_retriever
from perfrepro.retrieval.retrievers import canonical_id

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
    """query id -> its top-`k` (corpus id, solution), best first.

    `queries` are (id, statement) pairs. A task never sees its own solution: neither a corpus entry
    with its id nor its canonical solution (`task:<id>`) is returned. `k` = 0 returns empty lists
    without loading anything.
    """
    if k <= 0:
        return {query_id: [] for query_id, _ in queries}
    retriever = load_retriever(adapters_dir, adapter, protocol=protocol, index_dir=index_dir,
                               max_seq_length=max_seq_length, batch_size=batch_size)
    print(f"retrieving {k} examples for {len(queries)} tasks with {adapter or 'the base model'} "
          f"({protocol}; index {index_dir})", file=sys.stderr)
    ranked = retriever.rank(dict(queries), k + 1)  # one spare: the task's own id is dropped below
    code = retriever.get_documents([doc_id for ranking in ranked.values() for doc_id, _ in ranking])
    return {query_id: [(doc_id, code[doc_id]) for doc_id, _ in ranked[query_id]
                       if doc_id not in (query_id, canonical_id(query_id))][:k]
            for query_id, _ in queries}
