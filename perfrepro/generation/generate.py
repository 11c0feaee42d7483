"""The generate step as a pure library call: tasks (+ retrieved examples) -> Completion records."""

from __future__ import annotations

import logging
from typing import Mapping, Protocol, Sequence

from perfrepro.generation.client import ChatBackend, ChatRequest, ChatResult
from perfrepro.generation.extract import extract_code
from perfrepro.generation.prompts import generation_messages
from perfrepro.generation.retrieve import Example
from perfrepro.records import Completion, Task


def build_requests(tasks: Sequence[Task], retrieved: Mapping[str, Sequence[Example]]) -> list[ChatRequest]:
    """One chat request per task, with its retrieved solutions as the prompt's examples."""
    return [
        ChatRequest(id=task.id, messages=generation_messages(task, [code for _, code in retrieved.get(task.id, ())]))
        for task in tasks
    ]


log = logging.getLogger(__name__)


class Promptable(Protocol):
    """What `to_completion` needs of a task: Task and OptTask both fit."""

    id: str
    entry_point: str


def to_completion(task: Promptable, result: ChatResult, model: str, retrieved_ids: Sequence[str], sample: int = 0) -> Completion:
    """A Completion: status "ok" with the extracted code (or the program a samples backend gave),
    "no_code" when the answer holds no block that defines the entry point, "error" when the request
    failed."""
    if not result.ok:
        status, code = "error", None
    else:
        code = result.code if result.code is not None else extract_code(result.text, task.entry_point)
        status = "ok" if code is not None else "no_code"
    return Completion(
        task_id=task.id,
        sample=sample,
        model=model,
        status=status,
        code=code,
        response=result.text,
        retrieved_ids=tuple(retrieved_ids),
        error=result.error,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        prompt_hash=result.prompt_hash,
    )


def generate_completions(
    tasks: Sequence[Task],
    backend: ChatBackend,
    retrieved: Mapping[str, Sequence[Example]] | None = None,
) -> list[Completion]:
    """Ask `backend` for every task (in task order) and turn the answers into Completions."""
    retrieved = retrieved or {}
    requests = build_requests(tasks, retrieved)
    results = backend.complete_many(requests, desc="generate")
    return [
        to_completion(task, result, backend.model_label, [doc_id for doc_id, _ in retrieved.get(task.id, ())])
        for task, result in zip(tasks, results)
    ]


def failure_fraction(completions: Sequence[Completion]) -> float:
    """Share of requests that failed for good (status "error"; "no_code" is an answer, not a failure)."""
    if not completions:
        return 0.0
    return sum(c.status == "error" for c in completions) / len(completions)


def status_counts(completions: Sequence[Completion]) -> dict[str, int]:
    return {s: sum(c.status == s for c in completions) for s in ("ok", "no_code", "error")}


def too_many_failures(completions: Sequence[Completion], max_failure_fraction: float, key: str = "llm") -> bool:
    """True (and logged with the first error) when failures exceed `max_failure_fraction`."""
    fraction = failure_fraction(completions)
    if fraction <= max_failure_fraction:
        return False
    first = next(c.error for c in completions if c.status == "error")
    log.error("%.0f%% of requests failed (%s.max_failure_fraction %.2f); first error: %s",
              100 * fraction, key, max_failure_fraction, first)
    return True
