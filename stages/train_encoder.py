"""train_encoder stage: the `encoder_mnrl` retriever in data/adapters/encoder_mnrl
(params: seed, retrievers.encoder_mnrl).

Fine-tunes all of all-MiniLM-L6-v2 on the train split (SentenceTransformerTrainer +
MultipleNegativesRankingLoss with mined hard negatives), then re-embeds with it: the corpus
(embeddings/, an EmbeddingSet) and its chroma index (index/, what generate reads), and the
out-of-corpus set of data/ooc (ooc/queries.npy, ooc/canonicals.npy; evaluation only).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from perfrepro.config import load_params
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.encoder import encode_texts, load_encoder
from perfrepro.embeddings.encoder_training import encoder_training_data, train_encoder
from perfrepro.index.chroma import ChromaIndex
from perfrepro.io import write_json
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.retrieval.retrievers import read_ooc_tasks

log = logging.getLogger("train_encoder")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--train", type=Path, default=Path("data/prepared/corpus_train.jsonl"))
    parser.add_argument("--test", type=Path, default=Path("data/prepared/corpus_test.jsonl"))
    parser.add_argument("--ooc", type=Path, default=Path("data/ooc"))
    parser.add_argument("--out", type=Path, default=Path("data/adapters/encoder_mnrl"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (bit identity holds per count)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    config = params.retrievers.encoder_mnrl
    torch.set_num_threads(args.threads)
    base = EmbeddingSet.load(args.embeddings)
    train = read_jsonl(args.train, CorpusPair)
    test = read_jsonl(args.test, CorpusPair)
    by_id = {p.id: p for p in train + test}
    missing = [cid for cid in base.ids if cid not in by_id]
    if missing:
        raise SystemExit(f"{args.embeddings}: id {missing[0]!r} is not in {args.train} / {args.test}; rerun embed")
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
            warmup_ratio=config.warmup_ratio, scale=config.scale, seed=params.seed, work_dir=work,
        )
    if args.out.exists():
        shutil.rmtree(args.out)
    model.save(str(args.out / "model"))
    pairs = [by_id[c] for c in base.ids]
    problems = encode_texts(model, [p.problem for p in pairs], config.batch_size)
    solutions = encode_texts(model, [p.solution for p in pairs], config.batch_size)
    empty = np.zeros((0, problems.shape[1]), dtype=np.float32)
    tuned = EmbeddingSet(list(base.ids), list(base.splits), problems, solutions, [], empty, base.documents,
                         model="all-MiniLM-L6-v2 (encoder_mnrl)")
    tuned.save(args.out / "embeddings")
    metadatas = [{"split": d["split"], "source": d["source"], "language": d["language"]} for d in base.documents]
    ChromaIndex.build(args.out / "index", tuned.ids, tuned.solutions, [d["solution"] for d in base.documents], metadatas)
    tasks = read_ooc_tasks(args.ooc)
    (args.out / "ooc").mkdir(parents=True)
    np.save(args.out / "ooc" / "queries.npy", encode_texts(model, [t["statement"] for t in tasks], config.batch_size))
    np.save(args.out / "ooc" / "canonicals.npy", encode_texts(model, [t["canonical"] for t in tasks], config.batch_size))
    # wall-clock seconds go to the log only, so the same params give the same outs
    write_json(args.out / "retriever.json", {
        "kind": "encoder", "config": vars(config), "seed": params.seed,
        **{k: v for k, v in train_log.items() if k != "seconds"},
    })
    log.info("encoder_mnrl: %s; loss %s; trained in %.1fs", train_log["data"], train_log["loss_per_epoch"],
             train_log["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
