"""Markdown / console tables in the study's style (tabulate). A module of small functions.

Efficiency: one row per experiment, columns in the study's order
`Model | ET | NET | Max_NET | NET>5 | MU | NMU | Max_NMU | NMU>5 | TMU | NTMU | Max_TMU | TMU>5 | pass1`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tabulate import tabulate

from perfrepro.metrics.efficiency import EfficiencyMetrics
from perfrepro.metrics.optimization import RowSummary, TaskOutcome

# (column header, EfficiencyMetrics field)
EFFICIENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ET", "ET"), ("NET", "NET"), ("Max_NET", "Max_NET"), ("NET>5", "NET_gt5"),
    ("MU", "MU"), ("NMU", "NMU"), ("Max_NMU", "Max_NMU"), ("NMU>5", "NMU_gt5"),
    ("TMU", "TMU"), ("NTMU", "NTMU"), ("Max_TMU", "Max_TMU"), ("TMU>5", "TMU_gt5"),
    ("pass1", "pass1"),
)
TOTALS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("NET (ratio of totals)", "NET_total"), ("NMU (ratio of totals)", "NMU_total"),
    ("NTMU (ratio of totals)", "NTMU_total"), ("tasks", "tasks"), ("passed", "passed"),
    ("normalized", "normalized"), ("canonical failed", "canonical_failed"),
)


def experiment_name(shots: int, model: str, llm_backend: str = "openai") -> str:
    """The study's row name: `rag3_and_<model>` with retrieved examples, `<model>` without."""
    name = f"rag{shots}_and_{model}" if shots > 0 else model
    return f"{name} (recorded responses)" if llm_backend == "recorded" else name


def format_value(value: Any, digits: int = 2) -> str:
    """Fixed-point like the seed table; large values (instruction counts) in scientific form."""
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 10 ** -digits):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def efficiency_rows(rows: Mapping[str, EfficiencyMetrics] | Sequence[tuple[str, EfficiencyMetrics]],
                    columns: Sequence[tuple[str, str]] = EFFICIENCY_COLUMNS) -> list[list[str]]:
    items = rows.items() if isinstance(rows, Mapping) else rows
    return [[name, *(format_value(getattr(m, field)) for _, field in columns)] for name, m in items]


def efficiency_table(rows: Mapping[str, EfficiencyMetrics] | Sequence[tuple[str, EfficiencyMetrics]],
                     fmt: str = "github") -> str:
    """The study's table: `Model` then its 13 columns; `fmt` is a tabulate format."""
    headers = ["Model", *(header for header, _ in EFFICIENCY_COLUMNS)]
    return tabulate(efficiency_rows(rows), headers=headers, tablefmt=fmt, disable_numparse=True)


def totals_table(rows: Mapping[str, EfficiencyMetrics] | Sequence[tuple[str, EfficiencyMetrics]],
                 fmt: str = "github") -> str:
    """Ratio-of-totals variant (EffiBench's released code) and the task counts behind a row."""
    headers = ["Model", *(header for header, _ in TOTALS_COLUMNS)]
    return tabulate(efficiency_rows(rows, TOTALS_COLUMNS), headers=headers, tablefmt=fmt,
                    disable_numparse=True)


def efficiency_markdown(name: str, metrics: EfficiencyMetrics, backend: str, note: str = "") -> str:
    """The report stage's markdown: the table, the totals variant, units and statuses."""
    units = {"ms": ("ms", "MB·s", "MB"), "instructions": ("instructions", "MB·instructions", "MB (heap)")}
    time_unit, mu_unit, tmu_unit = units.get(metrics.time_unit, (metrics.time_unit, f"MB·{metrics.time_unit}", "MB"))
    statuses = ", ".join(f"{status}: {count}" for status, count in metrics.status_counts.items())
    parts = [
        f"# Efficiency ({backend} backend)",
        "",
        efficiency_table({name: metrics}),
        "",
        f"ET in {time_unit} per run of the tests, MU in {mu_unit}, TMU in {tmu_unit}; N* are means of "
        "per-task ratios to the canonical solution measured in the same run; NET>5, NMU>5 are % of "
        "those tasks with a ratio above 5, TMU>5 the % whose TMU exceeds 5 MB; pass1 is % of all tasks.",
        "",
        "## Ratio of totals (EffiBench's released code)",
        "",
        totals_table({name: metrics}),
        "",
        f"Completion statuses: {statuses}.",
    ]
    if note:
        parts += ["", note]
    return "\n".join(parts) + "\n"


# ---- optimization track (PIE) ----

OPTIMIZATION_ROW_NAMES = {
    "generated": "generated",
    "reference": "human reference (ENAMEL, ceiling)",
    "slow": "slow (HumanEval canonical)",
}


def optimization_table(rows: Sequence[RowSummary], model: str) -> str:
    """Speedup, %Opt, %Correct and eff@k per row (markdown, pipe format)."""
    body = []
    for row in rows:
        role, _, rest = row.label.partition(" ")
        name = OPTIMIZATION_ROW_NAMES.get(role, role) + (f" ({model})" if role == "generated" else "") + (f" {rest}" if rest else "")
        body.append([name, row.tasks, f"{row.speedup:.2f}", f"{row.pct_opt:.1f}", f"{row.pct_correct:.1f}", f"{row.eff:.3f}", row.k])
    return tabulate(body, headers=["program", "tasks", "Speedup", "%Opt", "%Correct", "eff@k", "k"], tablefmt="pipe",
                    disable_numparse=True)


def optimization_task_table(outcomes: Sequence[TaskOutcome]) -> str:
    """Per task: comparable levels, summed times, the generated (sample 0) and reference speedups."""

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    body = [
        [o.task_id, ",".join(map(str, o.comparable_levels)), o.time_unit, fmt(o.t_slow), fmt(o.t_reference),
         fmt(o.t_generated[0] if o.t_generated else None), f"{o.speedups[0]:.2f}", "yes" if o.correct[0] else "no",
         f"{o.reference_speedup:.2f}"]
        for o in outcomes
    ]
    return tabulate(body, headers=["task", "levels", "unit", "t_slow", "t_reference", "t_generated", "speedup",
                                   "correct", "reference speedup"], tablefmt="pipe", disable_numparse=True)
