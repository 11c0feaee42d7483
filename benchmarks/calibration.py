"""Calibration benchmark: each task's canonical solution measured as if it were the completion.

Over the efficiency subset (data/prepared/tasks.jsonl, or --tasks FILE), both programs go through
the same backend run, interleaved; NET, NMU and NTMU should be 1.00 (± 0.05 with `wall`, exactly
with `deterministic`). Prints one table row per backend plus the per-task spread.

`--before REV` also builds both programs with the harness of git revision REV (e.g. the one before
the fresh-namespace change) and measures them in the same interleaved backend run, so the before
and after numbers share the machine's state: per task, [canonical, canonical-as-completion] with
today's harness, then the same with REV's. It also reports what a fresh namespace per timed call
costs: ET(today) - ET(REV) of the same canonical solution (µs per call and as a share of ET).

    python benchmarks/calibration.py [--backends wall deterministic] [--limit 10] [--repeats 5]
    python benchmarks/calibration.py --before 97658f1 --limit 10 --det-limit 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfrepro.config import TimingConfig, load_params  # noqa: E402
from perfrepro.execution import harness as current_harness  # noqa: E402
from perfrepro.metrics.efficiency import efficiency_metrics, task_ratios  # noqa: E402
from perfrepro.records import Task, read_jsonl  # noqa: E402
from perfrepro.report import efficiency_table  # noqa: E402


def harness_at(rev: str):
    """perfrepro.execution.harness as it is at git revision `rev` (a module of its own)."""
    try:
        source = subprocess.run(["git", "show", f"{rev}:perfrepro/execution/harness.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"--before {rev}: git show failed: {exc.stderr.strip()}") from None
    name = "harness_" + re.sub(r"\W", "_", rev)
    path = Path(tempfile.mkdtemp(prefix="perfrepro-harness-")) / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    if module.DRIVER_SOURCE != current_harness.DRIVER_SOURCE:
        print(f"note: the driver differs at {rev}; the backends run today's driver on both programs", file=sys.stderr)
    return module


def summary(measurements, chosen) -> tuple[dict, object]:
    ids = [t.id for t in chosen]
    metrics = efficiency_metrics(ids, measurements)
    ratios, _, _ = task_ratios(ids, measurements)
    return {
        "tasks": len(chosen), "NET": metrics.NET, "NET_lo": metrics.NET_lo, "NET_hi": metrics.NET_hi,
        "NMU": metrics.NMU, "NTMU": metrics.NTMU, "NET_total": metrics.NET_total, "pass1": metrics.pass1,
        "net_range": [min(r.net for r in ratios), max(r.net for r in ratios)] if ratios else None,
        "nmu_range": [min(r.nmu for r in ratios), max(r.nmu for r in ratios)] if ratios else None,
    }, metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=Path, default=ROOT / "data/prepared/tasks.jsonl")
    parser.add_argument("--backends", nargs="+", default=["wall", "deterministic"])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--det-limit", type=int, default=3, help="tasks for the (slow) deterministic backend")
    parser.add_argument("--repeats", type=int, default=None, help="wall: override timing.repeats")
    parser.add_argument("--before", metavar="REV", help="also measure with the harness of this git revision")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.json")
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml").timing
    if not args.tasks.exists():
        raise SystemExit(f"{args.tasks}: not found; run `dvc repro prepare` (or pass --tasks FILE)")
    tasks = read_jsonl(args.tasks, Task)[: args.limit]
    harnesses = {"after": current_harness}
    if args.before:
        harnesses["before"] = harness_at(args.before)
    results: dict = {"before_rev": args.before, "harnesses": list(harnesses)}
    rows = {}
    from perfrepro.timing.base import make_backend

    for name in args.backends:
        chosen = tasks[: args.det_limit] if name == "deterministic" else tasks
        config = TimingConfig(**{**params.__dict__, "backend": name,
                                 "repeats": args.repeats or params.repeats})
        raw = []
        backend = make_backend(config, on_run=lambda p, r, d: raw.append(d))
        started, load = time.perf_counter(), os.getloadavg()
        measured = {label: [] for label in harnesses}
        for task in chosen:
            programs = []
            for module in harnesses.values():  # one interleaved run: after's pair, then before's
                programs += [module.canonical_program(task),
                             module.build_program(task, task.canonical_solution, role="completion")]
            out = backend.measure(programs)
            for index, label in enumerate(harnesses):
                measured[label] += out[2 * index: 2 * index + 2]
        shares = [d["cpu_share"] for d in raw if d.get("cpu_share") is not None]
        results[name] = {"seconds": time.perf_counter() - started, "load_before": load,
                         "load_after": os.getloadavg(),
                         "loop_cpu_share_median": statistics.median(shares) if shares else None,
                         "loop_cpu_share_min": min(shares) if shares else None}
        for label in harnesses:
            results[name][label], metrics = summary(measured[label], chosen)
            rows[f"canonical-as-completion ({name}, {label}, {len(chosen)} tasks)"] = metrics
        if "before" in harnesses:
            # the same canonical solution under both harnesses: what one fresh namespace costs
            after = {m.task_id: m for m in measured["after"] if m.role == "canonical" and m.passed}
            before = {m.task_id: m for m in measured["before"] if m.role == "canonical" and m.passed}
            per_task = {t: {"et_before": before[t].execution_time, "et_after": after[t].execution_time,
                            "extra": after[t].execution_time - before[t].execution_time,
                            "extra_share": after[t].execution_time / before[t].execution_time - 1.0}
                        for t in after if t in before}
            extra = [v["extra"] for v in per_task.values()]
            results[name]["fresh_namespace_cost"] = {
                "unit": measured["after"][0].time_unit + " per call",
                "median": statistics.median(extra) if extra else None,
                "median_share": statistics.median(v["extra_share"] for v in per_task.values()) if extra else None,
                "per_task": per_task,
            }
        print(json.dumps({name: {k: v for k, v in results[name].items() if k != "fresh_namespace_cost"}}, indent=2),
              file=sys.stderr)
    print(efficiency_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
