"""embed_ooc stage: the out-of-corpus evaluation set in data/ooc (never read by generate).

Every efficiency task (all of `data.tasks`, not the `limit_tasks` subset) whose id and statement
are not in the retrieval corpus: its statement is a query, its canonical solution an extra
document (id `task:<task id>`). Writes tasks.jsonl ({id, statement, canonical}), queries.npy and
canonicals.npy (base all-MiniLM-L6-v2, L2-normalised).
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.datasets import load_task_source
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.retrieval.build import build_ooc_set
from perfrepro.stage import stage

log = logging.getLogger("embed_ooc")


@stage("embed_ooc", "train", "test", "out", model=True)
def main(args) -> int:
    params = load_params(args.params)
    tasks = load_task_source(params.data.tasks_source, params.data.tasks)
    corpus = read_jsonl(args.train, CorpusPair) + read_jsonl(args.test, CorpusPair)
    kept = build_ooc_set(tasks, corpus, params.embed.max_seq_length, params.embed.batch_size, args.out,
                         source=params.data.tasks)
    log.info("wrote %s: %d out-of-corpus tasks", args.out, kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
