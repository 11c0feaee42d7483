"""Noise floor of the PIE track under the wall backend: the ENAMEL reference measured as the slow
program, the reference and the generated program of the same task, in one interleaved run.
Target: Speedup 1.00 +- 0.05 (max(1, .) folds noise upward, so this is the bias a real run carries).

  python benchmarks/pie_self_speedup.py [--tasks data/pie/tasks] [--limit 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from perfrepro.config import load_params
from perfrepro.metrics.optimization import summarize, task_outcomes
from perfrepro.optimization.level_timing import correctness_limits, measure_tasks
from perfrepro.optimization.tasks import PieTaskDir
from perfrepro.records import Completion
from perfrepro.timing.base import make_backend


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="data/pie/tasks")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="wall")
    args = parser.parse_args(argv)
    task_dir = PieTaskDir(args.tasks)
    tasks = [dataclasses.replace(t, slow_program=t.reference_program) for t in task_dir.tasks[: args.limit]]
    completions = [Completion(task_id=t.id, sample=0, model="self", status="ok", code=t.reference_program, response=None)
                   for t in tasks]
    config = dataclasses.replace(load_params().timing, backend=args.backend, repeats=args.repeats)
    started = time.perf_counter()
    measurements = measure_tasks(tasks, task_dir.inputs, completions, make_backend(config), correctness_limits(config))
    outcomes, _ = task_outcomes(measurements, 1)
    rows = {r.label: r for r in summarize(outcomes, 1)}
    timed = [o for o in outcomes if o.t_generated and o.t_generated[0]]
    ratios = {o.task_id: round(o.t_slow / o.t_generated[0], 4) for o in timed}
    result = {
        "backend": args.backend,
        "tasks": len(outcomes),
        "speedup": round(rows["generated"].speedup, 4),
        "raw_ratio_t_slow_over_t_generated": ratios,
        "tasks_with_identical_times": sum(o.t_slow == o.t_generated[0] for o in timed),  # deterministic: all
        "within_0.05": abs(rows["generated"].speedup - 1.0) <= 0.05,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["within_0.05"] else 1


if __name__ == "__main__":
    sys.exit(main())
