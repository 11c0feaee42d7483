"""One interface for timing backends, and the factory keyed by `timing.backend`.

A backend takes Programs (see perfrepro.records.Program) and returns one Measurement per Program,
in the same order. A new backend is one new module plus one line in `_BACKENDS`; callers never
branch on the backend's name.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol, Sequence

from perfrepro.config import TimingConfig
from perfrepro.records import Measurement, Program

# on_run(program, repeat, details): called once per raw run (a repeat, or a valgrind tool run),
# so a stage can keep per-repeat raw samples beside the summarised Measurements.
RunCallback = Callable[[Program, int, dict[str, Any]], None]


class TimingBackend(Protocol):
    name: str

    def measure(self, programs: Sequence[Program]) -> list[Measurement]:
        """One Measurement per program, same order; failures are Measurements with a failed status."""
        ...


# timing.backend value -> "module:class"; imported lazily, so a backend's dependencies (docker
# for gem5) are only needed when it is chosen.
_BACKENDS = {
    "wall": "perfrepro.timing.wall:WallClockBackend",
    "deterministic": "perfrepro.timing.deterministic:DeterministicBackend",
    "gem5": "perfrepro.timing.gem5:Gem5Backend",
}


def make_backend(config: TimingConfig, on_run: RunCallback | None = None) -> TimingBackend:
    """The backend named by `config.backend`, built from the whole timing section."""
    try:
        target = _BACKENDS[config.backend]
    except KeyError:
        raise ValueError(
            f"timing.backend: unknown backend {config.backend!r} (expected one of {', '.join(_BACKENDS)})"
        ) from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ValueError(f"timing.backend: {config.backend} is not available here ({module_name} is missing)") from None
        raise
    return getattr(module, class_name)(config, on_run=on_run)


def failed(program: Program, backend: str, status: str, time_unit: str, error: str | None) -> Measurement:
    """The Measurement of a program that did not pass: no numbers, only the status and why."""
    return failed_record(program.task_id, program.role, program.sample, backend, status, time_unit, error)


def failed_record(task_id: str, role: str, sample: int, backend: str, status: str, time_unit: str,
                  error: str | None) -> Measurement:
    """A Measurement with no numbers, only the status and why: of a program that did not pass, or
    of one that was never built (the optimization track's untimed levels)."""
    return Measurement(
        task_id=task_id,
        role=role,
        backend=backend,
        status=status,
        execution_time=None,
        time_unit=time_unit,
        peak_memory_mb=None,
        memory_usage=None,
        sample=sample,
        error=error,
    )
