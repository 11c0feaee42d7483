"""EffiBench efficiency metrics (DESIGN.md, "Metrics (exact)"), as small pure functions.

Per task i whose completion passes (and whose canonical solution, measured in the same run,
passes too), with T = execution time, M = memory-time integral (MU), P = peak memory (TMU):
- ET = mean_i T_i;   NET = mean_i T_i / T_canon_i;   Max_NET = max_i ratio;   NET>5 = % ratio > 5
- MU = mean_i M_i;   NMU, Max_NMU, NMU>5 likewise
- TMU = mean_i P_i;  NTMU = mean_i P_i / P_canon_i;  Max_TMU = max_i P_i (MB, not a ratio, as
  the seed table defines it);  TMU>5 = % of those tasks whose P_i > 5 MB
- pass1 = % of ALL tasks whose completion passes every test (a task with no completion, a
  timeout, a crash, a wrong answer or an out-of-memory is a failure).
The percentages over "tasks" use the tasks that enter the ratios as denominator (EffiBench's
convention). Beside each mean of ratios, the ratio of totals (EffiBench's released code):
NET_total = sum T_i / sum T_canon_i, and so on.

Uncertainty: NET, NMU and NTMU carry a 95% percentile-bootstrap interval over the tasks in the
ratios (`NET_lo`, `NET_hi`, ...; perfrepro.metrics.uncertainty, seed `BOOTSTRAP_SEED`, so the same
ratios always give the same interval; one task gives its value twice; no task gives None).

Near-zero guard: a ratio is max(x, floor) / max(x_canon, floor), with a floor per unit
(`FLOORS`): far below anything a passing run can measure (1 ns, 1 instruction, ...), so it never
moves a real ratio, but a zero or negative canonical value (possible for the deterministic MU,
a difference of two profiles) can't divide by zero or flip a sign.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from perfrepro.metrics.uncertainty import bootstrap_interval
from perfrepro.records import Measurement

# time_unit -> (time floor, MU floor, TMU floor in MB)
FLOORS = {
    "ms": (1e-6, 1e-9, 1e-3),
    "instructions": (1.0, 1.0, 1e-3),
    "sim_seconds": (1e-12, 1e-15, 1e-3),
}
_DEFAULT_FLOORS = (1e-12, 1e-12, 1e-3)
TMU_THRESHOLD_MB = 5.0
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
RATIO_THRESHOLD = 5.0


def normalized(value: float, canonical: float, floor: float) -> float:
    """value / canonical with both held at or above `floor` (the near-zero guard)."""
    return max(value, floor) / max(canonical, floor)


def percent(flags: Sequence[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


@dataclass(frozen=True)
class TaskRatio:
    """One task whose completion and canonical both passed: its values and ratios."""

    task_id: str
    time: float
    time_canonical: float
    memory_usage: float
    memory_usage_canonical: float
    peak_memory_mb: float
    peak_memory_mb_canonical: float
    net: float
    nmu: float
    ntmu: float


@dataclass(frozen=True)
class EfficiencyMetrics:
    """One row of the study's table (None where no task passed), plus the counts behind it."""

    ET: float | None
    NET: float | None
    NET_lo: float | None  # 95% bootstrap interval of NET over tasks
    NET_hi: float | None
    Max_NET: float | None
    NET_gt5: float | None
    MU: float | None
    NMU: float | None
    NMU_lo: float | None
    NMU_hi: float | None
    Max_NMU: float | None
    NMU_gt5: float | None
    TMU: float | None
    NTMU: float | None
    NTMU_lo: float | None
    NTMU_hi: float | None
    Max_TMU: float | None
    TMU_gt5: float | None
    pass1: float
    NET_total: float | None
    NMU_total: float | None
    NTMU_total: float | None
    tasks: int  # all tasks (pass1's denominator)
    passed: int  # tasks whose completion passed
    normalized: int  # tasks in the ratios (completion and canonical passed)
    canonical_failed: int  # tasks whose canonical solution failed (a task or harness problem)
    time_unit: str
    status_counts: dict[str, int]

    def as_dict(self) -> dict:
        return asdict(self)


def _by_task(measurements: Iterable[Measurement], role: str) -> dict[str, Measurement]:
    """First sample of each task for `role` (pass@1 reads sample 0 when there are several)."""
    chosen: dict[str, Measurement] = {}
    for m in measurements:
        if m.role != role:
            continue
        if m.task_id not in chosen or m.sample < chosen[m.task_id].sample:
            chosen[m.task_id] = m
    return chosen


def task_ratios(
    task_ids: Sequence[str], measurements: Iterable[Measurement], role: str = "completion"
) -> tuple[list[TaskRatio], dict[str, Measurement], dict[str, Measurement]]:
    """Per-task ratios for tasks whose `role` program (the completion) and canonical both passed,
    in task order."""
    measurements = list(measurements)
    completions = _by_task(measurements, role)
    canonicals = _by_task(measurements, "canonical")
    units = {m.time_unit for m in measurements if m.passed}
    if len(units) > 1:
        raise ValueError(f"measurements mix time units {sorted(units)}; compare one backend at a time")
    time_floor, mu_floor, tmu_floor = FLOORS.get(next(iter(units), "ms"), _DEFAULT_FLOORS)
    ratios = []
    for task_id in task_ids:
        done, canon = completions.get(task_id), canonicals.get(task_id)
        if done is None or canon is None or not done.passed or not canon.passed:
            continue
        ratios.append(TaskRatio(
            task_id=task_id,
            time=done.execution_time,
            time_canonical=canon.execution_time,
            memory_usage=done.memory_usage,
            memory_usage_canonical=canon.memory_usage,
            peak_memory_mb=done.peak_memory_mb,
            peak_memory_mb_canonical=canon.peak_memory_mb,
            net=normalized(done.execution_time, canon.execution_time, time_floor),
            nmu=normalized(done.memory_usage, canon.memory_usage, mu_floor),
            ntmu=normalized(done.peak_memory_mb, canon.peak_memory_mb, tmu_floor),
        ))
    return ratios, completions, canonicals


def interval(values: Sequence[float], seed: int = BOOTSTRAP_SEED) -> tuple[float | None, float | None]:
    """The 95% bootstrap interval of the mean of `values` over tasks; (None, None) for no task."""
    if not values:
        return None, None
    low, high = bootstrap_interval(values, confidence=CONFIDENCE, seed=seed)
    return low, high


def _normalized(name: str, values: Sequence[float]) -> dict[str, float | None]:
    """A normalized ratio's columns: its mean over tasks, interval, maximum and share above 5."""
    low, high = interval(values)
    some = bool(values)
    return {name: mean(values), f"{name}_lo": low, f"{name}_hi": high, f"Max_{name}": max(values) if some else None,
            f"{name}_gt5": percent([x > RATIO_THRESHOLD for x in values]) if some else None}


def _total_ratio(values: Sequence[float], canonical: Sequence[float], floor: float) -> float | None:
    return normalized(math.fsum(values), math.fsum(canonical), floor) if values else None


def efficiency_metrics(task_ids: Sequence[str], measurements: Iterable[Measurement],
                       role: str = "completion") -> EfficiencyMetrics:
    """The table row for these tasks. `measurements` hold roles "canonical" and `role` (the
    row's programs: "completion", or "reference" for the reference row measured in the same run).

    A task with no `role` measurement counts as a failure (status "no_code").
    """
    task_ids = list(dict.fromkeys(task_ids))
    ratios, completions, canonicals = task_ratios(task_ids, measurements, role)
    passed = [t for t in task_ids if t in completions and completions[t].passed]
    status_counts: dict[str, int] = {}
    for t in task_ids:
        status = completions[t].status if t in completions else "no_code"
        status_counts[status] = status_counts.get(status, 0) + 1
    canonical_failed = sum(1 for t in task_ids if t in canonicals and not canonicals[t].passed)
    unit = next((m.time_unit for m in completions.values() if m.passed), "ms")
    time_floor, mu_floor, tmu_floor = FLOORS.get(unit, _DEFAULT_FLOORS)
    ntmu = [r.ntmu for r in ratios]
    peaks = [r.peak_memory_mb for r in ratios]
    some = bool(ratios)
    ntmu_lo, ntmu_hi = interval(ntmu)
    return EfficiencyMetrics(
        ET=mean([r.time for r in ratios]),
        **_normalized("NET", [r.net for r in ratios]),
        MU=mean([r.memory_usage for r in ratios]),
        **_normalized("NMU", [r.nmu for r in ratios]),
        TMU=mean(peaks),
        NTMU=mean(ntmu),
        NTMU_lo=ntmu_lo,
        NTMU_hi=ntmu_hi,
        Max_TMU=max(peaks) if some else None,
        TMU_gt5=percent([x > TMU_THRESHOLD_MB for x in peaks]) if some else None,
        pass1=percent([t in passed for t in task_ids]),
        NET_total=_total_ratio([r.time for r in ratios], [r.time_canonical for r in ratios], time_floor),
        NMU_total=_total_ratio([r.memory_usage for r in ratios], [r.memory_usage_canonical for r in ratios], mu_floor),
        NTMU_total=_total_ratio(peaks, [r.peak_memory_mb_canonical for r in ratios], tmu_floor),
        tasks=len(task_ids),
        passed=len(passed),
        normalized=len(ratios),
        canonical_failed=canonical_failed,
        time_unit=unit,
        status_counts=dict(sorted(status_counts.items())),
    )
