"""Dask distributed executors: a LocalCluster, an existing scheduler, or a dask-jobqueue SLURMCluster.

One item = one Dask future (`client.submit`, `retries` extra tries for a function that raises).
A worker that dies mid-item gets the item re-run elsewhere by the scheduler, up to
`distributed.scheduler.allowed-failures` times (set to `retries` on the clusters started here;
an existing scheduler keeps its own setting, 3 by default); after that the item is a TaskFailure.
Ctrl-C (or SIGTERM, what dvc and Slurm send) cancels every future, closes the client and shuts
down a cluster this process started, whose worker processes take their sandboxed runs with them;
then its Dask files go, and a LocalCluster's workers' leftover run dirs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections import Counter
from typing import Any, Callable, Iterable

from tqdm import tqdm

from perfrepro.config import ExecutorConfig, SlurmConfig
from perfrepro.dispatch.base import ExecutorError, ProgressTally, Tally, TaskFailure, failure_reason, physical_cores
from perfrepro.execution.sandbox import RUN_DIR_OWNER_ENV, new_owner, remove_run_roots

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 20


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class DaskExecutor:
    """Items as futures on a Dask cluster; closes what it started (cluster and client)."""

    name = "dask"

    def __init__(self, client, cluster=None, retries: int = 2, progress: bool = True, describe: str = "",
                 scratch: str | None = None, run_dir_owner: str | None = None):
        self.client = client
        self.cluster = cluster  # None: an existing scheduler, which is not ours to stop
        self.retries = retries
        self.progress = progress
        self.describe = describe
        # removed once the cluster is closed: the Dask files of a cluster started here, and a
        # LocalCluster's workers' sandbox run dirs on this machine (the owner in their names)
        self.scratch = scratch
        self.run_dir_owner = run_dir_owner
        self._previous_sigterm = None

    def __enter__(self) -> "DaskExecutor":
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.close()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None

    def map(self, fn: Callable, items: Iterable, desc: str, unit: str = "task",
            tally: Tally | None = None) -> list:
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        items = list(items)
        run = uuid.uuid4().hex[:8]  # keys only name the futures; results never depend on them
        futures = []
        try:
            for index, item in enumerate(items):
                futures.append(self.client.submit(fn, item, key=f"{desc}-{index}-{run}", retries=self.retries,
                                                  pure=False))
            slot = {future.key: index for index, future in enumerate(futures)}
            results: list[Any] = [None] * len(items)
            with tqdm(total=len(items), desc=f"{desc} ({self.describe or 'dask'})", unit=unit,
                      disable=not self.progress) as bar:
                progress = ProgressTally(bar, tally)
                for future in as_completed(futures):
                    index = slot[future.key]
                    try:
                        results[index] = future.result()
                    except KilledWorker as exc:
                        results[index] = TaskFailure(f"the worker running it died on every try ({exc})",
                                                     self.retries + 1)
                    except FutureCancelledError as exc:
                        results[index] = TaskFailure(f"cancelled by the scheduler ({exc})", 1)
                    except Exception as exc:  # the function raised on every try
                        results[index] = TaskFailure(failure_reason(exc), self.retries + 1)
                    if isinstance(results[index], TaskFailure):
                        log.error("%s item %d failed: %s", desc, index, results[index].reason)
                    future.release()
                    progress.add(results[index])
            return results
        except BaseException:  # Ctrl-C, SIGTERM, a lost scheduler: nothing may keep running for us
            if futures:
                with contextlib.suppress(Exception):
                    self.client.cancel(futures, force=True)
            raise

    def run_everywhere(self, fn: Callable[[], Any]) -> dict[str, Any]:
        return self.client.run(fn)

    def hosts(self) -> dict[str, int]:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}) if _takes_n_workers(self.client) \
            else self.client.scheduler_info().get("workers", {})
        return dict(Counter(info.get("host", address) for address, info in workers.items()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=CLOSE_TIMEOUT_S)
            self.cluster = None
        if self.run_dir_owner is not None:  # a killed worker's in-flight runs never reached their `finally`
            if left := remove_run_roots(self.run_dir_owner):
                log.info("removed %d sandbox run dirs the cluster's workers left", len(left))
            self.run_dir_owner = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _import_distributed():
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise ExecutorError("executor.kind: dask needs Dask (pip install 'dask[distributed]'); "
                            "or use executor.kind: local") from None
    # the scheduler, nannies and client log every connection at INFO (each logger configured on
    # import); the stage's log keeps ours
    for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "dask_jobqueue")]:
        logging.getLogger(name).setLevel(logging.WARNING)
    return distributed


def _start(make_cluster: Callable[[str], Any]) -> tuple[Any, Any, str]:
    """`make_cluster(scratch)`'s cluster and a client of it. The cluster keeps its Dask files in
    `scratch`, a perfrepro-dask-* dir of its own, not in a dask-scratch-space that outlives a cluster
    closed mid-run; if starting fails, the half-started cluster is closed and the dir removed."""
    distributed = _import_distributed()
    scratch = tempfile.mkdtemp(prefix="perfrepro-dask-")
    cluster = None
    try:
        cluster = make_cluster(scratch)
        return cluster, distributed.Client(cluster), scratch
    except BaseException:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def start_local_cluster(config: ExecutorConfig, progress: bool = True) -> DaskExecutor:
    """A LocalCluster of `executor.workers` single-threaded process workers (null: physical cores).

    The script that calls this needs the ``if __name__ == "__main__":`` guard: the workers are
    spawned processes that import it."""
    import dask

    distributed = _import_distributed()
    workers = config.workers or physical_cores()
    owner = new_owner()

    def local_cluster(scratch: str):
        with dask.config.set({"distributed.scheduler.allowed-failures": config.retries,
                              "temporary-directory": scratch}):
            return distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                memory_limit=0,  # the sandbox limits each run; Dask must not pause or kill a busy worker
                dashboard_address=None, silence_logs=logging.ERROR, env={RUN_DIR_OWNER_ENV: owner},
            )

    cluster, client, scratch = _start(local_cluster)
    log.info("executor: dask LocalCluster, %d process workers (1 thread each) at %s", workers, cluster.scheduler_address)
    return DaskExecutor(client, cluster, config.retries, progress, describe=f"dask, {workers} workers",
                        scratch=scratch, run_dir_owner=owner)


def connect(config: ExecutorConfig, progress: bool = True) -> DaskExecutor:
    """A client of the running scheduler at `executor.address`; fails within connect_timeout_s."""
    distributed = _import_distributed()
    try:
        client = distributed.Client(config.address, timeout=config.connect_timeout_s)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExecutorError(
            f"executor.address: no Dask scheduler answered at {config.address} within "
            f"{config.connect_timeout_s:g} s ({type(exc).__name__}: {exc}); start one there "
            f"(`dask scheduler`, then `dask worker {config.address}` on each machine) or set "
            "executor.address: null to start a LocalCluster"
        ) from None
    workers = len(client.scheduler_info().get("workers", {}))
    log.info("executor: dask scheduler %s, %d workers connected now", config.address, workers)
    return DaskExecutor(client, None, config.retries, progress, describe=f"dask {config.address}")


def slurm_cluster_kwargs(slurm: SlurmConfig) -> dict[str, Any]:
    """SLURMCluster arguments: one single-threaded worker process per core of each job."""
    kwargs: dict[str, Any] = {
        "cores": slurm.cores,
        "processes": slurm.cores,
        "memory": slurm.memory,
        "walltime": slurm.walltime,
        "python": slurm.python or sys.executable,
        "job_name": "perfrepro-worker",
    }
    if slurm.queue:
        kwargs["queue"] = slurm.queue
    if slurm.account:
        kwargs["account"] = slurm.account
    if slurm.job_extra_directives:
        kwargs["job_extra_directives"] = list(slurm.job_extra_directives)
    if slurm.interface:
        kwargs["interface"] = slurm.interface
    return kwargs


def slurm_cluster(slurm: SlurmConfig, retries: int = 2, scratch: str | None = None):
    """An (unscaled) SLURMCluster; its scheduler runs in this process, with its files in `scratch`
    (None: Dask's dask-scratch-space in the temp dir). Needs no Slurm to build."""
    import dask

    _import_distributed()
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ExecutorError("executor.kind: slurm needs dask-jobqueue (pip install dask-jobqueue)") from None
    with dask.config.set({"distributed.scheduler.allowed-failures": retries, "temporary-directory": scratch}):
        return SLURMCluster(**slurm_cluster_kwargs(slurm))


def job_script(slurm: SlurmConfig) -> str:
    """The #SBATCH script a worker job runs, rendered without submitting anything."""
    with tempfile.TemporaryDirectory(prefix="perfrepro-dask-") as scratch:
        cluster = slurm_cluster(slurm, scratch=scratch)
        try:
            return cluster.job_script()
        finally:
            cluster.close()


def start_slurm_cluster(config: ExecutorConfig, progress: bool = True) -> DaskExecutor:
    """A SLURMCluster scaled to `executor.jobs` jobs; closed (jobs cancelled) with the executor."""
    if shutil.which("sbatch") is None:
        raise ExecutorError(
            "executor.kind: slurm needs Slurm's `sbatch` on PATH, and it is not there; run the stage on "
            "a Slurm login node, or use executor.kind: dask (a LocalCluster, or executor.address of a "
            "running scheduler)"
        )
    cluster, client, scratch = _start(lambda scratch: slurm_cluster(config.slurm, config.retries, scratch))
    executor = DaskExecutor(client, cluster, config.retries, progress,
                            describe=f"slurm, {config.jobs * config.slurm.cores} workers", scratch=scratch)
    try:
        cluster.scale(jobs=config.jobs)
    except BaseException:
        executor.close()
        raise
    log.info("executor: SLURMCluster, %d jobs x %d workers (queue %s); results come as jobs start",
             config.jobs, config.slurm.cores, config.slurm.queue or "default")
    return executor
