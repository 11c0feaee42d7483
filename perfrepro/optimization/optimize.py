"""The optimize step as library calls: tasks + retrieved PIE examples -> Completion records.

Each task's slow program (the HumanEval canonical solution) retrieves `shots` PIE slow -> fast
pairs by the similarity of its embedding to the pairs' slow sides, goes into a PIE-shaped prompt
(`pie.prompt_style`) and is sent `samples` times; sample s uses decoding seed ``llm.seed + s`` so
Best@k sees different programs when the temperature is above 0.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Mapping, Sequence

from perfrepro.config import LLMConfig
from perfrepro.datasets.pie import load_pairs
from perfrepro.generation.backends import check_backend
from perfrepro.generation.client import ChatBackend, ChatRequest
from perfrepro.generation.generate import to_completion
from perfrepro.optimization.prompts import optimization_messages, optimization_user_prompt
from perfrepro.records import Completion, CorpusPair, OptTask

log = logging.getLogger(__name__)


def retrieve_pie_examples(
    tasks: Sequence[OptTask],
    pairs: Sequence[CorpusPair],
    shots: int,
    pairs_file: str,
    cache_dir: str,
    batch_size: int = 64,
    max_seq_length: int | None = 256,
) -> dict[str, list[CorpusPair]]:
    """task id -> its `shots` nearest PIE pairs (by slow program), least similar first."""
    if shots <= 0 or not tasks:
        return {task.id: [] for task in tasks}
    from perfrepro.embeddings.encoder import MODEL_NAME, encode_texts, load_encoder
    from perfrepro.optimization.fewshot import nearest_examples, pie_slow_embeddings

    encoder = load_encoder(max_seq_length=max_seq_length)
    bank = pie_slow_embeddings(pairs, pairs_file, cache_dir, encoder, MODEL_NAME, batch_size)
    queries = encode_texts(encoder, [task.slow_program for task in tasks], batch_size=batch_size, show_progress=False)
    chosen = nearest_examples(queries, bank, shots)
    return {task.id: [pairs[i] for i in rows] for task, rows in zip(tasks, chosen)}


def pie_examples(tasks: Sequence[OptTask], pairs_file: str | Path | None, shots: int,
                 llm_cache: Path) -> dict[str, list[CorpusPair]]:
    """retrieve_pie_examples over the PIE pairs in `pairs_file` (read only when `shots` > 0), their
    embeddings cached beside the LLM response cache `llm_cache`."""
    if shots > 0 and pairs_file is None:
        raise ValueError(f"{shots} shots need a file of PIE slow -> fast pairs, and none was given")
    pairs = load_pairs(pairs_file) if shots > 0 else []
    return retrieve_pie_examples(tasks, pairs, shots, str(pairs_file), str(llm_cache.parent / "pie-embeddings"))


def build_requests(
    tasks: Sequence[OptTask],
    examples: Mapping[str, Sequence[CorpusPair]],
    style: str,
    conditioned_template: str | None = None,
) -> list[ChatRequest]:
    return [
        ChatRequest(
            id=task.id,
            messages=optimization_messages(optimization_user_prompt(
                task.slow_program,
                task.entry_point,
                [(p.slow_solution or "", p.solution) for p in examples.get(task.id, ())],
                style,
                conditioned_template,
            )),
        )
        for task in tasks
    ]


def optimize_tasks(
    tasks: Sequence[OptTask],
    examples: Mapping[str, Sequence[CorpusPair]],
    llm: LLMConfig,
    open_backend: Callable[[LLMConfig], object],
    samples: int = 1,
    style: str = "plain",
    conditioned_template: str | None = None,
    on_backend: Callable[[ChatBackend], None] | None = None,
    requests: Sequence[ChatRequest] | None = None,
) -> list[Completion]:
    """Completions for every (task, sample), sample-major; `open_backend(llm)` is a context
    manager yielding a ChatBackend (perfrepro.generation.backends.open_backend). `requests`
    (one per task, in order) replaces the few-shot prompts, e.g. for the fine-tuned model.

    ``llm.backend: recorded`` raises BackendError before any request: recorded responses exist
    only for the efficiency tasks, and a row of failures under a model's name would read as that
    model's result."""
    if llm.backend == "recorded":
        check_backend(llm, recorded_available=False, track="PIE track")  # raises, naming what to do
    if samples > 1 and llm.temperature == 0.0 and llm.backend != "samples":  # a samples file holds distinct programs
        log.warning("pie.samples is %d but llm.temperature is 0: the samples will be the same program", samples)
    if requests is None:
        requests = build_requests(tasks, examples, style, conditioned_template)
    completions: list[Completion] = []
    for sample in range(samples):
        with open_backend(dataclasses.replace(llm, seed=llm.seed + sample)) as backend:
            numbered = [dataclasses.replace(request, sample=sample) for request in requests]  # the samples backend's key
            results = backend.complete_many(numbered, desc=f"optimize sample {sample}")
            if on_backend is not None:
                on_backend(backend)
        for task, result in zip(tasks, results):
            ids = [p.id for p in examples.get(task.id, ())]
            completions.append(to_completion(task, result, backend.model_label, ids, sample))
    return completions
