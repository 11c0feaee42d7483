"""build_index stage: a chromadb collection of all corpus solutions (base embeddings) at data/index."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.index.chroma import ChromaIndex
from perfrepro.io import atomic_outputs
from perfrepro.logs import setup_logging

log = logging.getLogger("build_index")


def main(argv=None) -> int:
    setup_logging("build_index")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--out", type=Path, default=Path("data/index"))
    args = parser.parse_args(argv)
    embeddings = EmbeddingSet.load(args.embeddings)
    metadatas = [{"split": d["split"], "source": d["source"], "language": d["language"]} for d in embeddings.documents]
    with atomic_outputs(args.out) as (out,):
        index = ChromaIndex.build(
            out, embeddings.ids, embeddings.solutions, [d["solution"] for d in embeddings.documents], metadatas
        )
        count = len(index)
    log.info("indexed %d solutions at %s", count, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
