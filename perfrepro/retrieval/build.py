"""Building what retrieval reads: the out-of-corpus evaluation set, each retriever's folder beyond a
linear adapter (bm25, hybrid, the fine-tuned encoder `encoder_mnrl` with its re-embedded corpus, index
and out-of-corpus embeddings), and the chroma index of corpus solutions."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.encoder import encode_texts, load_encoder
from perfrepro.embeddings.encoder_training import encoder_training_data, train_encoder
from perfrepro.index.bm25 import BM25Index
from perfrepro.index.chroma import ChromaIndex
from perfrepro.io import write_json, write_text
from perfrepro.records import CorpusPair, Task
from perfrepro.retrieval.loading import directory_digest
from perfrepro.retrieval.retrievers import RetrievalInputError, canonical_id

log = logging.getLogger(__name__)


def index_metadatas(documents: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The chroma metadata of each corpus document (split, source, language)."""
    return [{"split": d["split"], "source": d["source"], "language": d["language"]} for d in documents]


def build_solution_index(folder: Path, embeddings: EmbeddingSet, solutions: np.ndarray) -> ChromaIndex:
    """A chroma collection at `folder` of every corpus solution, with the given solution embeddings."""
    return ChromaIndex.build(folder, embeddings.ids, solutions, [d["solution"] for d in embeddings.documents],
                             index_metadatas(embeddings.documents))


def build_encoder_retriever(config, seed: int, base: EmbeddingSet, pairs: Sequence[CorpusPair],
                            ooc_tasks: Sequence[dict], out: Path, files: tuple[str, str, str]) -> dict:
    """Fine-tune the encoder on the train split of `base` (`config`: retrievers.encoder_mnrl), then
    write out/model, out/embeddings, out/index, out/ooc/{queries,canonicals}.npy and retriever.json;
    the training log (with its wall-clock seconds, which the files leave out). `files` names the
    embeddings, train and test files `base` and `pairs` came from, for the error message."""
    by_id = {p.id: p for p in pairs}
    missing = [cid for cid in base.ids if cid not in by_id]
    if missing:
        raise RetrievalInputError(f"{files[0]}: id {missing[0]!r} is not in {files[1]} / {files[2]}; rerun embed")
    rows = base.rows("train")
    train_ids = [base.ids[i] for i in rows]
    data = encoder_training_data(
        train_ids, [by_id[c].problem for c in train_ids], [by_id[c].solution for c in train_ids],
        base.problems[rows], base.solutions[rows], config.hard_negatives, config.max_train_pairs,
    )
    model = load_encoder(config.max_seq_length)
    with tempfile.TemporaryDirectory(prefix="perfrepro-encoder-") as work:
        model, train_log = train_encoder(
            model, data, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
            warmup_ratio=config.warmup_ratio, scale=config.scale, seed=seed, work_dir=work,
        )
    if out.exists():
        shutil.rmtree(out)
    model.save(str(out / "model"))
    ordered = [by_id[c] for c in base.ids]
    problems = encode_texts(model, [p.problem for p in ordered], config.batch_size)
    solutions = encode_texts(model, [p.solution for p in ordered], config.batch_size)
    empty = np.zeros((0, problems.shape[1]), dtype=np.float32)
    tuned = EmbeddingSet(list(base.ids), list(base.splits), problems, solutions, [], empty, base.documents,
                         model="all-MiniLM-L6-v2 (encoder_mnrl)")
    tuned.save(out / "embeddings")
    build_solution_index(out / "index", tuned, tuned.solutions)
    (out / "ooc").mkdir(parents=True)
    np.save(out / "ooc" / "queries.npy", encode_texts(model, [t["statement"] for t in ooc_tasks], config.batch_size))
    np.save(out / "ooc" / "canonicals.npy", encode_texts(model, [t["canonical"] for t in ooc_tasks], config.batch_size))
    # wall-clock seconds go to the log only, so the same params give the same outs
    write_json(out / "retriever.json", {
        "kind": "encoder", "config": vars(config), "seed": seed,
        **{k: v for k, v in train_log.items() if k != "seconds"},
    })
    return train_log


def build_ooc_set(tasks: Sequence[Task], corpus: Sequence[CorpusPair], max_seq_length: int, batch_size: int,
                  out: Path, source: str) -> int:
    """The out-of-corpus evaluation set at `out`: every task whose id and statement are not in the
    corpus, its statement a query and its canonical solution an extra document (tasks.jsonl,
    queries.npy, canonicals.npy under the base encoder); how many tasks it holds."""
    seen_ids = {p.id for p in corpus}
    seen_text = {" ".join(p.problem.split()) for p in corpus}
    kept = [t for t in tasks if t.id not in seen_ids and " ".join(t.statement.split()) not in seen_text]
    if len(kept) < len(tasks):
        log.warning("%d of %d tasks are also in the corpus (same id or statement): left out", len(tasks) - len(kept), len(tasks))
    if not kept:
        raise RetrievalInputError(f"{source}: no task outside the corpus; the out-of-corpus check has no queries")
    model = load_encoder(max_seq_length)
    queries = encode_texts(model, [t.statement for t in kept], batch_size)
    canonicals = encode_texts(model, [t.canonical_solution for t in kept], batch_size)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_text(out / "tasks.jsonl", "".join(
        json.dumps({"id": t.id, "statement": t.statement, "canonical": t.canonical_solution}, ensure_ascii=False) + "\n"
        for t in kept
    ))
    np.save(out / "queries.npy", queries)
    np.save(out / "canonicals.npy", canonicals)
    return len(kept)


def build_bm25_retriever(config, embeddings: EmbeddingSet, ooc_tasks: Sequence[dict], out: Path) -> None:
    """`bm25` (`config`: retrievers.bm25): out/index holds every corpus solution (what generate reads),
    out/ooc adds the out-of-corpus canonicals (ids `task:<task id>`), for evaluation only."""
    ids, docs = list(embeddings.ids), [d["solution"] for d in embeddings.documents]
    if out.exists():
        shutil.rmtree(out)
    BM25Index(ids, docs, config.k1, config.b, config.method).save(out / "index")
    BM25Index(ids + [canonical_id(t["id"]) for t in ooc_tasks], docs + [t["canonical"] for t in ooc_tasks],
              config.k1, config.b, config.method).save(out / "ooc")
    write_json(out / "retriever.json", {"kind": "bm25", "config": vars(config), "n_train": 0,
                                        "data": "no training (lexical)"})


def build_hybrid_retriever(config, adapters: Path, out: Path) -> None:
    """`hybrid` (`config`: retrievers.hybrid): nothing trained; retriever.json names the dense variant,
    the RRF constant and depth, and the digests of the two component folders under `adapters`."""
    components = {}
    for name in ("bm25", config.dense):
        if not (adapters / name).is_dir():
            raise RetrievalInputError(f"retrievers.hybrid: {adapters / name} not found (dense: {config.dense!r}; "
                                      f"name an adapter variant or encoder_mnrl, and run its stage first)")
        components[name] = directory_digest(adapters / name)
    if out.exists():
        shutil.rmtree(out)
    write_json(out / "retriever.json", {"kind": "hybrid", "dense": config.dense, "rrf_k": config.rrf_k,
                                        "depth": config.depth, "components": components, "n_train": 0,
                                        "data": f"fusion of bm25 and {config.dense}"})
