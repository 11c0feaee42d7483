"""The chromadb store of all corpus solutions (train and test), in cosine space.

Embeddings are always passed explicitly (the collection has no embedding function), telemetry is
off, the search is exhaustive (see `hnsw_configuration`) and results are re-sorted by
(distance, id), so a rebuild answers every query with the same ids in the same order.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

COLLECTION = "solutions"
HNSW = {"space": "cosine", "ef_construction": 200, "max_neighbors": 32, "num_threads": 1}
# chromadb's HNSW graph differs from build to build, even on one thread, and with a bounded
# ef_search so do its results: two builds of the default corpus disagreed on 1 of 3,780 top-10
# ids. With ef_search >= the number of documents the search visits the whole graph, so results
# equal exact search whatever the graph; on a few thousand documents that costs ~1 ms a query.
MIN_EF_SEARCH = 200


def hnsw_configuration(n_documents: int) -> dict[str, Any]:
    """The collection's HNSW settings for a corpus of `n_documents`: exhaustive, so reproducible."""
    return {**HNSW, "ef_search": max(MIN_EF_SEARCH, n_documents)}


_BATCH = 1000
_EXTRA = 10  # fetched beyond k so ties at the k-th place resolve by id

Hit = tuple[str, float, str | None]


def _client(path: str | Path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False))


class ChromaIndex:
    def __init__(self, client: Any, collection: Any, path: Path):
        self.client = client
        self.collection = collection
        self.path = path

    @classmethod
    def build(
        cls,
        path: str | Path,
        ids: Sequence[str],
        embeddings: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[dict[str, Any]] | None = None,
        overwrite: bool = True,
    ) -> "ChromaIndex":
        """Create the collection at `path` (replacing what is there when `overwrite`)."""
        path = Path(path)
        if overwrite and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        if not (len(ids) == len(embeddings) == len(documents)):
            raise ValueError(f"ChromaIndex.build: {len(ids)} ids, {len(embeddings)} embeddings, {len(documents)} documents")
        client = _client(path)
        collection = client.create_collection(
            name=COLLECTION,
            configuration={"hnsw": hnsw_configuration(len(ids))},
            metadata={"hnsw:space": "cosine"},
            embedding_function=None,
        )
        embeddings = np.asarray(embeddings, dtype=np.float32)
        for start in tqdm(range(0, len(ids), _BATCH), desc="chroma add", unit="batch", leave=False):
            stop = start + _BATCH
            collection.add(
                ids=list(ids[start:stop]),
                embeddings=embeddings[start:stop],
                documents=list(documents[start:stop]),
                metadatas=list(metadatas[start:stop]) if metadatas is not None else None,
            )
        log.info("chroma index %s: %d documents", path, collection.count())
        return cls(client, collection, path)

    @classmethod
    def open(cls, path: str | Path, copy: bool = True) -> "ChromaIndex":
        """Open the index for queries. With `copy` (the default) chroma works on a temporary copy,
        because even a read-only PersistentClient rewrites its sqlite files, which would change the
        DVC-tracked out (data/index) and make every later `dvc repro` rebuild it."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"chroma index {path} not found (run the build_index stage)")
        source, tmp = path, None
        if copy:
            tmp = tempfile.TemporaryDirectory(prefix="perfrepro-chroma-")
            path = Path(tmp.name) / "index"
            shutil.copytree(source, path)
        client = _client(path)
        try:
            collection = client.get_collection(COLLECTION, embedding_function=None)
        except Exception as exc:  # chromadb raises its own NotFoundError/ValueError by version
            raise FileNotFoundError(f"chroma index {source}: no collection {COLLECTION!r} ({exc})") from None
        index = cls(client, collection, source)
        index._tmp = tmp  # removed when the index is garbage-collected
        return index

    def __len__(self) -> int:
        return self.collection.count()

    def query(self, query_embeddings: np.ndarray, k: int, include_documents: bool = True) -> list[list[Hit]]:
        """Top-k per query as (id, cosine similarity, document) tuples, ties broken by id."""
        query_embeddings = np.atleast_2d(np.asarray(query_embeddings, dtype=np.float32))
        if len(query_embeddings) == 0:
            return []
        n_results = min(k + _EXTRA, len(self))
        include = ["distances", "documents"] if include_documents else ["distances"]
        results: list[list[Hit]] = []
        for start in range(0, len(query_embeddings), _BATCH):
            batch = query_embeddings[start : start + _BATCH]
            out = self.collection.query(query_embeddings=batch, n_results=n_results, include=include)
            for i in range(len(batch)):
                docs = out["documents"][i] if include_documents else [None] * len(out["ids"][i])
                rows = sorted(zip(out["distances"][i], out["ids"][i], docs), key=lambda r: (r[0], r[1]))
                results.append([(doc_id, 1.0 - float(dist), doc) for dist, doc_id, doc in rows[:k]])
        return results

    def get_documents(self, ids: Sequence[str]) -> dict[str, str]:
        """{id: stored text} for those of `ids` the collection holds."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        got = self.collection.get(ids=wanted, include=["documents"])
        return dict(zip(got["ids"], got["documents"]))

    def get_embeddings(self) -> tuple[list[str], np.ndarray]:
        """All ids and stored embeddings, sorted by id."""
        got = self.collection.get(include=["embeddings"])
        order = np.argsort(np.asarray(got["ids"], dtype=object), kind="stable")
        ids = [got["ids"][i] for i in order]
        return ids, np.asarray(got["embeddings"], dtype=np.float32)[order]
