"""train_encoder stage: the `encoder_mnrl` retriever in data/adapters/encoder_mnrl
(params: seed, retrievers.encoder_mnrl).

Fine-tunes all of all-MiniLM-L6-v2 on the train split (SentenceTransformerTrainer +
MultipleNegativesRankingLoss with mined hard negatives), then re-embeds with it: the corpus
(embeddings/, an EmbeddingSet) and its chroma index (index/, what generate reads), and the
out-of-corpus set of data/ooc (ooc/queries.npy, ooc/canonicals.npy; evaluation only).
"""

from __future__ import annotations

import logging
import sys

import torch

from perfrepro.config import load_params
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.retrieval.build import build_encoder_retriever
from perfrepro.retrieval.retrievers import read_ooc_tasks
from perfrepro.stage import stage

log = logging.getLogger("train_encoder")


def threads(parser) -> None:
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (bit identity holds per count)")


@stage("train_encoder", "embeddings", "train", "test", "ooc", "out", options=threads, model=True)
def main(args) -> int:
    params = load_params(args.params)
    config = params.retrievers.encoder_mnrl
    torch.set_num_threads(args.threads)
    pairs = read_jsonl(args.train, CorpusPair) + read_jsonl(args.test, CorpusPair)
    train_log = build_encoder_retriever(config, params.seed, EmbeddingSet.load(args.embeddings), pairs,
                                        read_ooc_tasks(args.ooc), args.out, files=(str(args.embeddings), str(args.train), str(args.test)))
    log.info("encoder_mnrl: %s; loss %s; trained in %.1fs", train_log["data"], train_log["loss_per_epoch"],
             train_log["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
