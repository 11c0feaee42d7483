"""What every executor promises, and the in-process one (`executor.kind: local`).

An executor runs one function over a list of items (one item = one unit of work, e.g. a task with
its canonical solution and all its completions) and gives the results back in item order. It knows
nothing of what the function computes. A function that raises is tried again (`retries` extra
tries, as Dask's `retries` does); an item that fails on every try gets a `TaskFailure` in its slot,
never a missing slot, so the caller can turn it into failed records with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
# tally(result) -> counts to add to the progress bar's postfix (e.g. {"failed": 2})
Tally = Callable[[Any], Mapping[str, int]]

LOCAL_WORKER = "local"


class ExecutorError(RuntimeError):
    """An executor that cannot start (no scheduler at the address, no sbatch, ...); the message
    names the params key and what to do."""


@dataclass(frozen=True)
class TaskFailure:
    """The result slot of an item whose function failed on every try."""

    reason: str
    tries: int


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[Item], Result], items: Sequence[Item], desc: str, unit: str = "task",
            tally: Tally | None = None) -> list[Result | TaskFailure]:
        """fn(item) for every item, results in item order; a TaskFailure where every try failed."""
        ...

    def run_everywhere(self, fn: Callable[[], Result]) -> dict[str, Result]:
        """fn() once on every worker connected now, by worker name."""
        ...

    def hosts(self) -> dict[str, int]:
        """Worker processes per machine (host name -> count), as connected now."""
        ...

    def close(self) -> None:
        ...


def worker_name() -> str:
    """The name of the worker running the caller: its Dask address, or ``local`` in the stage."""
    if "distributed" in sys.modules:  # never import Dask for a local run
        from distributed import get_worker

        try:
            return get_worker().address
        except ValueError:  # not inside a Dask task
            pass
    return LOCAL_WORKER


def failure_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ProgressTally:
    """The progress bar's postfix: counts summed over the results seen so far."""

    def __init__(self, bar: tqdm, tally: Tally | None):
        self.bar, self.tally, self.counts = bar, tally, {"failed_tasks": 0}

    def add(self, result: Any) -> None:
        if isinstance(result, TaskFailure):
            self.counts["failed_tasks"] += 1
        elif self.tally is not None:
            for key, value in self.tally(result).items():
                self.counts[key] = self.counts.get(key, 0) + value
        self.bar.update(1)
        self.bar.set_postfix({k: v for k, v in self.counts.items() if v or k != "failed_tasks"}, refresh=False)


class LocalExecutor:
    """Today's loop: every item in this process, one after the other. Starts nothing."""

    name = "local"

    def __init__(self, retries: int = 2, progress: bool = True):
        self.retries = retries
        self.progress = progress

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def map(self, fn: Callable[[Item], Result], items: Iterable[Item], desc: str, unit: str = "task",
            tally: Tally | None = None) -> list[Result | TaskFailure]:
        items = list(items)
        results: list[Result | TaskFailure] = []
        with tqdm(total=len(items), desc=desc, unit=unit, disable=not self.progress) as bar:
            progress = ProgressTally(bar, tally)
            for index, item in enumerate(items):
                results.append(self._call(fn, item, f"{desc} item {index}"))
                progress.add(results[-1])
        return results

    def _call(self, fn: Callable[[Item], Result], item: Item, where: str) -> Result | TaskFailure:
        for attempt in range(1, self.retries + 2):
            try:
                return fn(item)
            except Exception as exc:  # KeyboardInterrupt and SystemExit stop the run
                reason = failure_reason(exc)
                if attempt <= self.retries:
                    log.warning("%s raised (%s); try %d of %d", where, reason, attempt + 1, self.retries + 1)
                    continue
                log.error("%s failed on every try (%d): %s", where, attempt, reason)
                return TaskFailure(reason, attempt)
        raise AssertionError("unreachable")

    def run_everywhere(self, fn: Callable[[], Result]) -> dict[str, Result]:
        return {LOCAL_WORKER: fn()}

    def hosts(self) -> dict[str, int]:
        return {socket.gethostname(): 1}

    def close(self) -> None:
        pass


def physical_cores() -> int:
    """Physical cores of this machine (what `executor.workers: null` starts)."""
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
    except ImportError:
        count = None
    return count or os.cpu_count() or 1
