"""Where per-task work runs: in this process (`local`), on Dask (`dask`: a LocalCluster or a
running scheduler at `executor.address`), or on Slurm through dask-jobqueue (`slurm`).

Executors know nothing of what an item computes: they run a function over items and return the
results in item order (see base.Executor). `make_executor` is the one factory, keyed by
`executor.kind`; use it as a context manager so a started cluster is always shut down.
"""

from __future__ import annotations

from perfrepro.config import ExecutorConfig
from perfrepro.dispatch.base import (
    LOCAL_WORKER,
    Executor,
    ExecutorError,
    LocalExecutor,
    TaskFailure,
    physical_cores,
    worker_name,
)

__all__ = ["Executor", "ExecutorError", "LocalExecutor", "LOCAL_WORKER", "TaskFailure", "make_executor",
           "physical_cores", "worker_name"]


def make_executor(config: ExecutorConfig, progress: bool = True):
    """The executor named by `executor.kind`, started (use it in a ``with`` block)."""
    if config.kind == "local":
        return LocalExecutor(config.retries, progress)
    from perfrepro.dispatch import dask_cluster

    if config.kind == "dask":
        if config.address:
            return dask_cluster.connect(config, progress)
        return dask_cluster.start_local_cluster(config, progress)
    if config.kind == "slurm":
        return dask_cluster.start_slurm_cluster(config, progress)
    raise ExecutorError(f"executor.kind: unknown kind {config.kind!r} (expected local, dask or slurm)")
