"""Calibration benchmark: each task's canonical solution measured as if it were the completion.

Both programs go through the same backend run, interleaved; every per-task ratio should be 1.00
(exactly with `deterministic`). Prints one table row per backend (and harness), then per backend:
the per-task range, the share of tasks within ±10% of 1.00, the mean, the seconds per task, the
loop CPU share and the load average (the machine may be shared). The JSON output holds every
task's ratio (the one NET averages) with its own interval (perfrepro.timing.paired: bootstrap
over the repeats) and its per-repeat paired ratios.

Tasks: a prepared task file (`--tasks data/prepared/tasks.jsonl`), or by default LeetCodeDataset
v0.3.1-test outside the pipeline's own efficiency subset (`data.limit_tasks`), every k-th by id.

`--before REV` also measures both programs with the harness, the wall backend and the timing
params (repeats, min_sample_ms) of git revision REV (e.g. 9ab7046, before the fastest-repeat
protocol; 97658f1, before the fresh namespace), task by task beside today's (the two alternate
which goes first), so the load hits both alike. `et_change` is ET(today) / ET(REV) of the same
canonical solution: what the change did to the absolute times. With `deterministic`, REV's harness
runs under today's backend.

    python benchmarks/calibration.py [--backends wall deterministic] [--limit 30] [--repeats 5]
    python benchmarks/calibration.py --backends wall --limit 30 --before 9ab7046
"""

from __future__ import annotations

import argparse
import dataclasses
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfrepro.config import TimingConfig, load_params  # noqa: E402
from perfrepro.datasets import load_task_source, select_subset  # noqa: E402
from perfrepro.execution import harness as current_harness  # noqa: E402
from perfrepro.metrics.efficiency import efficiency_metrics, task_ratios  # noqa: E402
from perfrepro.records import Task, read_jsonl  # noqa: E402
from perfrepro.report import efficiency_table  # noqa: E402
from perfrepro.timing.base import make_backend  # noqa: E402
from perfrepro.timing.paired import task_ratio  # noqa: E402

# every process's own figures, kept so other estimators can be computed from one run's data
RAW_FIELDS = ("task_id", "role", "repeat", "status", "calls", "execution_time_ms", "cpu_time_ms", "cpu_share",
              "loops_s", "loops_cpu_s")
WITHIN = 0.10  # the target: canonical against itself within ±10% on at least 95% of tasks


def module_at(rev: str, path: str, name: str, replace: tuple[str, str] | None = None):
    """The module at `path` as it is at git revision `rev`, loaded under `name`."""
    try:
        source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"--before {rev}: git show failed: {exc.stderr.strip()}") from None
    if replace:
        source = source.replace(*replace)
    with tempfile.TemporaryDirectory(prefix="perfrepro-rev-") as folder:
        file = Path(folder) / f"{name}.py"
        file.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return module


def harness_at(rev: str):
    """perfrepro.execution.harness as it is at git revision `rev` (a module of its own)."""
    module = module_at(rev, "perfrepro/execution/harness.py", "harness_" + re.sub(r"\W", "_", rev))
    if module.DRIVER_SOURCE != current_harness.DRIVER_SOURCE:
        print(f"note: the driver differs at {rev}", file=sys.stderr)
    return module


def wall_backend_at(rev: str, harness_module, config: TimingConfig, on_run):
    """REV's wall backend, driving REV's harness, with REV's repeats and min_sample_ms."""
    module = module_at(rev, "perfrepro/timing/wall.py", "wall_" + re.sub(r"\W", "_", rev),
                       replace=("from perfrepro.execution import harness, sandbox",
                                f"from perfrepro.execution import sandbox\nimport {harness_module.__name__} as harness"))
    old = yaml.safe_load(subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=ROOT, check=True,
                                        capture_output=True, text=True).stdout)["timing"]
    config = dataclasses.replace(config, repeats=old["repeats"], min_sample_ms=old["min_sample_ms"])
    print(f"before ({rev}): repeats {config.repeats}, min_sample_ms {config.min_sample_ms}", file=sys.stderr)
    return module.WallClockBackend(config, on_run=on_run)


def default_tasks(limit: int) -> list[Task]:
    """LeetCodeDataset v0.3.1-test outside the pipeline's subset, `limit` of them spread over the ids."""
    params = load_params(ROOT / "params.yaml")
    everything = load_task_source(params.data.tasks_source, ROOT / params.data.tasks)
    shipped = {t.id for t in select_subset(everything, params.data.limit_tasks, params.seed)}
    rest = sorted((t for t in everything if t.id not in shipped), key=lambda t: t.id)
    step = max(1, len(rest) // max(1, limit))
    return rest[::step][:limit]


def summary(measurements, chosen, seconds: float) -> tuple[dict, object]:
    ids = [t.id for t in chosen]
    metrics = efficiency_metrics(ids, measurements)
    ratios, completions, canonicals = task_ratios(ids, measurements)
    nets = [r.net for r in ratios]
    per_task = {}
    for r in ratios:
        done, canon = completions[r.task_id], canonicals[r.task_id]
        interval = task_ratio(done, canon)
        per_task[r.task_id] = {
            "NET": r.net, "NMU": r.nmu, "NTMU": r.ntmu, "et_canonical": r.time_canonical,
            "fastest_ratio": None if interval is None else [interval.lo, interval.ratio, interval.hi],
            "per_repeat": [a / b for a, b in zip(done.samples, canon.samples)],
            "samples": {"canonical": list(canon.samples), "completion": list(done.samples)},
        }
    return {
        "tasks": len(chosen), "measured": len(ratios), "pass1": metrics.pass1,
        "NET": metrics.NET, "NET_lo": metrics.NET_lo, "NET_hi": metrics.NET_hi, "NET_total": metrics.NET_total,
        "NMU": metrics.NMU, "NTMU": metrics.NTMU,
        "net_range": [min(nets), max(nets)] if nets else None,
        "within_10pct": sum(abs(n - 1.0) <= WITHIN for n in nets) / len(nets) if nets else None,
        "nmu_range": [min(r.nmu for r in ratios), max(r.nmu for r in ratios)] if ratios else None,
        "seconds_per_task": seconds / max(1, len(chosen)),
        "per_task": per_task,
    }, metrics


def tagged(program, run: dict) -> dict:
    return {**run, "task_id": program.task_id, "role": program.role}


def shares(raw: list[dict]) -> dict:
    values = [d["cpu_share"] for d in raw if d.get("cpu_share") is not None]
    return {"loop_cpu_share_median": statistics.median(values) if values else None,
            "loop_cpu_share_min": min(values) if values else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=Path, help="a prepared task file (default: see above)")
    parser.add_argument("--backends", nargs="+", default=["wall", "deterministic"])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--det-limit", type=int, default=3, help="tasks for the (slow) deterministic backend")
    parser.add_argument("--repeats", type=int, default=None, help="override timing.repeats (today's wall only)")
    parser.add_argument("--before", metavar="REV", help="also measure with the harness (and wall backend) of this git revision")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.json")
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml").timing
    if args.tasks and not args.tasks.exists():
        raise SystemExit(f"{args.tasks}: not found; run `dvc repro prepare` (or leave --tasks out)")
    tasks = read_jsonl(args.tasks, Task)[: args.limit] if args.tasks else default_tasks(args.limit)
    harnesses = {"after": current_harness}
    if args.before:
        harnesses["before"] = harness_at(args.before)
    results: dict = {"before_rev": args.before, "harnesses": list(harnesses), "cpus": os.cpu_count()}
    rows = {}
    for name in args.backends:
        chosen = tasks[: args.det_limit] if name == "deterministic" else tasks
        config = TimingConfig(**{**params.__dict__, "backend": name, "repeats": args.repeats or params.repeats})
        raw = {label: [] for label in harnesses}
        backends = {label: make_backend(config, on_run=lambda p, r, d, label=label: raw[label].append(tagged(p, d)))
                    for label in harnesses}
        if name == "wall" and args.before:
            backends["before"] = wall_backend_at(args.before, harnesses["before"], config,
                                                 lambda p, r, d: raw["before"].append(tagged(p, d)))
        load = os.getloadavg()
        measured = {label: [] for label in harnesses}
        seconds = {label: 0.0 for label in harnesses}
        for number, task in enumerate(chosen):
            labels = list(harnesses) if number % 2 == 0 else list(harnesses)[::-1]  # alternate who goes first
            for label in labels:
                module = harnesses[label]
                started = time.perf_counter()
                measured[label] += backends[label].measure([
                    module.canonical_program(task),
                    module.build_program(task, task.canonical_solution, role="completion")])
                seconds[label] += time.perf_counter() - started
            print(f"{number + 1}/{len(chosen)} {task.id}: " + ", ".join(
                f"{label} {measured[label][-1].execution_time / measured[label][-2].execution_time:.3f}"
                for label in harnesses if measured[label][-1].passed and measured[label][-2].passed),
                file=sys.stderr)
        results[name] = {"load_before": load, "load_after": os.getloadavg(),
                         "raw": {label: [{k: d.get(k) for k in RAW_FIELDS} for d in raw[label]] for label in raw}}
        for label in harnesses:
            results[name][label], metrics = summary(measured[label], chosen, seconds[label])
            results[name][label].update(shares(raw[label]))
            rows[f"canonical-as-completion ({name}, {label}, {len(chosen)} tasks)"] = metrics
        if "before" in harnesses:
            after = {m.task_id: m for m in measured["after"] if m.role == "canonical" and m.passed}
            before = {m.task_id: m for m in measured["before"] if m.role == "canonical" and m.passed}
            change = [after[t].execution_time / before[t].execution_time for t in after if t in before]
            results[name]["et_change"] = {"median": statistics.median(change) if change else None,
                                          "range": [min(change), max(change)] if change else None}
        print(json.dumps({name: {label: {k: v for k, v in part.items() if k != "per_task"}
                                 if isinstance(part, dict) else part for label, part in results[name].items()}},
                         indent=2), file=sys.stderr)
    print(efficiency_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
