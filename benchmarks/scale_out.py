"""Scale-out benchmark: `measure` with the deterministic backend, in this process against a Dask
LocalCluster of 2 process workers (goal on a 2-core machine: >= 1.7x, byte-identical outputs),
and a scaling model a user can size a Slurm job with.

    python benchmarks/scale_out.py [--tasks 4] [--workers 2]

Tasks: the first --tasks of data/prepared/tasks.jsonl (the embedded default's), else the test
fixtures; each task's canonical solution is measured (a completion-less task adds a no_code row).
The scaling model: per-program cost c (measured here, local run) and the scheduler's overhead per
task o (measured: a no-op task round trip on the cluster), then for T tasks with p programs each
on W workers, wall time = ceil(T / W) x (p x c + o). EffiBench (1,000 tasks), ENAMEL (142) and
PIE (978) at samples 1 and 8; EffiBench-style tasks have 1 + samples programs (canonical +
completions), PIE-style ones (2 + samples) x 3 timed levels (slow, reference, generated).
Writes benchmarks/results/scale_out.json. The machine's load average is printed beside the
ratio: other work on a shared machine lowers it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]

from perfrepro.config import ExecutorConfig, TimingConfig  # noqa: E402
from perfrepro.dispatch import LocalExecutor, make_executor  # noqa: E402
from perfrepro.io import write_json  # noqa: E402
from perfrepro.records import Task, read_jsonl, write_jsonl  # noqa: E402
from perfrepro.timing.base import make_backend  # noqa: E402
from perfrepro.timing.completions import as_raw_row, measure_tasks  # noqa: E402

SUITES = {"EffiBench": (1000, lambda s: 1 + s), "ENAMEL": (142, lambda s: 3 * (2 + s)), "PIE": (978, lambda s: 3 * (2 + s))}
WORKER_COUNTS = (1, 16, 128, 1024)
OVERHEAD_ITEMS = 200


def run(tasks, executor, out: Path) -> tuple[float, bytes, bytes, int]:
    config = TimingConfig(backend="deterministic", repeats=1, min_sample_ms=50.0, timeout_s=20.0,
                          memory_limit_mb=2048, rss_interval_ms=1.0)
    raw: list[dict] = []
    backend = make_backend(config, on_run=lambda p, r, d: raw.append(as_raw_row(p, r, d)))
    started = time.perf_counter()
    measurements = measure_tasks(tasks, [], backend, executor=executor)
    elapsed = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "measurements.jsonl", measurements)
    write_jsonl(out / "raw.jsonl", raw)
    programs = sum(1 for m in measurements if m.status != "no_code")
    return elapsed, (out / "measurements.jsonl").read_bytes(), (out / "raw.jsonl").read_bytes(), programs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale_out.json")
    args = parser.parse_args(argv)
    source = ROOT / "data" / "prepared" / "tasks.jsonl"
    if not source.exists():
        source = ROOT / "tests" / "fixtures" / "efficiency_tasks.jsonl"
    tasks = read_jsonl(source, Task)[: args.tasks]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        local_s, local_m, local_raw, programs = run(tasks, LocalExecutor(), Path(tmp) / "local")
        started = time.perf_counter()
        with make_executor(ExecutorConfig(kind="dask", workers=args.workers)) as executor:
            start_s = time.perf_counter() - started
            dask_s, dask_m, dask_raw, _ = run(tasks, executor, Path(tmp) / "dask")
            t0 = time.perf_counter()
            executor.map(len, ["x"] * OVERHEAD_ITEMS, desc="no-op tasks")
            overhead_s = (time.perf_counter() - t0) / OVERHEAD_ITEMS * args.workers  # per task, per worker slot
    load_after = os.getloadavg()
    per_program_s = local_s / programs
    identical = local_m == dask_m and local_raw == dask_raw
    rows = []
    for suite, (count, programs_per_task) in SUITES.items():
        for samples in (1, 8):
            per_task = programs_per_task(samples) * per_program_s + overhead_s
            rows.append([suite, count, samples, *(f"{math.ceil(count / w) * per_task / 3600:.2f} h" for w in WORKER_COUNTS)])
    result = {
        "tasks": len(tasks), "programs": programs, "source": str(source.relative_to(ROOT)),
        "local_s": round(local_s, 2), "dask_s": round(dask_s, 2), "dask_workers": args.workers,
        "cluster_start_s": round(start_s, 2), "speedup": round(local_s / dask_s, 3),
        "speedup_with_start": round(local_s / (dask_s + start_s), 3),
        "byte_identical": identical, "per_program_s": round(per_program_s, 3),
        "scheduler_overhead_per_task_s": round(overhead_s, 5),
        "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(),
        "model_hours": {f"{r[0]}@samples{r[2]}": dict(zip(map(str, WORKER_COUNTS), r[3:])) for r in rows},
    }
    write_json(args.out, result)
    print(f"deterministic, {len(tasks)} tasks ({programs} programs): local {local_s:.1f} s, dask {args.workers} workers "
          f"{dask_s:.1f} s (+{start_s:.1f} s cluster start): {local_s / dask_s:.2f}x "
          f"({local_s / (dask_s + start_s):.2f}x with the start); outputs byte-identical: {identical}")
    print(f"per-program cost {per_program_s:.2f} s; scheduler overhead {overhead_s * 1000:.1f} ms a task; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs")
    print(tabulate(rows, headers=["suite", "tasks", "samples", *(f"{w} workers" for w in WORKER_COUNTS)], tablefmt="github"))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
