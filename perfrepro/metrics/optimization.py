"""PIE-style optimization metrics and ENAMEL's eff@k, from per-level measurements.

Definitions (PIE, Shypula et al. 2024; ENAMEL, Qiu et al. 2025):
- per task, speedup = max(1, t_slow / t_generated) when the generated program is correct, else 1.0;
  Speedup = mean over tasks; %Opt = % of tasks correct with speedup >= 1.10; %Correct = % correct.
- Best@k: per task the best of k samples (the highest speedup; correct when any sample is).
- ENAMEL: per level, ``calc_eff = max(0, timeout - elapsed) / (timeout - ref)`` with one
  ``timeout = alpha * max(ref over the weighted levels)`` per task (alpha = 2, ENAMEL's
  `Evaluator.evaluate1`); the task score is the level-weighted mean (weights
  3, 3, 4 for levels 1-3; level 0 checks correctness only) and 0 for a wrong answer; eff@k is the
  unbiased estimator of E[max of k samples' scores], as pass@k.
- Uncertainty: Speedup carries a 95% percentile-bootstrap interval over tasks (`speedup_lo`,
  `speedup_hi`; perfrepro.metrics.uncertainty, seed 0: the same speedups give the same interval).

Here a level is one Measurement (task id ``<id>@L<level>``, all of the level's tests run
together), so ``elapsed`` and ``ref`` are the level's total times, where ENAMEL takes the maximum
over the level's tests. t_slow and t_generated are summed over the levels where the slow program
passed ("comparable levels"); a task where the slow program passes no level is left out and
counted. A generated program is correct when it passed every timed level it was measured on
(one that fails the correctness tests, level 0 and HumanEval+, is recorded as failed at every level).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from perfrepro.metrics.uncertainty import bootstrap_interval
from perfrepro.records import Completion, Measurement, read_jsonl

LEVEL_SEPARATOR = "@L"  # per-level Program/Measurement task ids: HumanEval/1@L2
OPT_THRESHOLD = 1.10
ENAMEL_ALPHA = 2.0
ENAMEL_LEVEL_WEIGHTS = {0: 0.0, 1: 3.0, 2: 3.0, 3: 4.0}
BOOTSTRAP_SEED = 0


def level_key(task_id: str, level: int) -> str:
    """The Program/Measurement task id of one level: ``HumanEval/1@L2``."""
    return f"{task_id}{LEVEL_SEPARATOR}{level}"


def split_level_key(key: str) -> tuple[str, int]:
    """Inverse of `level_key`; raises ValueError for an id without a level."""
    task_id, sep, level = key.rpartition(LEVEL_SEPARATOR)
    if not sep or not level.isdigit():
        raise ValueError(f"{key!r} is not a per-level task id like 'HumanEval/1{LEVEL_SEPARATOR}2'")
    return task_id, int(level)


def task_speedup(t_slow: float | None, t_generated: float | None, correct: bool) -> float:
    """max(1, t_slow / t_generated) for a correct program with both times, else 1.0."""
    if not correct or t_slow is None or t_generated is None or t_generated <= 0:
        return 1.0
    return max(1.0, t_slow / t_generated)


def calc_eff(elapsed: float | None, ref: float, timeout: float) -> float:
    """ENAMEL's per-level score; ``elapsed`` None (timeout, crash) scores 0."""
    if elapsed is None:
        return 0.0
    return max(0.0, timeout - elapsed) / (timeout - ref)


def eff_at_k(scores: Sequence[float], k: int) -> float:
    """Unbiased E[max of k of the n scores]: sum over r of e_(r) C(r-1, k-1) / C(n, k), ascending."""
    n = len(scores)
    if not 1 <= k <= n:
        raise ValueError(f"eff@k needs 1 <= k <= n, got k={k}, n={n}")
    ordered = sorted(scores)
    return sum(ordered[r - 1] * comb(r - 1, k - 1) for r in range(k, n + 1)) / comb(n, k)


def enamel_task_eff(
    elapsed: Mapping[int, float | None],
    reference: Mapping[int, float],
    correct: bool,
    alpha: float = ENAMEL_ALPHA,
    weights: Mapping[int, float] = ENAMEL_LEVEL_WEIGHTS,
) -> float:
    """Level-weighted ENAMEL score of one program; levels without a reference time are skipped.

    One timeout for the whole task, as in ENAMEL's code: ``T = alpha x`` the largest reference
    time of the weighted levels, so a level far below the largest scores near 1 unless it is slow
    on the task's own scale."""
    if not correct:
        return 0.0
    counted = {level: ref for level, ref in reference.items()
               if weights.get(level, 0.0) > 0 and ref is not None and ref > 0}
    if not counted:
        return 0.0
    timeout = alpha * max(counted.values())
    total = sum(weights[level] * calc_eff(elapsed.get(level), ref, timeout) for level, ref in counted.items())
    return total / sum(weights[level] for level in counted)


@dataclass(frozen=True)
class ProgramResult:
    """One program (role, sample) on one task: per-level times (None when that level failed)."""

    times: dict[int, float | None]
    correct: bool


@dataclass(frozen=True)
class RowSummary:
    """One table row: a role (and for generated programs, the k of Best@k)."""

    label: str
    tasks: int
    speedup: float
    pct_opt: float
    pct_correct: float
    eff: float  # eff@1, or eff@k for a Best@k row
    k: int = 1
    speedup_lo: float | None = None  # 95% bootstrap interval of `speedup` over tasks
    speedup_hi: float | None = None
    key: str = ""  # its metrics key when not the label's first word (samples rows: samples.<model>)
    # (task id, per-task speedup) behind `speedup`, for paired comparisons between rows
    per_task: tuple[tuple[str, float], ...] = dataclasses.field(default=(), compare=False)


def _level_results(measurements: Iterable[Measurement]) -> dict[tuple[str, str, int], dict[int, Measurement]]:
    grouped: dict[tuple[str, str, int], dict[int, Measurement]] = defaultdict(dict)
    for m in measurements:
        task_id, level = split_level_key(m.task_id)
        grouped[(task_id, m.role, m.sample)][level] = m
    return grouped


def _result(levels: Mapping[int, Measurement] | None, expected: Sequence[int]) -> ProgramResult:
    if not levels:
        return ProgramResult({lvl: None for lvl in expected}, False)
    times = {lvl: (levels[lvl].execution_time if lvl in levels and levels[lvl].passed else None) for lvl in expected}
    return ProgramResult(times, all(t is not None for t in times.values()))


def _natural(task_id: str) -> tuple:
    """HumanEval/9 before HumanEval/10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", task_id))


def _sum(times: Mapping[int, float | None], levels: Iterable[int]) -> float | None:
    values = [times.get(level) for level in levels]
    return None if any(v is None for v in values) else float(sum(values))


@dataclass(frozen=True)
class TaskOutcome:
    task_id: str
    comparable_levels: tuple[int, ...]
    speedups: tuple[float, ...]  # per generated sample
    correct: tuple[bool, ...]
    effs: tuple[float, ...]
    reference_speedup: float
    reference_correct: bool
    reference_eff: float
    slow_eff: float
    slow_correct: bool
    t_slow: float | None = None  # summed over the comparable levels, in the backend's unit
    t_reference: float | None = None
    t_generated: tuple[float | None, ...] = ()
    time_unit: str = ""


def task_outcomes(
    measurements: Iterable[Measurement], samples: int
) -> tuple[list[TaskOutcome], list[str]]:
    """Per-task outcomes, and the ids of tasks left out because the slow program passed no level."""
    grouped = _level_results(measurements)
    task_ids = sorted({task for task, role, _ in grouped if role == "slow"}, key=_natural)
    outcomes, excluded = [], []
    for task_id in task_ids:
        slow_levels = grouped[(task_id, "slow", 0)]
        expected = sorted(slow_levels)
        slow = _result(slow_levels, expected)
        comparable = tuple(level for level in expected if slow.times[level] is not None)
        if not comparable:
            excluded.append(task_id)
            continue
        t_slow = _sum(slow.times, comparable)
        reference = _result(grouped.get((task_id, "reference", 0)), expected)
        ref_times = {lvl: t for lvl, t in reference.times.items() if t is not None}

        def score(result: ProgramResult) -> tuple[float, float]:
            speedup = task_speedup(t_slow, _sum(result.times, comparable), result.correct)
            return speedup, enamel_task_eff(result.times, ref_times, result.correct)

        generated = [_result(grouped.get((task_id, "generated", s)), expected) for s in range(samples)]
        scored = [score(g) for g in generated]
        ref_speedup, ref_eff = score(reference)
        outcomes.append(TaskOutcome(
            task_id=task_id,
            comparable_levels=comparable,
            speedups=tuple(s for s, _ in scored),
            correct=tuple(g.correct for g in generated),
            effs=tuple(e for _, e in scored),
            reference_speedup=ref_speedup,
            reference_correct=reference.correct,
            reference_eff=ref_eff,
            slow_eff=enamel_task_eff(slow.times, ref_times, slow.correct),
            slow_correct=slow.correct,
            t_slow=t_slow,
            t_reference=_sum(reference.times, comparable),
            t_generated=tuple(_sum(g.times, comparable) for g in generated),
            time_unit=next(iter(slow_levels.values())).time_unit,
        ))
    return outcomes, excluded


def _mean_row(label: str, speedups: Sequence[float], opt: Sequence[float], correct: Sequence[float],
              effs: Sequence[float], k: int = 1, task_ids: Sequence[str] = (), key: str = "") -> RowSummary:
    """A row from per-task values: Speedup and eff are their means over tasks, %Opt and %Correct
    the means of per-task shares (1 or 0 for one program, a fraction for an estimate over samples)."""
    n = len(speedups)
    if n == 0:
        return RowSummary(label, 0, 1.0, 0.0, 0.0, 0.0, k, key=key)
    low, high = bootstrap_interval(speedups, seed=BOOTSTRAP_SEED)
    return RowSummary(
        label=label,
        tasks=n,
        speedup=sum(speedups) / n,
        pct_opt=100.0 * sum(opt) / n,
        pct_correct=100.0 * sum(correct) / n,
        eff=sum(effs) / n,
        k=k,
        speedup_lo=low,
        speedup_hi=high,
        key=key,
        per_task=tuple(zip(task_ids, speedups)),
    )


def _row(label: str, speedups: Sequence[float], correct: Sequence[bool], effs: Sequence[float], k: int = 1,
         task_ids: Sequence[str] = ()) -> RowSummary:
    """A row of one program per task."""
    opt = [float(c and s >= OPT_THRESHOLD) for s, c in zip(speedups, correct)]
    return _mean_row(label, speedups, opt, [float(c) for c in correct], effs, k, task_ids)


def summarize(outcomes: Sequence[TaskOutcome], samples: int) -> list[RowSummary]:
    """Rows: generated (sample 0, @1), generated Best@k when samples > 1, reference, slow."""
    ids = [o.task_id for o in outcomes]
    rows = [
        _row("generated", [o.speedups[0] for o in outcomes], [o.correct[0] for o in outcomes], [o.effs[0] for o in outcomes],
             task_ids=ids)
    ]
    if samples > 1:
        rows.append(_row(
            f"generated Best@{samples}",
            [max(o.speedups) for o in outcomes],
            [any(o.correct) for o in outcomes],
            [eff_at_k(o.effs, samples) for o in outcomes],
            k=samples,
            task_ids=ids,
        ))
    rows.append(_row("reference", [o.reference_speedup for o in outcomes], [o.reference_correct for o in outcomes],
                     [o.reference_eff for o in outcomes], task_ids=ids))
    rows.append(_row("slow", [1.0 for _ in outcomes], [o.slow_correct for o in outcomes], [o.slow_eff for o in outcomes],
                     task_ids=ids))
    return rows


def samples_rows(outcomes: Sequence[TaskOutcome], k: int, label: str, key: str) -> list[RowSummary]:
    """A samples model's rows from the n samples of each task (n = len(outcome.speedups) >= k): @1
    by the mean over the n samples (ENAMEL's eff@1 estimator, applied alike to the speedup and to
    the opt and correct indicators), and Best@k by the unbiased estimator of the best of k of the
    n samples (`eff_at_k` of each per-sample value: eff@k, Best@k speedup, and the chance that
    some of k samples is optimized / correct). With n == k, Best@k is the best of the n."""
    ids = [o.task_id for o in outcomes]

    def row(at: int, name: str) -> RowSummary:
        per_task = [(eff_at_k(o.speedups, at),
                     eff_at_k([float(c and s >= OPT_THRESHOLD) for s, c in zip(o.speedups, o.correct)], at),
                     eff_at_k([float(c) for c in o.correct], at),
                     eff_at_k(o.effs, at)) for o in outcomes]
        columns = [list(column) for column in zip(*per_task)] or [[], [], [], []]
        return _mean_row(name, *columns, k=at, task_ids=ids, key=key)

    return [row(1, label)] + ([row(k, f"{label} Best@{k}")] if k > 1 else [])


def model_rows(outcomes: Sequence[TaskOutcome], samples: int, role: str, model: str) -> list[RowSummary]:
    """The generated rows (@1, Best@k) of another model's run, labelled ``<role> (<model>)``: the
    per-model rows of report_pie (base model per prompt, fine-tuned model)."""
    return [dataclasses.replace(row, label=f"{role} ({model})" + row.label[len("generated"):])
            for row in summarize(outcomes, samples) if row.label.startswith("generated")]


def read_run(run_dir: str | os.PathLike, samples: int) -> tuple[str, list[TaskOutcome]] | None:
    """A measured run (``<run_dir>/completions.jsonl`` and ``timings/measurements.jsonl``): its
    label, the model of its completions, and its outcomes; None when it has no timings."""
    run = Path(run_dir)
    if not (run / "timings" / "measurements.jsonl").is_file():
        return None
    completions = read_jsonl(run / "completions.jsonl", Completion)
    outcomes, _ = task_outcomes(read_jsonl(run / "timings" / "measurements.jsonl", Measurement), samples)
    return (completions[0].model if completions else run.name), outcomes


def read_model_runs(rows_dir: str | os.PathLike, roles: Sequence[str]) -> list[tuple[str, str, list[Measurement]]]:
    """(role, model of its completions, measurements) of each measured run ``<rows_dir>/<role>``,
    in `roles` order (the ENAMEL protocol's per-model rows)."""
    found = []
    for role in roles:
        run = Path(rows_dir) / role
        if (run / "timings" / "measurements.jsonl").is_file():
            completions = read_jsonl(run / "completions.jsonl", Completion)
            found.append((role, completions[0].model if completions else role,
                          read_jsonl(run / "timings" / "measurements.jsonl", Measurement)))
    return found


def run_rows(rows_dir: str | os.PathLike, roles: Sequence[str], samples: int) -> list[RowSummary]:
    """The generated rows of each run ``<rows_dir>/<role>`` found, in `roles` order, labelled
    ``<role> (<its model>)`` (report_pie's per-model rows)."""
    found = []
    for role in roles:
        if (run := read_run(Path(rows_dir) / role, samples)) is not None:
            found += model_rows(run[1], samples, role, run[0])
    return found


def samples_run_rows(rows_dir: str | os.PathLike, models: Iterable[str], samples: int, k: int) -> list[RowSummary]:
    """The rows of each samples model's run ``<rows_dir>/<model>`` found, in `models` order (metrics
    key ``samples.<model>``), from its first `samples` samples per task (`samples_rows`)."""
    found = []
    for model in models:
        if (run := read_run(Path(rows_dir) / model, samples)) is not None:
            found += samples_rows(run[1], k, run[0], key=f"samples.{model}")
    return found


def optimization_metrics(rows: Sequence[RowSummary], excluded: int, prefix: str = "optimization") -> dict[str, float]:
    """Flat metric keys (``optimization.generated.speedup``, ``optimization.generated.best_at_4.pct_opt``);
    no dots inside a segment. Speedup's interval (``speedup_lo``, ``speedup_hi``) for every row but
    the slow program's (1.0 by definition)."""
    metrics: dict[str, float] = {f"{prefix}.tasks_without_slow_baseline": excluded}
    for row in rows:
        role = row.key or row.label.split()[0]
        key = f"{prefix}.{role}" + (f".best_at_{row.k}" if row.k > 1 else "")
        eff = f"eff_at_{row.k}"
        metrics.update({
            f"{key}.tasks": row.tasks,
            f"{key}.speedup": round(row.speedup, 4),
            f"{key}.pct_opt": round(row.pct_opt, 2),
            f"{key}.pct_correct": round(row.pct_correct, 2),
            f"{key}.{eff}": round(row.eff, 4),
        })
        if role != "slow" and row.speedup_lo is not None:
            metrics.update({f"{key}.speedup_lo": round(row.speedup_lo, 4), f"{key}.speedup_hi": round(row.speedup_hi, 4)})
    return metrics
