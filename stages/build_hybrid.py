"""build_hybrid stage: the `hybrid` retriever (params: retrievers.hybrid) in data/adapters/hybrid.

Nothing is trained: retriever.json names the dense variant, the RRF constant and depth, and the
digests of the two component directories, so a change in either changes this out (and reruns a
generate stage that uses `retrieval.adapter: hybrid`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from perfrepro.config import load_params
from perfrepro.io import write_json
from perfrepro.retrieval.loading import directory_digest

log = logging.getLogger("build_hybrid")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--adapters", type=Path, default=Path("data/adapters"))
    parser.add_argument("--out", type=Path, default=Path("data/adapters/hybrid"))
    args = parser.parse_args(argv)
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
