"""Samples files of any model, in the format evalplus, ENAMEL, EvalPerf and bigcode-evaluation-harness
share, read as a generation backend (``llm.backend: samples``), and the importers that write them.

The format (evalplus ``samples.jsonl``): one JSON object per line with ``task_id`` and either
``solution``, a whole program, or ``completion``, a body appended to the task's prompt (the
HumanEval prompt for ENAMEL tasks; LeetCodeDataset's ``prompt`` field, its imports, for the
efficiency tasks, as that dataset's own evaluation joins them). As in evalplus, ``solution`` wins
when a line has both. Several lines of one task are several samples, in file order. A folder holds
one file per model, ``<folder>/<model>.jsonl`` (or ``.jsonl.gz``).

Bad input stops with the file and line: a line that is not such an object, or a task id the track
does not have. A task of the track with fewer samples than asked gets no_code completions for the
missing ones (`SamplesBackend`): a model that left a task out has no program for it.

evalplus itself (``evalplus.data.load_solutions``) is not used: its wheel requires anthropic,
google-generativeai, openai, transformers, datasets, tree-sitter and wget among 18 dependencies,
and its reader checks lines with ``assert`` (no line number for malformed JSON, nothing under
``python -O``) and reads a folder as task sub-folders of ``.py`` files, not one file per model.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from perfrepro.config import SamplesConfig
from perfrepro.datasets.base import DatasetError, Row, read_rows
from perfrepro.generation.client import ChatRequest, ChatResult, prompt_hash
from perfrepro.generation.endpoint import BackendError
from perfrepro.records import Completion, OptTask, Task

SUFFIXES = (".jsonl", ".jsonl.gz")


class SamplesError(BackendError):
    """A samples file that cannot be read as the track needs; the message names file and line."""


@dataclass(frozen=True)
class Sample:
    """One line of a samples file: a whole program (`solution`) or a body for the prompt (`completion`)."""

    task_id: str
    line: int
    solution: str | None = None
    completion: str | None = None

    def program(self, prompt: str) -> str:
        return self.solution if self.solution is not None else prompt + self.completion


def samples_path(path: str | os.PathLike, model: str | None = None) -> Path:
    """The samples file itself, or for a folder the file of `model` in it (``<model>.jsonl[.gz]``)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise SamplesError(f"samples file {path}: not found")
    if model is not None:
        for suffix in SUFFIXES:
            if (path / f"{model}{suffix}").is_file():
                return path / f"{model}{suffix}"
    found = sorted(p.name for p in path.iterdir() if p.name.endswith(SUFFIXES))
    raise SamplesError(f"samples folder {path}: no file {model}.jsonl for model {model!r} "
                       f"(one file per model; found: {', '.join(found) or 'none'})")


def _sample(row: Row, task_ids: Mapping[str, Any] | set, track: str) -> Sample:
    where, data = f"samples file {row.where}", row.data
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise SamplesError(f"{where}: field 'task_id' is missing or not a string")
    if task_id not in task_ids:
        raise SamplesError(f"{where}: task id {task_id!r} is not a task of the {track}")
    for name in ("solution", "completion"):
        if name in data and not isinstance(data[name], str):
            raise SamplesError(f"{where}: field {name!r} of {task_id} is not a string "
                               f"(one sample per line: repeat the task_id for several)")
    if "solution" not in data and "completion" not in data:
        raise SamplesError(f"{where}: {task_id} has neither 'solution' (a whole program) nor 'completion' "
                           f"(a body appended to the prompt)")
    return Sample(task_id, row.number, data.get("solution"), None if "solution" in data else data["completion"])


def read_samples(path: str | os.PathLike, task_ids: Mapping[str, Any] | set, track: str = "track") -> list[Sample]:
    """Every sample of a samples file (.jsonl or .jsonl.gz), in file order. `task_ids` are the ids
    the track has (all of them, not only the ones measured); `track` names it in the messages."""
    try:
        rows = read_rows(path, "samples")  # the project's one JSONL reader: file and line in every error
    except DatasetError as exc:
        raise SamplesError(str(exc)) from None
    return [_sample(row, task_ids, track) for row in rows]


def task_prompt(task: Task | OptTask) -> str:
    """What a `completion` is appended to: the HumanEval prompt of an ENAMEL task, LeetCodeDataset's
    `prompt` (its imports) of an efficiency task."""
    return task.statement if isinstance(task, OptTask) else task.imports


def programs_by_task(samples: Iterable[Sample], tasks: Sequence[Task | OptTask]) -> dict[str, list[str]]:
    """task id -> its programs in file order, for the tasks in `tasks` (samples of other tasks of
    the track are left out)."""
    prompts = {task.id: task_prompt(task) for task in tasks}
    programs: dict[str, list[str]] = {task.id: [] for task in tasks}
    for sample in samples:
        if sample.task_id in prompts:
            programs[sample.task_id].append(sample.program(prompts[sample.task_id]))
    return programs


class SamplesBackend:
    """Answers a request for task t, sample s, with the s-th sample of t in the file, as a program
    (no extraction); a task with fewer samples gets no answer (no_code)."""

    def __init__(self, programs: Mapping[str, Sequence[str]], model_label: str):
        self.programs = {task_id: list(found) for task_id, found in programs.items()}
        self.model_label = model_label

    def complete_many(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        results = []
        for request in requests:
            found = self.programs.get(request.id, [])
            code = found[request.sample] if request.sample < len(found) else None
            results.append(ChatResult(id=request.id, text=code, code=code, cached=True,
                                      prompt_hash=prompt_hash(request.messages)))
        return results


def sample_completions(backend: SamplesBackend, tasks: Sequence[Task | OptTask], samples: int) -> list[Completion]:
    """Completions of samples 0 .. `samples` - 1 of every task, sample-major (as the optimize stage
    writes them); a sample the file does not have is no_code."""
    from perfrepro.generation.generate import to_completion

    completions = []
    for sample in range(samples):
        results = backend.complete_many([ChatRequest(id=task.id, messages=(), sample=sample) for task in tasks])
        completions += [to_completion(task, result, backend.model_label, (), sample) for task, result in zip(tasks, results)]
    return completions


def select_tasks(tasks: Sequence[OptTask], task_ids: Sequence[str], limit: int | None, where: str) -> list[OptTask]:
    """The first `limit` (all when None) of `task_ids`, as tasks, in that order; an id that is not
    among `tasks` is an error naming it and `where` the tasks came from."""
    by_id = {task.id: task for task in tasks}
    chosen = list(task_ids if limit is None else task_ids[:limit])
    unknown = [task_id for task_id in chosen if task_id not in by_id]
    if unknown:
        raise SamplesError(f"samples.tasks: {', '.join(unknown)} not among the {len(by_id)} tasks in {where}")
    return [by_id[task_id] for task_id in chosen]


def configured_source(config: SamplesConfig | None) -> str | None:
    """``samples.backend.source``: where llm.backend: samples' code came from (None without it)."""
    return config.backend.source if config is not None and config.backend is not None else None


def sample_label(model: str, source: str) -> str:
    """A row's label: the model, then where its code came from."""
    return f"{model} ({source})"


def open_samples(path: str | os.PathLike, model: str, source: str, track_tasks: Sequence[Task | OptTask],
                 tasks: Sequence[Task | OptTask], track: str) -> SamplesBackend:
    """The samples backend of `model` for `tasks`; `track_tasks` are all the track's tasks (an id
    outside them is an error)."""
    file = samples_path(path, model)
    samples = read_samples(file, {task.id for task in track_tasks}, track)
    return SamplesBackend(programs_by_task(samples, tasks), sample_label(model, source))


def samples_opener(config: SamplesConfig | None, track_tasks: Callable[[], Sequence[Task | OptTask]],
                   tasks: Sequence[Task | OptTask], track: str) -> Callable[[str], SamplesBackend]:
    """What `open_backend(samples=...)` takes: model name -> its backend, from ``samples.backend``."""

    def opener(model: str) -> SamplesBackend:
        entry = config.backend if config is not None else None
        if entry is None:
            raise SamplesError("samples.backend: missing; llm.backend: samples reads its file (or <folder>/<llm.model>.jsonl)")
        return open_samples(entry.file, model, entry.source, track_tasks(), tasks, track)

    return opener


def write_samples(path: str | os.PathLike, rows: Iterable[tuple[str, str]]) -> int:
    """Write (task id, whole program) rows as evalplus samples JSONL (``solution`` lines), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for task_id, solution in rows:
                out.write(json.dumps({"task_id": task_id, "solution": solution}, ensure_ascii=False) + "\n")
                count += 1
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared data file from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


# ---- importers: published result files -> (task id, program) rows ----


def _load_json(path: Path, label: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SamplesError(f"{label} file {path}: not found") from None
    except json.JSONDecodeError as exc:
        raise SamplesError(f"{label} file {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def evalperf_samples(path: str | os.PathLike) -> list[tuple[str, str]]:
    """EvalPerf's ``*_evalperf_results.brief.json``: ``eval[task_id].profiled[i].solution``, in
    file order (up to 20 correct samples per task; a task with none gives no row)."""
    path = Path(path)
    data = _load_json(path, "EvalPerf")
    tasks = data.get("eval") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        raise SamplesError(f"EvalPerf file {path}: expected an object with an 'eval' object (task id -> result)")
    rows = []
    for task_id, result in tasks.items():
        profiled = result.get("profiled") if isinstance(result, dict) else None
        if not isinstance(profiled, list):
            raise SamplesError(f"EvalPerf file {path}, eval[{task_id!r}]: field 'profiled' is missing or not a list")
        for index, sample in enumerate(profiled):
            solution = sample.get("solution") if isinstance(sample, dict) else None
            if not isinstance(solution, str):
                raise SamplesError(f"EvalPerf file {path}, eval[{task_id!r}].profiled[{index}]: "
                                   f"field 'solution' is missing or not a string")
            rows.append((task_id, solution))
    return rows


def enamel_samples(path: str | os.PathLike, id_format: str = "HumanEval/{}") -> list[tuple[str, str]]:
    """ENAMEL's samples JSON: a list with one list of programs per HumanEval task, in task order
    (entry i is ``id_format.format(i)``); each program is a whole program."""
    path = Path(path)
    data = _load_json(path, "ENAMEL samples")
    if not isinstance(data, list):
        raise SamplesError(f"ENAMEL samples file {path}: expected a list of program lists, got {type(data).__name__}")
    rows = []
    for index, programs in enumerate(data):
        if not isinstance(programs, list) or not all(isinstance(p, str) for p in programs):
            raise SamplesError(f"ENAMEL samples file {path}, entry {index} ({id_format.format(index)}): "
                               f"expected a list of programs (strings)")
        rows += [(id_format.format(index), program) for program in programs]
    return rows
