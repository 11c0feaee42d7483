"""Stage `prepare`: raw sources -> canonical JSONL in data/prepared/ (params: seed, data).

Writes corpus_train.jsonl / corpus_test.jsonl (the corpus split by problem id), tasks.jsonl (the
efficiency tasks, a deterministic subset of `data.limit_tasks`) and opt_tasks.jsonl (the 142
scored ENAMEL tasks).
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.datasets import load_corpus_source, load_opt_tasks, load_task_source, select_subset, split_by_problem
from perfrepro.io import atomic_outputs
from perfrepro.records import write_jsonl
from perfrepro.stage import stage

log = logging.getLogger("prepare")


@stage("prepare", "out")
def main(args) -> int:
    params = load_params(args.params)
    data = params.data
    corpus = load_corpus_source(data.corpus_source, data.corpus, data.language)
    train, test = split_by_problem(corpus, data.test_fraction, params.seed)
    tasks = select_subset(load_task_source(data.tasks_source, data.tasks), data.limit_tasks, params.seed)
    opt_tasks = load_opt_tasks(data.enamel_dir)
    outputs = {"corpus_train": train, "corpus_test": test, "tasks": tasks, "opt_tasks": opt_tasks}
    with atomic_outputs(*(args.out / f"{name}.jsonl" for name in outputs)) as paths:
        for (name, records), path in zip(outputs.items(), paths):
            count = write_jsonl(path, records)
            log.info("%s.jsonl: %d rows", name, count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
