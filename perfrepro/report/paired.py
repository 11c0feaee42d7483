"""Paired comparison of rows on the tasks both have (per-task NET, or per-task speedup): the median
ratio with its bootstrap interval and the Wilcoxon p-value, one table line per pair."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from tabulate import tabulate

from perfrepro.metrics.uncertainty import PairedComparison, paired_comparison
from perfrepro.report.experiments import ExperimentResult
from perfrepro.report.formatting import format_interval, format_p


NET_RATIOS_PATH = "metrics/net_ratios.json"  # the report stage's per-task ratios (a git-tracked plot file)
OPTIMIZATION_TASKS_PATH = "metrics/optimization_tasks.json"  # report_pie's per-task speedups of each row
PAIRED_HEADERS = ("A", "B", "tasks both passed", "median NET ratio B/A", "95% CI", "Wilcoxon p", "ratio 1", "p-value")
PAIRED_NOTE = ("Paired comparison of per-task NET on the tasks both experiments passed: the median over those "
               "tasks of NET_B / NET_A (below 1: B is faster) with its 95% bootstrap interval, and the two-sided "
               "Wilcoxon signed-rank p-value of log(NET_B / NET_A); tasks at ratio 1 are left out of the test.")


def per_task_net(result: ExperimentResult, path: str = NET_RATIOS_PATH) -> dict[str, float] | None:
    """task id -> NET for the tasks whose completion and canonical passed; None without the file."""
    content = result.per_task.get(path)
    rows = content.get("net_ratios") if isinstance(content, Mapping) else None
    if not isinstance(rows, list):
        return None
    return {str(row["task_id"]): float(row["NET"]) for row in rows
            if isinstance(row, Mapping) and isinstance(row.get("NET"), (int, float)) and row["NET"] > 0}


def paired_rows(entries: Sequence[tuple[str, str, Mapping[str, float]]], differing_only: bool = False
                ) -> list[tuple[str, str, PairedComparison]]:
    """(A, B, comparison of B against A) for every pair of (name, timing backend, per-task values)
    entries, in order, measured with the same timing backend; with `differing_only`, only the pairs
    that share a task and differ on one (ratio 1 on every task says nothing)."""
    pairs = []
    for i, (a, timing_a, per_a) in enumerate(entries):
        for b, timing_b, per_b in entries[i + 1:]:
            if timing_a != timing_b:
                continue
            done = paired_comparison(per_a, per_b)
            if not (differing_only and done.zeros == done.n):
                pairs.append((a, b, done))
    return pairs


def paired_table(rows: Sequence[tuple[str, str, PairedComparison]], fmt: str = "github",
                 headers: Sequence[str] = PAIRED_HEADERS) -> str:
    """One line per pair: tasks, median ratio B/A with its 95% bootstrap interval, the Wilcoxon
    p-value, the tasks at ratio 1 (left out of the test) and how p was computed."""
    ratio = lambda value: "-" if math.isnan(value) else f"{value:.3f}"  # noqa: E731
    body = [[a, b, c.n, ratio(c.median_ratio), format_interval(c.median_lo, c.median_hi, 3), format_p(c.wilcoxon_p),
             c.zeros, "; ".join(part for part in (c.method, c.note) if part) or "-"] for a, b, c in rows]
    return tabulate(body, headers=list(headers), tablefmt=fmt, disable_numparse=True)
