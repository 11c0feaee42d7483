"""ENAMEL's scores (Qiu et al., ICLR 2025; `enam` 0.2.0) from the ENAMEL protocol's measurements.

- A test's time is the Hodges-Lehmann estimate of its repeats: the median of the Walsh averages
  (t_a + t_b) / 2 over all pairs a <= b (`hodges_lehmann`).
- A level's time is the largest of its tests' estimates; so is the reference's, ``ref_j``.
- Per level, ``e_j = max(0, T - t_j) / (T - ref_j)`` with one timeout per task,
  ``T = alpha x max_j ref_j`` over the weighted levels (alpha = 2); a level that overran the time
  limit or the memory (and every level after it, which ENAMEL does not run) scores 0.
- A program's score is the weighted mean of its e_j (weights 0, 3, 3, 4 for levels 0-3); a wrong
  answer, a crash, or a level 0 that did not pass scores 0 and does not pass.
- eff@k and pass@k are the unbiased estimators over a task's n samples (eff@k as in
  perfrepro.metrics.optimization.eff_at_k), averaged over tasks; eff@1 carries a 95% percentile
  bootstrap interval over tasks (seed 0).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from math import comb
from statistics import median
from typing import Iterable, Mapping, Sequence

from perfrepro.metrics.optimization import ENAMEL_ALPHA, ENAMEL_LEVEL_WEIGHTS, eff_at_k, enamel_task_eff, split_level_key
from perfrepro.metrics.uncertainty import bootstrap_interval
from perfrepro.records import Measurement

# statuses of a level that keep the program correct: passed, or stopped by the time or memory limit
CENSORED = ("ok", "timeout", "memory")
ENAMEL_WEIGHTS = tuple(ENAMEL_LEVEL_WEIGHTS[level] for level in sorted(ENAMEL_LEVEL_WEIGHTS))  # 0, 3, 3, 4
BOOTSTRAP_SEED = 0


def hodges_lehmann(values: Sequence[float]) -> float:
    """The median of the Walsh averages (x_a + x_b) / 2 over a <= b (a = b included)."""
    xs = list(values)
    if not xs:
        raise ValueError("hodges_lehmann: no values")
    return float(median((xs[a] + xs[b]) / 2.0 for a in range(len(xs)) for b in range(a, len(xs))))


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of c correct programs among n: 1 - C(n - c, k) / C(n, k)."""
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def program_score(levels: Mapping[int, Measurement], reference_ms: Mapping[int, float],
                  weights: Sequence[float] = ENAMEL_WEIGHTS, alpha: float = ENAMEL_ALPHA) -> tuple[bool, float]:
    """(passed, eff) of one program from its per-level Measurements (module docstring)."""
    first = levels.get(0)
    passed = first is not None and first.passed and all(m.status in CENSORED for m in levels.values())
    elapsed = {level: (m.execution_time if m.passed else None) for level, m in levels.items()}
    return passed, enamel_task_eff(elapsed, reference_ms, passed, alpha, dict(enumerate(weights)))


@dataclass(frozen=True)
class EnamelTaskScore:
    """One task for one role: the pass and eff of each of its samples, with the reference's
    level times and the timeout T they set (ms)."""

    task_id: str
    role: str
    passed: tuple[bool, ...]
    effs: tuple[float, ...]
    reference_ms: Mapping[int, float] = field(default_factory=dict)
    timeout_ms: float | None = None
    level_ms: tuple[Mapping[int, float | None], ...] = ()  # per sample: level -> time (None: not passed)
    statuses: tuple[Mapping[int, str], ...] = ()


def _natural(task_id: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", task_id))


def enamel_scores(measurements: Iterable[Measurement], weights: Sequence[float] = ENAMEL_WEIGHTS,
                  alpha: float = ENAMEL_ALPHA) -> dict[str, list[EnamelTaskScore]]:
    """role -> its per-task scores, tasks in HumanEval order (the reference's own role left out)."""
    grouped: dict[tuple[str, str, int], dict[int, Measurement]] = defaultdict(dict)
    for m in measurements:
        task_id, level = split_level_key(m.task_id)
        grouped[(task_id, m.role, m.sample)][level] = m
    references = {task: levels for (task, role, _), levels in grouped.items() if role == "reference"}
    by_role: dict[str, dict[str, list[tuple[int, dict[int, Measurement]]]]] = defaultdict(lambda: defaultdict(list))
    for (task_id, role, sample), levels in grouped.items():
        if role != "reference":
            by_role[role][task_id].append((sample, levels))
    out: dict[str, list[EnamelTaskScore]] = {}
    for role, tasks in by_role.items():
        scores = []
        for task_id in sorted(tasks, key=_natural):
            ref = {level: m.execution_time for level, m in references.get(task_id, {}).items() if m.passed}
            weighted = [t for level, t in ref.items() if level < len(weights) and weights[level] > 0]
            samples = sorted(tasks[task_id], key=lambda pair: pair[0])
            results = [program_score(levels, ref, weights, alpha) for _, levels in samples]
            scores.append(EnamelTaskScore(
                task_id=task_id, role=role,
                passed=tuple(p for p, _ in results), effs=tuple(e for _, e in results),
                reference_ms=ref, timeout_ms=alpha * max(weighted) if weighted else None,
                level_ms=tuple({lv: (m.execution_time if m.passed else None) for lv, m in levels.items()} for _, levels in samples),
                statuses=tuple({lv: m.status for lv, m in levels.items()} for _, levels in samples),
            ))
        out[role] = scores
    return out


@dataclass(frozen=True)
class EnamelRow:
    """One row of the ENAMEL table: eff@k and pass@k over `tasks` tasks (k = 1 carries the interval)."""

    role: str
    tasks: int
    k: int
    eff: float
    pass_rate: float
    eff_lo: float | None = None
    eff_hi: float | None = None
    label: str = ""  # a table label other than the role's (another model run's rows)


def enamel_row(role: str, scores: Sequence[EnamelTaskScore], k: int = 1) -> EnamelRow:
    """eff@k and pass@k of one role, averaged over its tasks; eff@1 with its bootstrap interval."""
    if not scores:
        return EnamelRow(role, 0, k, 0.0, 0.0)
    per_task = [eff_at_k(s.effs, k) for s in scores]
    passes = [pass_at_k(len(s.passed), sum(s.passed), k) for s in scores]
    low, high = bootstrap_interval(per_task, seed=BOOTSTRAP_SEED) if k == 1 else (None, None)
    return EnamelRow(role, len(scores), k, sum(per_task) / len(per_task), sum(passes) / len(passes), low, high)


def enamel_rows(scores: Mapping[str, Sequence[EnamelTaskScore]], ks: Sequence[int] = (1,)) -> list[EnamelRow]:
    """Rows for every role and every k its smallest sample count allows."""
    rows = []
    for role, role_scores in scores.items():
        fewest = min((len(s.effs) for s in role_scores), default=0)
        rows += [enamel_row(role, role_scores, k) for k in ks if k <= max(fewest, 1)]
    return rows


def enamel_metrics(rows: Sequence[EnamelRow], prefix: str = "optimization.enamel") -> dict[str, float]:
    """Flat keys: ``optimization.enamel.<role>.eff_at_1`` (with ``_lo``/``_hi``), ``.pass_at_1``, ``.tasks``;
    a role's name keeps no dots (``humanevalplus-canonical``)."""
    metrics: dict[str, float] = {}
    for row in rows:
        key = f"{prefix}.{row.role.replace('.', '_')}"
        metrics[f"{key}.tasks"] = row.tasks
        metrics[f"{key}.eff_at_{row.k}"] = round(row.eff, 4)
        metrics[f"{key}.pass_at_{row.k}"] = round(row.pass_rate, 4)
        if row.eff_lo is not None:
            metrics[f"{key}.eff_at_{row.k}_lo"] = round(row.eff_lo, 4)
            metrics[f"{key}.eff_at_{row.k}_hi"] = round(row.eff_hi, 4)
    return metrics
