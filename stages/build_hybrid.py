"""build_hybrid stage: the `hybrid` retriever (params: retrievers.hybrid) in data/adapters/hybrid.

Nothing is trained: retriever.json names the dense variant, the RRF constant and depth, and the
digests of the two component directories, so a change in either changes this out (and reruns a
generate stage that uses `retrieval.adapter: hybrid`).
"""

from __future__ import annotations

import logging
import shutil
import sys

from perfrepro.config import load_params
from perfrepro.io import write_json
from perfrepro.retrieval.loading import directory_digest
from perfrepro.stage import stage

log = logging.getLogger("build_hybrid")


@stage("build_hybrid", "adapters", "out")
def main(args) -> int:
    config = load_params(args.params).retrievers.hybrid
    components = {}
    for name in ("bm25", config.dense):
        if not (args.adapters / name).is_dir():
            raise SystemExit(f"retrievers.hybrid: {args.adapters / name} not found (dense: {config.dense!r}; "
                             f"name an adapter variant or encoder_mnrl, and run its stage first)")
        components[name] = directory_digest(args.adapters / name)
    if args.out.exists():
        shutil.rmtree(args.out)
    write_json(args.out / "retriever.json", {"kind": "hybrid", "dense": config.dense, "rrf_k": config.rrf_k,
                                             "depth": config.depth, "components": components, "n_train": 0,
                                             "data": f"fusion of bm25 and {config.dense}"})
    log.info("hybrid: bm25 + %s, rrf_k %d", config.dense, config.rrf_k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
