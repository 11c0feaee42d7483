"""Agreement with published results (issue 27): ENAMEL's eff@1 of the canonical solutions, and
EvalPerf's performance clusters, reproduced by the pipeline's own code. Never run in CI.

    python benchmarks/published_agreement.py [--tasks N] [--level 2] [--samples-per-model 5]
        [--valgrind-timeout-s 30] [--workers 2] [--clocks wall] [--enam-python /path/to/venv/bin/python]
        [--skip-eff] [--skip-spearman]

Parts, each timed, with the executor it ran on:
1. inputs: ENAMEL's tests for the 142 tasks (pie.protocol enamel's generator: ENAMEL's seeds and
   helpers, the reference's answers), on a Dask LocalCluster of --workers processes;
2. eff@1 and pass@1 of HumanEval's and HumanEval+'s canonical solutions under the ENAMEL protocol
   (perfrepro.optimization.enamel_protocol), beside ENAMEL's published 0.458 / 0.517 (pass@1
   0.908 / 0.958), with a 95% bootstrap interval over tasks. Wall-clock timing runs in this
   process, one program at a time, as ENAMEL asks ("do not use multiple threads or processes");
3. optional, --enam-python: ENAMEL's own library (`enam` 0.2.0, installed in a separate venv: it
   is never imported here) scores both sets on this machine; the benchmark checks that its tests
   are ours, input for input, and compares eff@1 task by task;
4. EvalPerf: for the HumanEval tasks EvalPerf and ENAMEL share (29), the first
   --samples-per-model samples of each of the three shipped models (data/raw/evalperf), pooled;
   each distinct program's valgrind instruction count (the deterministic backend: I_full - I_base)
   on ENAMEL's level --level tests, on the Dask cluster; per task the Spearman correlation between
   count and `matching_cluster_idx` (a higher index is faster, so agreement is negative); the
   median over the tasks whose samples span >= 2 clusters, and the share of them below 0. A task
   whose chosen samples share one cluster has no correlation and is not measured. A program over
   the time limit (--valgrind-timeout-s under valgrind, or a hundredth of it in the native run the
   deterministic backend makes first) counts as the slowest (right-censored); one that fails
   ENAMEL's tests is left out and counted. Beside each task's Spearman: the best one its labels
   allow (every pair of clusters ordered as EvalPerf does, our ties within a cluster kept), and
   the pairs of programs in different clusters: how many differ here by more than EvalPerf's own
   10% cluster gap, and how many of those are in EvalPerf's order. The defaults (level 2, 5
   samples per model, 30 s) keep the whole benchmark under 15 min on 2 quiet cores (10 per model:
   ~27 min); level 3 takes minutes per quadratic program under valgrind, level 1's small inputs
   rank by constant factors rather than by algorithm.
Writes benchmarks/results/published_agreement.json (and prints the tables for the README).
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import hashlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import spearmanr
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]

from perfrepro.config import ExecutorConfig, TimingConfig  # noqa: E402
from perfrepro.datasets.enamel import load_opt_tasks  # noqa: E402
from perfrepro.dispatch import LocalExecutor, make_executor  # noqa: E402
from perfrepro.io import write_json  # noqa: E402
from perfrepro.metrics.enamel import enamel_row, enamel_scores  # noqa: E402
from perfrepro.optimization.enamel_inputs import ENAMEL_SEED, ENAMEL_TESTS_PER_LEVEL  # noqa: E402
from perfrepro.optimization.enamel_driver import EnamelSettings  # noqa: E402
from perfrepro.optimization.enamel_protocol import measure_enamel_tasks, read_sample_set  # noqa: E402
from perfrepro.optimization.inputs import TaskInputs  # noqa: E402
from perfrepro.optimization.programs import build_level_programs  # noqa: E402
from perfrepro.optimization.tasks import PieTaskDir, write_pie_tasks  # noqa: E402
from perfrepro.timing.remote import worker_backend  # noqa: E402

ENAMEL_DIR = ROOT / "data" / "raw" / "enamel"
EVALPERF_DIR = ROOT / "data" / "raw" / "evalperf"
PUBLISHED = {"slow": ("HumanEval canonical", 0.458, 0.908), "humanevalplus-canonical": ("HumanEval+ canonical", 0.517, 0.958)}
SETS = {"slow": "humaneval-canonical", "humanevalplus-canonical": "humanevalplus-canonical"}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5-min {five:.2f})"


def timed(label: str, executor: str, fn, parts: list):
    started, before = time.perf_counter(), load()
    result = fn()
    parts.append({"part": label, "executor": executor, "wall_s": round(time.perf_counter() - started, 1),
                  "load_before": before, "load_after": load()})
    print(f"[{label}] {parts[-1]['wall_s']} s on {executor}; load {before} -> {parts[-1]['load_after']}", flush=True)
    return result


# ---- part 1: ENAMEL's inputs ----

def make_inputs(tasks, out: Path, workers: int) -> PieTaskDir:
    spec = {"seed": ENAMEL_SEED, "tests_per_level": list(ENAMEL_TESTS_PER_LEVEL)}
    with make_executor(ExecutorConfig(kind="dask", workers=workers)) as executor:
        manifest = write_pie_tasks(tasks, out, seed=0, tests_per_level=1, executor=executor, enamel=spec)
    if manifest["skipped"]:
        print("skipped:", manifest["skipped"])
    return PieTaskDir(out)


def input_digest(inputs: TaskInputs) -> str:
    """sha256 of every test's (input, answer), in ENAMEL's order (part 3 compares it with enam's)."""
    sys.set_int_max_str_digits(0)
    return hashlib.sha256("\n".join(canonical((tuple(t["args"]), t["answer"])) for t in inputs.tests).encode()).hexdigest()


# ---- part 2: eff@1 of the canonical sets ----

def canonical_effs(task_dir: PieTaskDir, clock: str) -> dict:
    tasks = task_dir.tasks
    sets = {"humanevalplus-canonical": read_sample_set(ENAMEL_DIR / "samples" / "humanevalplus-canonical.json",
                                                       [t.id for t in tasks])}
    measurements = measure_enamel_tasks(tasks, task_dir.inputs, [], EnamelSettings(clock=clock), sets, LocalExecutor())
    return enamel_scores(measurements)


def task_summary(score) -> dict:
    """What the results file keeps of a task: eff, pass, the first level that did not pass, the
    slowest reference level and the program's level times (ms, 3 significant digits)."""
    outcome = next((f"{status}@L{level}" for level, status in sorted(score.statuses[0].items()) if status != "ok"), "ok")
    return {"eff": round(score.effs[0], 4), "passed": score.passed[0], "outcome": outcome,
            "reference_max_ms": float(f"{max(score.reference_ms.values()):.3g}") if score.reference_ms else None,
            "level_ms": [None if t is None else float(f"{t:.3g}") for _, t in sorted(score.level_ms[0].items())]}


# ---- part 3: enam 0.2.0 itself, in its own interpreter ----

def canonical(x) -> str:
    """A repr that does not depend on the process's hash seed: a set's elements sorted."""
    if isinstance(x, (set, frozenset)):
        return "{" + ", ".join(sorted(canonical(v) for v in x)) + "}"
    if isinstance(x, dict):
        return "{" + ", ".join(canonical(k) + ": " + canonical(v) for k, v in x.items()) + "}"
    if isinstance(x, (list, tuple)):
        return ("(%s)" if isinstance(x, tuple) else "[%s]") % ", ".join(canonical(v) for v in x)
    return repr(x)


ENAM_SCRIPT = inspect.getsource(canonical) + r'''
import hashlib, json, os, sys, tempfile
sys.set_int_max_str_digits(0)
from enam.evaluate import Evaluator
csv, subset, out = sys.argv[1], [int(i) for i in sys.argv[2].split(",")], sys.argv[3]
ev = Evaluator(csv, subset, [8, 4, 4, 4], 6, [0., 3., 3., 4.], 4., 2., 0.01, 998244353)  # demo.py's defaults
ev.make_tests()
result = {"digests": {i: hashlib.sha256("\n".join(canonical((tuple(t.input) if isinstance(t.input, (list, tuple)) else (t.input,),
                                                              t.answer)) for _, tests in ev.tests[i] for t in tests).encode()).hexdigest()
                      for i in subset}}
with tempfile.TemporaryDirectory() as tmp:
    for name in sys.argv[4:]:
        codes = json.load(open(name))
        metrics = ev.evaluate(codes, k=[1], save_name=os.path.join(tmp, "run"))
        effs = json.load(open(os.path.join(tmp, "run~effs.json")))
        passes = json.load(open(os.path.join(tmp, "run~passes.json")))
        result[os.path.basename(name)] = {"metrics": metrics, "effs": effs, "passes": passes}
json.dump(result, open(out, "w"))
'''


def run_enam(python: str, tasks) -> dict:
    subset = ",".join(t.id.split("/")[1] for t in tasks)
    files = [str(ENAMEL_DIR / "samples" / f"{name}.json") for name in SETS.values()]
    with tempfile.TemporaryDirectory(prefix="enam-") as tmp:
        out = Path(tmp) / "enam.json"
        # no PYTHONPATH: enam's venv only; the hash seed ours run under (three generators iterate over a set of str)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "PYTHONHASHSEED": "0"}
        subprocess.run([python, "-c", ENAM_SCRIPT, str(ENAMEL_DIR / "enamel.csv"), subset, str(out), *files],
                       check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


# ---- part 4: EvalPerf clusters against instruction counts ----

def evalperf_pool(task_ids, per_model: int) -> dict[str, list[tuple[str, int, str]]]:
    """task id -> [(model, cluster index, program)], the first `per_model` samples of each model."""
    pool: dict[str, list] = {}
    for path in sorted(glob.glob(str(EVALPERF_DIR / "*.brief.json"))):
        model = Path(path).name.split("_")[0]
        for task_id, entry in json.loads(Path(path).read_text())["eval"].items():
            if task_id in task_ids:
                for sample in entry["profiled"][:per_model]:
                    pool.setdefault(task_id, []).append((model, int(sample["matching_cluster_idx"]), sample["solution"]))
    return pool


def count_program(config: TimingConfig, level: int, item) -> tuple[str, float | None, str | None]:
    """(status, instructions or None, error) of one program on one level's tests, on any worker."""
    task, inputs, code = item
    program = build_level_programs(task, code, inputs, "generated", 0, (level,))[0]
    record, step, (full, base) = worker_backend(config).python_instructions(program)
    if not record.passed:
        return record.status, None, f"{step}: {record.error}"
    return "ok", float(full - base), None


# EvalPerf splits its reference solutions into clusters where sorted instruction counts jump by more
# than 10% (`base_thresh` of its adaptive segmentation): closer than that, it does not resolve an order.
EVALPERF_RESOLUTION = 0.10


def best_possible_spearman(values: list[tuple[int, float]]) -> float:
    """The Spearman a count would get with these cluster labels if it ordered every pair of clusters
    as EvalPerf does, keeping our ties within a cluster: how far the labels' own ties and balance
    let a task's correlation go (one sample in a second cluster of 15 allows -0.43 at best)."""
    rank = {key: i for i, key in enumerate(sorted({(-c, n) for c, n in values}))}
    return float(spearmanr([rank[(-c, n)] for c, n in values], [c for c, _ in values]).statistic)


def cluster_pairs(values: list[tuple[int, float]]) -> tuple[int, int, int]:
    """Pairs of programs in different EvalPerf clusters: (all, those whose counts here differ by more
    than EVALPERF_RESOLUTION, those of them in EvalPerf's order). A timeout is the slowest."""
    split = both = same = 0
    for i, (c1, n1) in enumerate(values):
        for c2, n2 in values[i + 1:]:
            if c1 == c2:
                continue
            split += 1
            if n1 != n2 and max(n1, n2) > (1 + EVALPERF_RESOLUTION) * min(n1, n2):
                both += 1
                same += (n1 > n2) == (c1 < c2)
    return split, both, same


def relabelled_programs(pool: dict) -> dict[str, int]:
    """task id -> how many identical program texts carry different cluster labels (in different
    models' EvalPerf runs; within one run EvalPerf profiles a text once)."""
    labels: dict[tuple[str, str], set] = {}
    for task_id, samples in pool.items():
        for _, c, code in samples:
            labels.setdefault((task_id, code), set()).add(c)
    return dict(collections.Counter(task_id for (task_id, _), seen in labels.items() if len(seen) > 1))


def spearman_table(task_dir: PieTaskDir, level: int, per_model: int, workers: int, timeout_s: float) -> dict:
    tasks = {t.id: t for t in task_dir.tasks}
    pool = evalperf_pool(set(tasks), per_model)
    relabelled = relabelled_programs(pool)
    # a task whose chosen samples share one cluster has no correlation: counted apart, not measured
    spanning_tasks = {task_id for task_id, samples in pool.items() if len({c for _, c, _ in samples}) >= 2}
    distinct = sorted({(task_id, code) for task_id, samples in pool.items() if task_id in spanning_tasks
                       for _, _, code in samples})
    # the deterministic backend allows timeout_s x 100 under valgrind
    config = TimingConfig(backend="deterministic", repeats=1, min_sample_ms=1.0, timeout_s=timeout_s / 100.0,
                          memory_limit_mb=2048, rss_interval_ms=1.0)
    items = [(tasks[task_id], task_dir.inputs(task_id), code) for task_id, code in distinct]
    with make_executor(ExecutorConfig(kind="dask", workers=workers)) as executor:
        results = executor.map(functools.partial(count_program, config, level), items, desc="valgrind", unit="program")
    counts = {}
    for (task_id, code), result in zip(distinct, results):
        counts[(task_id, code)] = result if isinstance(result, tuple) else ("crash", None, str(result.reason))
    rows, per_task = [], {}
    for task_id in sorted(pool, key=lambda t: int(t.split("/")[1])):
        samples = pool[task_id]
        clusters = sorted({c for _, c, _ in samples})
        if task_id not in spanning_tasks:
            per_task[task_id] = {"samples": len(samples), "clusters": clusters, "spearman": None, "measured": False}
            rows.append([task_id, len(samples), len({code for _, _, code in samples}), ",".join(map(str, clusters)),
                         "-", "-", "one cluster", "not measured"])
            continue
        kept = [(c, counts[(task_id, code)]) for _, c, code in samples if counts[(task_id, code)][0] in ("ok", "timeout")]
        failed = len(samples) - len(kept)
        values = [(c, float("inf") if status == "timeout" else n) for c, (status, n, _) in kept]
        kept_clusters = sorted({c for c, _ in values})
        rho = best = None
        if len(kept_clusters) >= 2 and len({n for _, n in values}) >= 2:  # all tied (all over the limit): none
            rho = float(spearmanr([n for _, n in values], [c for c, _ in values]).statistic)
            best = best_possible_spearman(values)
        split, both, same = cluster_pairs(values)
        per_task[task_id] = {"samples": len(samples), "clusters": clusters, "kept": len(values), "failed": failed,
                             "timeouts": sum(1 for _, n in values if n == float("inf")), "spearman": rho,
                             "best_possible": best, "split_pairs": split, "resolved_pairs": both, "same_order": same,
                             "relabelled_texts": relabelled.get(task_id, 0),
                             "median_count_by_cluster": {c: statistics.median(n for cc, n in values if cc == c)
                                                         for c in kept_clusters},
                             "programs": [{"model": model, "cluster": c, "status": counts[(task_id, code)][0],
                                           "instructions": counts[(task_id, code)][1]} for model, c, code in samples]}
        rows.append([task_id, len(samples), len(set(code for _, _, code in samples)), ",".join(map(str, clusters)),
                     failed, per_task[task_id]["timeouts"], "-" if rho is None else f"{rho:+.2f}",
                     "-" if best is None else f"{best:+.2f}", f"{same} / {both} / {split}",
                     " / ".join(f"{c}: {format_count(n)}" for c, n in per_task[task_id]["median_count_by_cluster"].items())])
    measured = [v for v in per_task.values() if v["spearman"] is not None]
    spanning = [v["spearman"] for v in measured]
    summary = {"tasks": len(per_task), "spanning_two_or_more": len(spanning_tasks), "with_a_correlation": len(spanning),
               "median_spearman": statistics.median(spanning) if spanning else None,
               "share_negative": sum(r < 0 for r in spanning) / len(spanning) if spanning else None,
               "median_best_possible": statistics.median(v["best_possible"] for v in measured) if measured else None,
               **{key: sum(v.get(key, 0) for v in per_task.values())  # one-cluster tasks have no pairs
                  for key in ("split_pairs", "resolved_pairs", "same_order")},
               "relabelled_texts": sum(relabelled.values()),
               "programs": len(distinct), "level": level, "samples_per_model": per_model}
    return {"summary": summary, "per_task": per_task, "rows": rows}


def format_count(n: float) -> str:
    return "timeout" if n == float("inf") else f"{n:.3g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=None, help="the first N of the 142 tasks (default: all)")
    parser.add_argument("--level", type=int, default=2, help="ENAMEL level whose tests valgrind counts (part 4)")
    parser.add_argument("--samples-per-model", type=int, default=5, help="EvalPerf samples per model and task (part 4)")
    parser.add_argument("--valgrind-timeout-s", type=float, default=30.0, help="per valgrind run; over it = slowest")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--enam-python", default=os.environ.get("ENAM_PYTHON"),
                        help="an interpreter with enam 0.2.0 installed (part 3; default $ENAM_PYTHON, else skipped)")
    parser.add_argument("--clocks", default="wall", help="part 2's clocks, comma-separated: wall (ENAMEL's), cpu")
    parser.add_argument("--skip-eff", action="store_true")
    parser.add_argument("--skip-spearman", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "published_agreement.json")
    args = parser.parse_args(argv)
    tasks = load_opt_tasks(ENAMEL_DIR)[: args.tasks]
    if args.skip_eff:  # part 4 alone needs the EvalPerf tasks' inputs only
        tasks = [t for t in tasks if t.id in evalperf_pool({t.id for t in tasks}, 1)]
    parts: list[dict] = []
    result: dict = {"tasks": len(tasks), "cpu_count": os.cpu_count(), "parts": parts}
    dask = f"dask LocalCluster, {args.workers} workers"
    with tempfile.TemporaryDirectory(prefix="agreement-") as tmp:
        task_dir = timed("1 inputs (ENAMEL's tests)", dask, lambda: make_inputs(tasks, Path(tmp) / "tasks", args.workers), parts)
        if not args.skip_eff:
            result["eff"] = {}
            for clock in args.clocks.split(","):
                scores = timed(f"2 eff@1 of the canonical sets (clock {clock})", "local (this process, one program at a time)",
                               lambda: canonical_effs(task_dir, clock), parts)
                rows = []
                for role, (name, eff, pass1) in PUBLISHED.items():
                    row = enamel_row(role, scores[role])
                    rows.append([name, clock, row.tasks, f"{row.eff:.3f}", f"[{row.eff_lo:.3f}, {row.eff_hi:.3f}]",
                                 f"{eff:.3f}", f"{row.eff - eff:+.3f}", f"{row.pass_rate:.3f}", f"{pass1:.3f}"])
                result["eff"][clock] = {"rows": rows, "per_task": {
                    role: {s.task_id: task_summary(s) for s in scores[role]} for role in PUBLISHED}}
                print(tabulate(rows, headers=["set", "clock", "tasks", "eff@1 (ours)", "95% CI", "eff@1 (ENAMEL)",
                                              "ours - ENAMEL", "pass@1 (ours)", "pass@1 (ENAMEL)"], tablefmt="github"))
            if args.enam_python:
                enam = timed("3 enam 0.2.0 on this machine", "local (enam's own evaluator, its venv)",
                             lambda: run_enam(args.enam_python, tasks), parts)
                ours = {t.id.split("/")[1]: input_digest(task_dir.inputs(t.id)) for t in task_dir.tasks}
                same = sum(enam["digests"][i] == d for i, d in ours.items())
                print(f"enam's tests (inputs and answers) equal ours on {same} of {len(ours)} tasks")
                enam_rows = []
                for role, (name, eff, _) in PUBLISHED.items():
                    run = enam[f"{SETS[role]}.json"]
                    ours_role = result["eff"][args.clocks.split(",")[0]]["per_task"][role]
                    # enam's effs: task -> one list of level scores per program (one program here)
                    theirs = {f"HumanEval/{i}": sum(w * e for w, e in zip((0, 3, 3, 4), levels[0])) / 10
                              for i, levels in run["effs"].items()}
                    diffs = {task: ours_role[task]["eff"] - eff_enam for task, eff_enam in theirs.items()}
                    result.setdefault("enam_per_task", {})[role] = theirs
                    far = sorted(diffs.items(), key=lambda kv: -abs(kv[1]))[:8]
                    enam_rows.append([name, f"{run['metrics']['eff@1']:.3f}", f"{run['metrics']['pass@1']:.3f}", f"{eff:.3f}",
                                      ", ".join(f"{k.split('/')[1]} {v:+.2f}" for k, v in far)])
                result["enam"] = {"same_inputs": same, "tasks": len(ours), "rows": enam_rows,
                                  "failed": {SETS[role]: sorted(int(i) for i, p in enam[f"{SETS[role]}.json"]["passes"].items()
                                                                if not p[0]) for role in PUBLISHED}}
                print(tabulate(enam_rows, headers=["set", "eff@1 (enam, here)", "pass@1 (enam, here)", "eff@1 (published)",
                                                   "largest per-task differences, ours - enam"], tablefmt="github"))
        if not args.skip_spearman:
            spear = timed(f"4 EvalPerf clusters vs valgrind counts (level {args.level})", dask,
                          lambda: spearman_table(task_dir, args.level, args.samples_per_model, args.workers,
                                                 args.valgrind_timeout_s), parts)
            result["spearman"] = spear
            print(tabulate(spear["rows"], headers=["task", "samples", "distinct", "clusters", "failed", "timeouts",
                                                   "Spearman", "best possible",
                                                   "pairs: same order / > 10% apart here / in different clusters",
                                                   "median count by cluster"], tablefmt="github"))
            s = spear["summary"]
            if s["median_spearman"] is not None:
                print(f"median Spearman over the {s['with_a_correlation']} tasks with a correlation (of the "
                      f"{s['spanning_two_or_more']} whose samples span >= 2 clusters; all-tied ones have none): "
                      f"{s['median_spearman']:+.3f}; negative on {100 * s['share_negative']:.0f}%; the best these "
                      f"labels allow: {s['median_best_possible']:+.3f}. Pairs in different clusters and more than "
                      f"{EVALPERF_RESOLUTION:.0%} apart here: {s['same_order']} of {s['resolved_pairs']} in "
                      f"EvalPerf's order ({s['split_pairs'] - s['resolved_pairs']} of the {s['split_pairs']} pairs in "
                      f"different clusters are closer). Identical texts with different labels: {s['relabelled_texts']}")
    result["total_s"] = round(sum(p["wall_s"] for p in parts), 1)
    write_json(args.out, result)
    print(tabulate([[p["part"], p["executor"], p["wall_s"], p["load_before"], p["load_after"]] for p in parts],
                   headers=["part", "executor", "wall s", "load before", "load after"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
