"""build_bm25 stage: the `bm25` retriever in data/adapters/bm25 (params: retrievers.bm25).

index/ holds every corpus solution (what generate reads); ooc/ adds the out-of-corpus tasks'
canonical solutions (ids `task:<task id>`), for eval_retrieval's second table only.
"""

from __future__ import annotations

import logging
import shutil
import sys

from perfrepro.config import load_params
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.index.bm25 import BM25Index
from perfrepro.io import write_json
from perfrepro.retrieval.retrievers import canonical_id, read_ooc_tasks
from perfrepro.stage import stage

log = logging.getLogger("build_bm25")


@stage("build_bm25", "embeddings", "ooc", "out")
def main(args) -> int:
    config = load_params(args.params).retrievers.bm25
    embeddings = EmbeddingSet.load(args.embeddings)
    ids, docs = list(embeddings.ids), [d["solution"] for d in embeddings.documents]
    tasks = read_ooc_tasks(args.ooc)
    if args.out.exists():
        shutil.rmtree(args.out)
    BM25Index(ids, docs, config.k1, config.b, config.method).save(args.out / "index")
    BM25Index(ids + [canonical_id(t["id"]) for t in tasks], docs + [t["canonical"] for t in tasks],
              config.k1, config.b, config.method).save(args.out / "ooc")
    write_json(args.out / "retriever.json", {"kind": "bm25", "config": vars(config), "n_train": 0,
                                             "data": "no training (lexical)"})
    log.info("bm25: %d solutions, %d out-of-corpus canonicals", len(ids), len(tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
