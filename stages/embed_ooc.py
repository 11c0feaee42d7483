"""embed_ooc stage: the out-of-corpus evaluation set in data/ooc (never read by generate).

Every efficiency task (all of `data.tasks`, not the `limit_tasks` subset) whose id and statement
are not in the retrieval corpus: its statement is a query, its canonical solution an extra
document (id `task:<task id>`). Writes tasks.jsonl ({id, statement, canonical}), queries.npy and
canonicals.npy (base all-MiniLM-L6-v2, L2-normalised).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys

import numpy as np

from perfrepro.config import load_params
from perfrepro.datasets import load_task_source
from perfrepro.embeddings.encoder import encode_texts, load_encoder
from perfrepro.io import write_text
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.stage import stage

log = logging.getLogger("embed_ooc")


@stage("embed_ooc", "train", "test", "out")
def main(args) -> int:
    params = load_params(args.params)
    tasks = load_task_source(params.data.tasks_source, params.data.tasks)
    corpus = read_jsonl(args.train, CorpusPair) + read_jsonl(args.test, CorpusPair)
    seen_ids = {p.id for p in corpus}
    seen_text = {" ".join(p.problem.split()) for p in corpus}
    kept = [t for t in tasks if t.id not in seen_ids and " ".join(t.statement.split()) not in seen_text]
    if len(kept) < len(tasks):
        log.warning("%d of %d tasks are also in the corpus (same id or statement): left out", len(tasks) - len(kept), len(tasks))
    if not kept:
        raise SystemExit(f"{params.data.tasks}: no task outside the corpus; the out-of-corpus check has no queries")
    model = load_encoder(params.embed.max_seq_length)
    queries = encode_texts(model, [t.statement for t in kept], params.embed.batch_size)
    canonicals = encode_texts(model, [t.canonical_solution for t in kept], params.embed.batch_size)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    write_text(args.out / "tasks.jsonl", "".join(
        json.dumps({"id": t.id, "statement": t.statement, "canonical": t.canonical_solution}, ensure_ascii=False) + "\n"
        for t in kept
    ))
    np.save(args.out / "queries.npy", queries)
    np.save(args.out / "canonicals.npy", canonicals)
    log.info("wrote %s: %d out-of-corpus tasks", args.out, len(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
