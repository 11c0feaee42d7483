"""Stage `generate`: efficiency tasks -> model completions (params: seed, shots, llm, retrieval).

Each task's statement retrieves `shots` performant solutions (query adapter `retrieval.adapter`,
chroma index data/index); the EffiBench-style RAG prompt goes to the `llm.backend` model; the
python block defining the entry point is kept. Writes data/completions/completions.jsonl
(Completion records). Responses are cached outside the workspace (`llm.cache_dir`, or
$PERFREPRO_LLM_CACHE), so a rerun sends only what is not cached yet. Exits 1, writing nothing, when
more than `llm.max_failure_fraction` of the requests failed for good or the endpoint cannot be
reached (a failed stage leaves no outputs; the responses received are in the cache).
"""

from __future__ import annotations

import logging
import sys
import time

from perfrepro.config import load_params
from perfrepro.generation.backends import check_backend, open_backend, preflight_backend
from perfrepro.datasets import load_task_source
from perfrepro.generation.generate import generate_completions
from perfrepro.generation.samples import samples_opener
from perfrepro.generation.recorded import recorded_loader
from perfrepro.generation.runinfo import CACHED_ON_INTERRUPT, write_completions
from perfrepro.generation.retrieve import retrieve_examples
from perfrepro.records import Task, read_jsonl
from perfrepro.stage import stage

log = logging.getLogger("generate")


@stage("generate", "tasks", "index", "adapters", "out", model=True, interrupted=CACHED_ON_INTERRUPT)
def main(args) -> int:
    started = time.perf_counter()
    params = load_params(args.params)
    check_backend(params.llm, shots=params.shots)  # before anything expensive
    preflight_backend(params.llm)  # a wrong llm.base_url fails here, in seconds
    tasks = read_jsonl(args.tasks, Task)
    retrieved = retrieve_examples(
        [(task.id, task.statement) for task in tasks],
        index_dir=args.index,
        k=params.shots,
        adapters_dir=args.adapters,
        adapter=params.retrieval.adapter,
        protocol=params.retrieval.protocol,
        max_seq_length=params.embed.max_seq_length,
    )
    track_tasks = lambda: load_task_source(params.data.tasks_source, params.data.tasks)  # noqa: E731 - samples' task ids
    samples = samples_opener(params.samples, track_tasks, tasks, f"efficiency track ({params.data.tasks})")
    recorded = recorded_loader(params.data.tasks_source, params.data.tasks)
    with open_backend(params.llm, shots=params.shots, recorded_responses=recorded, samples=samples) as backend:
        completions = generate_completions(tasks, backend, retrieved)
    return write_completions(args.out, completions, backend, params.llm.max_failure_fraction, started)


if __name__ == "__main__":
    sys.exit(main())
