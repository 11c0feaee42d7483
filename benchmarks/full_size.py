"""Full-size efficiency run: the pipeline's own stages (prepare, generate, measure, report) on all
228 LeetCode tasks, with LeetCodeDataset's recorded responses as the completions (`llm.backend:
recorded`, `shots: 0`: the solutions the dataset ships, no LLM), on a timing backend and executor
of your choice; and the same at smaller sizes, so a user can size a run.

    python benchmarks/full_size.py --sizes 10 50 228 --backends wall deterministic --executors local dask

Each (size, backend, executor) runs in its own folder under --work (default: a temp dir), from a
copy of params.yaml with only those values changed; the stages are the committed ones, called as
dvc.yaml calls them. Prints a markdown table (the report's NET with its 95% interval, pass1, tasks
measured) and the wall time of `measure` (the part that grows with the tasks) and of the whole run,
with the load average; writes benchmarks/results/full_size.json. Wall-clock rows measured on a
Dask cluster of 2 workers on 2 cores time two programs at once: compare their NET, not their ET.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def params_for(size: int | None, backend: str, executor: str, workers: int, timeout_s: float | None) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if timeout_s is not None:
        params["timing"]["timeout_s"] = timeout_s
    params["data"]["limit_tasks"] = size
    params["llm"]["backend"] = "recorded"
    params["shots"] = 0
    params["timing"]["backend"] = backend
    params["executor"]["kind"] = executor
    params["executor"]["workers"] = workers
    return params


def stage(name: str, *args: str, params: Path, cwd: Path) -> float:
    """Run stages/<name>.py as dvc.yaml does (from the repo root, so relative data paths resolve)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), "--params", str(params), *args],
                          cwd=ROOT, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed in {cwd} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def run(size: int | None, backend: str, executor: str, workers: int, timeout_s: float | None, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    params = folder / "params.yaml"
    values = params_for(size, backend, executor, workers, timeout_s)
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    load = os.getloadavg()[0]
    seconds = {"prepare": stage("prepare", "--out", str(folder / "prepared"), params=params, cwd=folder)}
    tasks = folder / "prepared" / "tasks.jsonl"
    seconds["generate"] = stage("generate", "--tasks", str(tasks), "--index", "data/index", "--adapters", "data/adapters",
                                "--out", str(folder / "completions.jsonl"), params=params, cwd=folder)
    seconds["measure"] = stage("measure", "--tasks", str(tasks), "--completions", str(folder / "completions.jsonl"),
                               "--out", str(folder / "timings"), params=params, cwd=folder)
    seconds["report"] = stage("report", "--tasks", str(tasks), "--timings", str(folder / "timings"),
                              "--metrics", str(folder / "metrics"), params=params, cwd=folder)
    metrics = json.loads((folder / "metrics" / "efficiency.json").read_text())["efficiency"]
    tasks_n = sum(1 for _ in tasks.open())
    return {"size": tasks_n, "backend": backend, "executor": executor if executor == "local" else f"{executor} ({workers} workers)",
            "NET": metrics.get("NET"), "NET_lo": metrics.get("NET_lo"), "NET_hi": metrics.get("NET_hi"),
            "pass1": metrics.get("pass1"), "normalized": metrics.get("normalized"),
            "timeout_s": values["timing"]["timeout_s"],
            "seconds": {k: round(v, 1) for k, v in seconds.items()}, "load_at_start": round(load, 2),
            "table": (folder / "metrics" / "efficiency.md").read_text().split("\n\n")[1]}


def cell(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["10", "50", "228"], help="task counts; 'all' = null")
    parser.add_argument("--backends", nargs="+", default=["wall", "deterministic"])
    parser.add_argument("--executors", nargs="+", default=["local", "dask"])
    parser.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    parser.add_argument("--timeout-s", type=float, help="timing.timeout_s (default: params.yaml's); the "
                        "deterministic backend's limit under valgrind is 100x this")
    parser.add_argument("--work", type=Path, help="where each run's files go (default: a temp dir, removed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "full_size.json")
    args = parser.parse_args(argv)
    results = []
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="perfrepro-full-size-")))
        for size in args.sizes:
            for backend in args.backends:
                for executor in args.executors:
                    n = None if size == "all" else int(size)
                    row = run(n, backend, executor, args.workers, args.timeout_s, work / f"{size}-{backend}-{executor}")
                    results.append(row)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(results, indent=2) + "\n")  # kept if a later run fails
                    print(f"{row['size']} tasks, {backend}, {row['executor']}: NET {cell(row['NET'])} "
                          f"[{cell(row['NET_lo'])}, {cell(row['NET_hi'])}], pass1 {cell(row['pass1'], 1)}, "
                          f"measure {row['seconds']['measure']:.0f} s (load {row['load_at_start']})", file=sys.stderr)
    print("| tasks | backend | executor | NET [95% CI] | pass1 | tasks in NET | measure (s) | whole run (s) | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['size']} | {r['backend']} | {r['executor']} | {cell(r['NET'])} [{cell(r['NET_lo'])}, "
              f"{cell(r['NET_hi'])}] | {cell(r['pass1'], 1)} | {r['normalized']} | {r['seconds']['measure']:.0f} | "
              f"{sum(r['seconds'].values()):.0f} | {r['load_at_start']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
