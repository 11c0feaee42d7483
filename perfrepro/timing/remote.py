"""One task's backend run wherever an executor puts it, and its results back in the stage.

The stage hands an executor (perfrepro.dispatch) a picklable function per task; on the worker,
`run_backend` builds the timing backend from its TimingConfig (once per worker process), records
every raw run the backend reports, stamps each Measurement with the worker's environment
fingerprint and sends it all back as a `TaskRun`. In the stage, `collect` replays the raw runs
through the stage's own `on_run` callback in task order, checks that a `deterministic` run never
mixed environments, and turns a task that failed on every try into failed Measurements that say
why: never a missing row. Local and Dask runs go through the same code, so `deterministic`
outputs are byte-identical on every executor.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from perfrepro.config import TimingConfig
from perfrepro.dispatch import TaskFailure, worker_name
from perfrepro.records import Measurement, Program
from perfrepro.timing.base import RunCallback, TimingBackend, failed, make_backend
from perfrepro.timing.fingerprint import LOAD_SENSITIVE, check_uniform, environment_fingerprint, workers_sharing_a_machine

log = logging.getLogger(__name__)

EXECUTOR_FAILURE = "crash"  # the status of a program whose task failed on every try


@dataclass
class TaskRun:
    """What one task's run sends back: its Measurements (stamped with `environment`), the raw runs
    the backend reported as (program without its source, repeat, details), and who ran it."""

    measurements: list[Measurement]
    runs: list[tuple[Program, int, dict[str, Any]]] = field(default_factory=list)
    environment: str = ""
    worker: str = ""


_worker_backends: dict[TimingConfig, TimingBackend] = {}


def worker_backend(config: TimingConfig) -> TimingBackend:
    """This process's backend for `config`, built once (its caches, e.g. C++ start-up counts, last)."""
    if config not in _worker_backends:
        _worker_backends[config] = make_backend(config)
    return _worker_backends[config]


class Recorder:
    """Collects one task's raw runs; the program's source stays on the worker."""

    def __init__(self, backend: TimingBackend):
        self.backend = backend
        self.runs: list[tuple[Program, int, dict[str, Any]]] = []

    def __call__(self, program: Program, repeat: int, details: dict[str, Any]) -> None:
        self.runs.append((dataclasses.replace(program, source=""), repeat, dict(details)))

    def __enter__(self) -> "Recorder":
        self.previous, self.backend.on_run = self.backend.on_run, self
        return self

    def __exit__(self, *exc_info) -> None:
        self.backend.on_run = self.previous


def run_backend(config: TimingConfig, programs: Sequence[Program],
                then: Callable[[list[Measurement]], list[Measurement]] | None = None) -> TaskRun:
    """Measure `programs` in one backend call on this worker (`then` may add untimed records)."""
    backend = worker_backend(config)
    with Recorder(backend) as recorder:
        measured = backend.measure(list(programs))
    if then is not None:
        measured = then(measured)
    environment = environment_fingerprint(backend.name)
    return TaskRun([dataclasses.replace(m, environment=environment) for m in measured], recorder.runs,
                   environment, worker_name())


def failed_task(programs: Sequence[Program], backend: str, time_unit: str, failure: TaskFailure) -> list[Measurement]:
    """Failed Measurements for every program of a task that failed on every try, with the reason."""
    why = f"executor: the task failed on every try ({failure.tries}): {failure.reason}"
    return [failed(program, backend, EXECUTOR_FAILURE, time_unit, why) for program in programs]


def collect(results: Sequence[TaskRun | TaskFailure], expected: Sequence[Sequence[Program]], backend_name: str,
            time_unit: str, on_run: RunCallback | None) -> list[Measurement]:
    """Measurements of every task in task order; raw runs replayed through `on_run` in that order.

    `expected[i]` are the programs task i reports (stubs are enough) for when it failed everywhere.
    Raises RuntimeError when a `deterministic` run mixed environments, naming the odd workers."""
    check_uniform(backend_name, [(r.worker, r.environment) for r in results if isinstance(r, TaskRun)])
    out: list[Measurement] = []
    for result, programs in zip(results, expected, strict=True):
        if isinstance(result, TaskFailure):
            out += failed_task(programs, backend_name, time_unit, result)
            continue
        if on_run is not None:
            for program, repeat, details in result.runs:
                on_run(program, repeat, details)
        out += result.measurements
    return out


def check_workers(executor, backend_name: str) -> None:
    """Before the work: refuse mixed environments for `deterministic` (naming the odd workers),
    and say in the log when `wall` runs several workers on one machine."""
    fingerprints = executor.run_everywhere(lambda: environment_fingerprint(backend_name))
    check_uniform(backend_name, fingerprints.items())
    crowded = workers_sharing_a_machine(executor.hosts())
    if backend_name in LOAD_SENSITIVE and crowded:
        log.warning("timing.backend %s with %s: parallel load on a machine adds noise to wall-clock times "
                    "(workers share caches, memory bandwidth and turbo budget); for final numbers use one "
                    "worker per machine, or the deterministic backend", backend_name,
                    ", ".join(f"{count} workers on {host}" for host, count in sorted(crowded.items())))
