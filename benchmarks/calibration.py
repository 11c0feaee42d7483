"""Calibration benchmark: each task's canonical solution measured as if it were the completion.

Over the efficiency subset (data/prepared/tasks.jsonl, or --tasks FILE), both programs go through
the same backend run, interleaved; NET, NMU and NTMU should be 1.00 (± 0.05 with `wall`, exactly
with `deterministic`). Prints one table row per backend plus the per-task spread.

    python benchmarks/calibration.py [--backends wall deterministic] [--limit 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfrepro.config import TimingConfig, load_params  # noqa: E402
from perfrepro.execution.harness import build_program, canonical_program  # noqa: E402
from perfrepro.metrics.efficiency import efficiency_metrics, task_ratios  # noqa: E402
from perfrepro.records import Task, read_jsonl  # noqa: E402
from perfrepro.report import efficiency_table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=Path, default=ROOT / "data/prepared/tasks.jsonl")
    parser.add_argument("--backends", nargs="+", default=["wall", "deterministic"])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--det-limit", type=int, default=3, help="tasks for the (slow) deterministic backend")
    parser.add_argument("--repeats", type=int, default=None, help="wall: override timing.repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.json")
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml").timing
    tasks = read_jsonl(args.tasks, Task)[: args.limit]
    results, rows = {}, {}
    for name in args.backends:
        chosen = tasks[: args.det_limit] if name == "deterministic" else tasks
        config = TimingConfig(**{**params.__dict__, "backend": name,
                                 "repeats": args.repeats or params.repeats})
        from perfrepro.timing.base import make_backend

        raw = []
        backend = make_backend(config, on_run=lambda p, r, d: raw.append(d))
        started, load = time.perf_counter(), os.getloadavg()
        measurements = []
        for task in chosen:
            measurements += backend.measure([canonical_program(task),
                                             build_program(task, task.canonical_solution, role="completion")])
        metrics = efficiency_metrics([t.id for t in chosen], measurements)
        ratios, _, _ = task_ratios([t.id for t in chosen], measurements)
        shares = [d["cpu_share"] for d in raw if d.get("cpu_share") is not None]
        rows[f"canonical-as-completion ({name}, {len(chosen)} tasks)"] = metrics
        results[name] = {
            "tasks": len(chosen), "NET": metrics.NET, "NMU": metrics.NMU, "NTMU": metrics.NTMU,
            "NET_total": metrics.NET_total, "pass1": metrics.pass1,
            "net_range": [min(r.net for r in ratios), max(r.net for r in ratios)] if ratios else None,
            "nmu_range": [min(r.nmu for r in ratios), max(r.nmu for r in ratios)] if ratios else None,
            "seconds": time.perf_counter() - started, "load_before": load, "load_after": os.getloadavg(),
            "loop_cpu_share_median": statistics.median(shares) if shares else None,
            "loop_cpu_share_min": min(shares) if shares else None,
        }
        print(json.dumps({name: results[name]}, indent=2), file=sys.stderr)
    print(efficiency_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
