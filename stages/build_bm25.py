"""build_bm25 stage: the `bm25` retriever in data/adapters/bm25 (params: retrievers.bm25).

index/ holds every corpus solution (what generate reads); ooc/ adds the out-of-corpus tasks'
canonical solutions (ids `task:<task id>`), for eval_retrieval's second table only.
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.retrieval.build import build_bm25_retriever
from perfrepro.retrieval.retrievers import read_ooc_tasks
from perfrepro.stage import stage

log = logging.getLogger("build_bm25")


@stage("build_bm25", "embeddings", "ooc", "out")
def main(args) -> int:
    embeddings = EmbeddingSet.load(args.embeddings)
    tasks = read_ooc_tasks(args.ooc)
    build_bm25_retriever(load_params(args.params).retrievers.bm25, embeddings, tasks, args.out)
    log.info("bm25: %d solutions, %d out-of-corpus canonicals", len(embeddings.ids), len(tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
