"""Timing noise benchmark: CV of ET over repeated measurements, per backend, beside EffiBench's way.

For N tasks (default 20) of LeetCodeDataset v0.3.1-test, the canonical solution is measured
M times (default 10) by:
- `wall` (one Measurement = `--repeats` fresh processes, the fastest; default 1 to keep it short),
- `deterministic` (valgrind; fewer tasks/measurements by default: it is exact and slow),
- EffiBench-style: one process running imports + solution + tests, timed from outside with
  start-up included (what `mprof run` sees), RSS sampled at 1 ms.
Reports per backend the median and max over tasks of CV(ET), the share of the reported time spent
in the code under test, the deterministic backend's cost against a native run, and throughput
(tasks per minute, canonical + completion, at the params' repeats). Also the load average, since
the machine may be shared.

`--before REV` also measures each canonical solution with the harness of git revision REV, in the
same backend call as today's (interleaved), and reports its wall CV beside today's (`wall_before`).
`--det-tasks 0` skips the deterministic part.

    python benchmarks/timing_noise.py [--tasks 20] [--measurements 10] [--det-tasks 3] [--det-measurements 2]
    python benchmarks/timing_noise.py --tasks 10 --measurements 5 --det-tasks 0 --before 9c92222^
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfrepro.config import TimingConfig, load_params  # noqa: E402
from perfrepro.execution import harness, sandbox  # noqa: E402
from perfrepro.records import Task  # noqa: E402
from perfrepro.timing.base import make_backend  # noqa: E402
from perfrepro.timing.wall import RssSampler  # noqa: E402

RAW = ROOT / "data/raw/leetcodedataset/LeetCodeDataset-v0.3.1-test.jsonl.gz"


def load_tasks(n: int) -> list[Task]:
    rows = [json.loads(line) for line in gzip.open(RAW, "rt", encoding="utf-8")]
    rows.sort(key=lambda r: r["task_id"])
    step = max(1, len(rows) // n)
    return [Task(id=r["task_id"], statement="", starter_code=r["starter_code"], canonical_solution=r["completion"],
                 test_code=r["test"], entry_point=r["entry_point"], examples="", source="leetcodedataset-v0.3.1-test",
                 imports=r["prompt"]) for r in rows[::step][:n]]


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values) if len(values) > 1 and statistics.fmean(values) else 0.0


def effibench_style(task: Task) -> tuple[float, float, float]:
    """(process wall ms incl. start-up, MU MB·s over the whole process, code-under-test ms)."""
    source = "\n".join([task.imports, task.canonical_solution, task.test_code,
                        "import time as _t\n_s = _t.perf_counter()\n"
                        f"check({task.entry_point})\n"
                        "print('UNDER_TEST_S', _t.perf_counter() - _s)\n"])
    sampler = RssSampler(sandbox.sandbox_python(), 0.001)
    result = sandbox.run([sandbox.sandbox_python(), "-S", "-B", "prog.py"],
                         files={**sandbox.python_files(), "prog.py": source}, env=sandbox.python_env(), monitor=sampler)
    if result.status != "ok":
        raise RuntimeError(f"{task.id}: effibench-style run failed: {result.error} {result.stderr_tail[-300:]}")
    under = float(result.stdout_tail.split("UNDER_TEST_S")[1].split()[0]) * 1000
    points = sampler.samples
    mu = sum((tb - ta) * (ra + rb) / 2 for (ta, ra), (tb, rb) in zip(points, points[1:])) / (1 << 20)
    return result.wall_s * 1000, mu, under


def harness_modules(before: str | None) -> dict:
    modules = {"after": harness}
    if before:
        from calibration import harness_at  # benchmarks/calibration.py, beside this file

        modules["before"] = harness_at(before)
    return modules


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--measurements", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="wall: processes per Measurement")
    parser.add_argument("--det-tasks", type=int, default=3)
    parser.add_argument("--det-measurements", type=int, default=2)
    parser.add_argument("--before", metavar="REV", help="also measure with the harness of this git revision")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "timing_noise.json")
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml").timing
    tasks = load_tasks(args.tasks)
    load_before = os.getloadavg()
    report: dict = {"tasks": len(tasks), "measurements": args.measurements, "load_before": load_before,
                    "cpus": os.cpu_count(), "interpreter": sandbox.sandbox_python(), "isolation": sandbox.isolation().name}

    wall_config = TimingConfig(**{**params.__dict__, "backend": "wall", "repeats": args.repeats})
    wall_raw: list[dict] = []
    wall = make_backend(wall_config, on_run=lambda p, r, d: wall_raw.append(d))
    per_task = {}
    started = time.perf_counter()
    wall_seconds = 0.0
    modules = harness_modules(args.before)
    report["before_rev"] = args.before
    for task in tasks:
        programs = [module.canonical_program(task) for module in modules.values()]
        ets = {label: [] for label in modules}
        mus = {label: [] for label in modules}
        effi_et, effi_mu, effi_under = [], [], []
        for _ in range(args.measurements):  # interleave the methods (and the harnesses, in one call)
            t = time.perf_counter()
            measured = wall.measure(programs)
            wall_seconds += time.perf_counter() - t
            failed = next((m for m in measured if not m.passed), None)
            if failed:
                break
            for label, m in zip(modules, measured):
                ets[label].append(m.execution_time)
                mus[label].append(m.memory_usage)
            e_et, e_mu, e_under = effibench_style(task)
            effi_et.append(e_et)
            effi_mu.append(e_mu)
            effi_under.append(e_under)
        if len(ets["after"]) < args.measurements:
            print(f"skip {task.id}: canonical failed ({failed.status}: {failed.error})", file=sys.stderr)
            continue
        per_task[task.id] = {
            "wall_et_ms": statistics.median(ets["after"]), "wall_cv_et": cv(ets["after"]),
            "wall_cv_mu": cv(mus["after"]),
            "effibench_et_ms": statistics.median(effi_et), "effibench_cv_et": cv(effi_et), "effibench_cv_mu": cv(effi_mu),
            "effibench_under_test_ms": statistics.median(effi_under),
        }
        if "before" in modules:
            per_task[task.id].update(before_wall_et_ms=statistics.median(ets["before"]),
                                     before_wall_cv_et=cv(ets["before"]), before_wall_cv_mu=cv(mus["before"]))
        print(f"{task.id}: wall ET {per_task[task.id]['wall_et_ms']:.4f} ms CV {cv(ets['after']):.3f}"
              + (f" (before: {per_task[task.id]['before_wall_et_ms']:.4f} ms CV {cv(ets['before']):.3f})"
                 if "before" in modules else "")
              + f" | effibench ET {per_task[task.id]['effibench_et_ms']:.1f} ms CV {cv(effi_et):.3f}", file=sys.stderr)
    rows = list(per_task.values())

    def summary(key: str) -> dict:
        values = [r[key] for r in rows]
        return {"median": statistics.median(values), "max": max(values)} if values else {}

    shares = [r["effibench_under_test_ms"] / r["effibench_et_ms"] for r in rows]
    cpu_shares = [d["cpu_share"] for d in wall_raw if d.get("cpu_share") is not None]
    report["wall"] = {
        "cv_et": summary("wall_cv_et"), "cv_mu": summary("wall_cv_mu"), "et_ms": summary("wall_et_ms"),
        "loop_cpu_share": {"median": statistics.median(cpu_shares), "min": min(cpu_shares)} if cpu_shares else {},
        # the timed region is run_tests() only: the code under test plus the harness's one-line
        # candidate guard and the loop, so the share is the region's, not start-up's
        "seconds_per_process": wall_seconds / max(1, len(rows) * args.measurements * args.repeats * len(modules)),
    }
    if "before" in modules:
        report["wall_before"] = {"cv_et": summary("before_wall_cv_et"), "cv_mu": summary("before_wall_cv_mu"),
                                 "et_ms": summary("before_wall_et_ms")}
    per_program_s = report["wall"]["seconds_per_process"] * params.repeats
    report["wall"]["throughput_tasks_per_min"] = 60.0 / (2 * per_program_s)
    report["effibench_style"] = {
        "cv_et": summary("effibench_cv_et"), "cv_mu": summary("effibench_cv_mu"), "et_ms": summary("effibench_et_ms"),
        "under_test_ms": summary("effibench_under_test_ms"),
        "share_under_test": {"median": statistics.median(shares), "max": max(shares)} if shares else {},
    }

    # deterministic: exactness, cost against a native run of the same program
    det = make_backend(TimingConfig(**{**params.__dict__, "backend": "deterministic"})) if args.det_tasks else None
    det_rows = []
    for task in tasks[: args.det_tasks]:
        program = harness.canonical_program(task)
        t = time.perf_counter()
        record, native = harness.run_program(program)
        native_s = time.perf_counter() - t
        values, costs = [], []
        for _ in range(args.det_measurements):
            t = time.perf_counter()
            (m,) = det.measure([program])
            costs.append(time.perf_counter() - t)
            values.append((m.execution_time, m.memory_usage, m.peak_memory_mb))
        det_rows.append({"task_id": task.id, "instructions": values[0][0], "identical": len(set(values)) == 1,
                         "cv_et": cv([v[0] for v in values]), "seconds": statistics.median(costs),
                         "native_seconds": native_s, "cost_vs_native": statistics.median(costs) / native_s,
                         "cost_per_valgrind_run_vs_native": statistics.median(costs) / 4 / native_s})
        print(f"{task.id}: deterministic {values[0][0]:.0f} instr, identical={det_rows[-1]['identical']}, "
              f"{det_rows[-1]['cost_vs_native']:.0f}x native", file=sys.stderr)
    if det_rows:
        report["deterministic"] = {
            "rows": det_rows,
            "cv_et": {"median": statistics.median(r["cv_et"] for r in det_rows), "max": max(r["cv_et"] for r in det_rows)},
            "all_identical": all(r["identical"] for r in det_rows),
            "cost_vs_native_median": statistics.median(r["cost_vs_native"] for r in det_rows),
            "cost_per_valgrind_run_vs_native_median": statistics.median(r["cost_per_valgrind_run_vs_native"]
                                                                        for r in det_rows),
            "throughput_tasks_per_min": 60.0 / (2 * statistics.median(r["seconds"] for r in det_rows)),
        }
    report["per_task"] = per_task
    report["load_after"] = os.getloadavg()
    report["elapsed_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "per_task"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
