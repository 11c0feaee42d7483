"""build_index stage: a chromadb collection of all corpus solutions (base embeddings) at data/index."""

from __future__ import annotations

import logging
import sys

from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.io import atomic_outputs
from perfrepro.retrieval.build import build_solution_index
from perfrepro.stage import stage

log = logging.getLogger("build_index")


@stage("build_index", "embeddings", "out")
def main(args) -> int:
    embeddings = EmbeddingSet.load(args.embeddings)
    with atomic_outputs(args.out) as (out,):
        count = len(build_solution_index(out, embeddings, embeddings.solutions))
    log.info("indexed %d solutions at %s", count, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
