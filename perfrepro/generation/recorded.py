"""LeetCodeDataset's recorded responses (its `response` field): what `llm.backend: recorded` replays
in generate, and measure's reference row beside the live model's."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

from perfrepro.records import Completion, Task

REFERENCE_SOURCE = "leetcodedataset-response"  # where the reference code came from (as perfrepro.report labels it)


def recorded_loader(tasks_source: str, tasks_file: str) -> Callable[[], Mapping[str, str]]:
    """A loader of task id -> recorded response, called only when the recorded backend is opened."""

    def load():
        from perfrepro.datasets.leetcodedataset import load_recorded_responses
        from perfrepro.generation.backends import BackendError

        if tasks_source != "leetcodedataset":
            raise BackendError(
                f"llm.backend: recorded needs LeetCodeDataset tasks (their `response` field); "
                f"data.tasks_source is {tasks_source}"
            )
        return load_recorded_responses(tasks_file)

    return load


def reference_completions(tasks: Sequence[Task], backend: str, tasks_source: str,
                          tasks_file: str) -> tuple[list[Completion], str | None]:
    """The dataset's recorded responses as reference completions, and why there are none
    (`backend`: the live llm.backend; `tasks_source`, `tasks_file`: data.tasks_source, data.tasks)."""
    if backend == "recorded":
        return [], "llm.backend is recorded: the live row already holds these responses"
    if tasks_source != "leetcodedataset":
        return [], f"data.tasks_source is {tasks_source}: no recorded responses"
    from perfrepro.datasets.leetcodedataset import load_recorded_responses
    from perfrepro.generation.backends import RecordedBackend
    from perfrepro.generation.generate import generate_completions

    recorded = RecordedBackend(load_recorded_responses(tasks_file), source=tasks_file)
    completions = generate_completions(tasks, recorded)  # the recorded backend's own extraction
    return [dataclasses.replace(c, model=REFERENCE_SOURCE) for c in completions], None


def reference_summary(references: Sequence[Completion], no_reference: str | None, tasks_file: str) -> dict:
    """environment.json's ``reference``: where the reference row came from, or why there is none."""
    if not references:
        return {"source": None, "why_none": no_reference}
    return {"source": REFERENCE_SOURCE, "file": tasks_file, "completions": len(references),
            "with_code": sum(1 for c in references if c.status == "ok")}
