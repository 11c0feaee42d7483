"""build_hybrid stage: the `hybrid` retriever (params: retrievers.hybrid) in data/adapters/hybrid.

Nothing is trained: retriever.json names the dense variant, the RRF constant and depth, and the
digests of the two component directories, so a change in either changes this out (and reruns a
generate stage that uses `retrieval.adapter: hybrid`).
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.retrieval.build import build_hybrid_retriever
from perfrepro.stage import stage

log = logging.getLogger("build_hybrid")


@stage("build_hybrid", "adapters", "out")
def main(args) -> int:
    config = load_params(args.params).retrievers.hybrid
    build_hybrid_retriever(config, args.adapters, args.out)
    log.info("hybrid: bm25 + %s, rrf_k %d", config.dense, config.rrf_k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
