"""Building a retriever's folder: the fine-tuned encoder (`encoder_mnrl`) and its re-embedded corpus,
index and out-of-corpus embeddings; the chroma metadata every index of corpus solutions carries."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.encoder import encode_texts, load_encoder
from perfrepro.embeddings.finetune import encoder_training_data, train_encoder
from perfrepro.index.chroma import ChromaIndex
from perfrepro.io import write_json
from perfrepro.records import CorpusPair
from perfrepro.retrieval.retrievers import RetrievalInputError

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
