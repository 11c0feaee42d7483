"""Retrievers beyond a linear adapter, named like adapter variants (`retrieval.adapter`).

Each lives in its own directory under the adapters directory, with a `retriever.json` saying
its kind:
  encoder_mnrl/  kind "encoder": model/ (fine-tuned all-MiniLM-L6-v2), embeddings/ (the corpus
                 re-embedded, an EmbeddingSet), index/ (its chroma index, what generate reads),
                 ooc/ (task statements and canonicals re-embedded, for the out-of-corpus check)
  bm25/          kind "bm25": index/ (corpus solutions), ooc/ (corpus + task canonicals)
  hybrid/        kind "hybrid": {"dense": <variant>, "rrf_k": 60, "depth": 100, "components": {...}}
Linear adapter variants (LinearAdapter files) have no retriever.json.

Task canonicals enter only the out-of-corpus evaluation indices, under ids `task:<task id>`;
`search` never returns a query's own id nor `task:<its id>`, so a task's canonical solution is
never a few-shot example for that task.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from perfrepro.io import read_json

KINDS = ("encoder", "bm25", "hybrid")
NAMES = {"encoder_mnrl": "encoder", "bm25": "bm25", "hybrid": "hybrid"}
CANONICAL_PREFIX = "task:"
Example = tuple[str, str]


def canonical_id(task_id: str) -> str:
    return f"{CANONICAL_PREFIX}{task_id}"


def retriever_kind(adapters_dir: str | Path, name: str) -> str:
    """"linear" for a LinearAdapter variant, else the kind in its retriever.json."""
    meta = Path(adapters_dir) / name / "retriever.json"
    if meta.exists():
        return read_json(meta)["kind"]
    return "linear"


def directory_digest(directory: str | Path) -> str:
    """md5 over the relative paths and bytes of every file under `directory` (sorted)."""
    digest = hashlib.md5()
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _not_own(query_id: str) -> Callable[[str], bool]:
    own = {query_id, canonical_id(query_id)}
    return lambda doc_id: doc_id not in own


def search(
    queries: Sequence[tuple[str, str]],
    k: int,
    *,
    adapters_dir: str | Path,
    name: str | None,
    protocol: str = "heldout",
    index_dir: str | Path = "data/index",
    max_seq_length: int | None = None,
    batch_size: int = 64,
) -> dict[str, list[Example]]:
    """query id -> top-`k` (doc id, document text) from the retriever `name` (None: base model;
    a linear adapter variant; encoder_mnrl; bm25; hybrid), never the query's own id or canonical."""
    ranked = _ranked_hits(queries, k + 1, adapters_dir=adapters_dir, name=name, protocol=protocol,
                          index_dir=index_dir, max_seq_length=max_seq_length, batch_size=batch_size)
    out = {}
    for query_id, _ in queries:
        keep = _not_own(query_id)
        out[query_id] = [(doc_id, text) for doc_id, text in ranked[query_id] if keep(doc_id)][:k]
    return out


def _ranked_hits(queries, k, *, adapters_dir, name, protocol, index_dir, max_seq_length, batch_size):
    from perfrepro.embeddings.encoder import encode_texts, load_encoder
    from perfrepro.index.chroma import ChromaIndex

    kind = "linear" if name is None else retriever_kind(adapters_dir, name)
    texts = [text for _, text in queries]
    if kind == "bm25":
        from perfrepro.index.bm25 import BM25Index

        hits = BM25Index.load(Path(adapters_dir) / name / "index").query_texts(texts, k)
    elif kind == "hybrid":
        from perfrepro.retrieval.evaluation import reciprocal_rank_fusion

        meta = read_json(Path(adapters_dir) / name / "retriever.json")
        check_hybrid_components(adapters_dir, meta)
        depth = int(meta["depth"])
        common = dict(adapters_dir=adapters_dir, protocol=protocol, index_dir=index_dir,
                      max_seq_length=max_seq_length, batch_size=batch_size)
        dense = _ranked_hits(queries, depth, name=meta["dense"], **common)
        lexical = _ranked_hits(queries, depth, name="bm25", **common)
        out = {}
        for query_id, _ in queries:
            text_of = dict(dense[query_id]) | dict(lexical[query_id])
            fused = reciprocal_rank_fusion([[d for d, _ in dense[query_id]], [d for d, _ in lexical[query_id]]],
                                           k=int(meta["rrf_k"]))
            out[query_id] = [(d, text_of[d]) for d in fused[:k]]
        return out
    else:
        if kind == "encoder":
            root = Path(adapters_dir) / name
            index = ChromaIndex.open(root / "index")
            model = load_encoder(path=str(root / "model"))  # its own max_seq_length, saved with it
            embeddings = encode_texts(model, texts, batch_size=batch_size, show_progress=False)
        else:
            index = ChromaIndex.open(index_dir)  # first: a missing index fails before the encoder loads
            model = load_encoder(max_seq_length=max_seq_length)
            embeddings = encode_texts(model, texts, batch_size=batch_size, show_progress=False)
            if name is not None:
                from perfrepro.embeddings.adapter import load_variant

                embeddings = load_variant(adapters_dir, name, protocol=protocol).apply(embeddings)
        hits = index.query(embeddings, k)
    return {query_id: [(doc_id, document) for doc_id, _score, document in row] for (query_id, _), row in zip(queries, hits)}


def check_hybrid_components(adapters_dir: str | Path, meta: dict) -> None:
    """Fail when the BM25 or dense retriever changed since the hybrid stage recorded them."""
    for component, recorded in meta.get("components", {}).items():
        actual = directory_digest(Path(adapters_dir) / component)
        if actual != recorded:
            raise FileNotFoundError(
                f"{Path(adapters_dir) / 'hybrid'}: component {component} changed since it was recorded; "
                f"run `dvc repro build_hybrid`"
            )


def read_ooc_tasks(ooc_dir: str | Path) -> list[dict]:
    """The out-of-corpus set written by embed_ooc: [{"id", "statement", "canonical"}, ...]."""
    import json

    path = Path(ooc_dir) / "tasks.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (run the embed_ooc stage)")
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
