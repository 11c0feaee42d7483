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

import argparse
import logging
import sys
import time
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.generation.backends import BackendError, check_backend, open_backend, preflight_backend
from perfrepro.datasets import DatasetError, load_task_source
from perfrepro.generation.generate import generate_completions, status_counts, too_many_failures
from perfrepro.generation.samples import samples_opener
from perfrepro.generation.local_server import LocalServerError
from perfrepro.generation.runinfo import start_model_stage, summary
from perfrepro.generation.retrieve import retrieve_examples
from perfrepro.io import atomic_outputs
from perfrepro.records import Task, read_jsonl, write_jsonl

log = logging.getLogger("generate")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tasks", type=Path, default=Path("data/prepared/tasks.jsonl"))
    parser.add_argument("--index", type=Path, default=Path("data/index"))
    parser.add_argument("--adapters", type=Path, default=Path("data/adapters"))
    parser.add_argument("--out", type=Path, default=Path("data/completions/completions.jsonl"))
    return parser.parse_args(argv)


def recorded_loader(params):
    def load():
        from perfrepro.datasets.leetcodedataset import load_recorded_responses

        if params.data.tasks_source != "leetcodedataset":
            raise BackendError(
                f"llm.backend: recorded needs LeetCodeDataset tasks (their `response` field); "
                f"data.tasks_source is {params.data.tasks_source}"
            )
        return load_recorded_responses(params.data.tasks)

    return load


def main(argv=None) -> int:
    start_model_stage("generate")
    args = parse_args(argv)
    started = time.perf_counter()
    try:
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
        with open_backend(params.llm, shots=params.shots, recorded_responses=recorded_loader(params),
                          samples=samples) as backend:
            completions = generate_completions(tasks, backend, retrieved)
    except (ConfigError, BackendError, LocalServerError, DatasetError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; responses received so far are cached, a rerun sends only the rest")
        return 130
    statuses = status_counts(completions)
    summary(backend, len(completions), statuses["error"], started)
    if too_many_failures(completions, params.llm.max_failure_fraction):
        log.error("nothing written: a failed stage leaves no outputs (responses received are cached)")
        return 1
    with atomic_outputs(args.out) as (out,):
        write_jsonl(out, completions)
    log.info("%s: %d completions (%s)", args.out, len(completions), ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
