"""The efficiency track's tables (EffiBench): one row per experiment, columns in the study's order
`Model | ET | NET | Max_NET | NET>5 | MU | NMU | Max_NMU | NMU>5 | TMU | NTMU | Max_TMU | TMU>5 | pass1`,
with the 95% bootstrap interval over tasks beside NET, NMU and NTMU (`NET 95% CI`, ...); the report
stage's page and files; across experiments (`perfrepro table`), a paired comparison of per-task NET
on the tasks both passed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from tabulate import tabulate

from perfrepro.metrics.efficiency import EfficiencyMetrics, efficiency_metrics, task_ratios
from perfrepro.metrics.uncertainty import PairedComparison
from perfrepro.records import Measurement
from perfrepro.report.experiments import ExperimentResult, dedupe_with
from perfrepro.report.formatting import (CI_SUFFIX, RECORDED_SOURCE, REFERENCE_SUFFIX, code_source, dotted_get,
                                         format_cell, samples_source)
from perfrepro.report.paired import paired_rows, per_task_net


# (column header, EfficiencyMetrics field)
EFFICIENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ET", "ET"), ("NET", "NET"), ("Max_NET", "Max_NET"), ("NET>5", "NET_gt5"),
    ("MU", "MU"), ("NMU", "NMU"), ("Max_NMU", "Max_NMU"), ("NMU>5", "NMU_gt5"),
    ("TMU", "TMU"), ("NTMU", "NTMU"), ("Max_TMU", "Max_TMU"), ("TMU>5", "TMU_gt5"),
    ("pass1", "pass1"),
)
# beside each mean of ratios, its 95% bootstrap interval over tasks: header -> (low, high) fields
INTERVALS: dict[str, tuple[str, str]] = {"NET": ("NET_lo", "NET_hi"), "NMU": ("NMU_lo", "NMU_hi"),
                                         "NTMU": ("NTMU_lo", "NTMU_hi")}


def with_intervals(columns: Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """`columns` with an interval column (fields (low, high)) after each column in INTERVALS."""
    out: list[tuple[str, Any]] = []
    for header, name in columns:
        out.append((header, name))
        if header in INTERVALS:
            out.append((header + CI_SUFFIX, INTERVALS[header]))
    return tuple(out)


EFFICIENCY_TABLE_COLUMNS = with_intervals(EFFICIENCY_COLUMNS)
TOTALS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("NET (ratio of totals)", "NET_total"), ("NMU (ratio of totals)", "NMU_total"),
    ("NTMU (ratio of totals)", "NTMU_total"), ("tasks", "tasks"), ("passed", "passed"),
    ("normalized", "normalized"), ("canonical failed", "canonical_failed"),
)


def experiment_name(shots: int, model: str, llm_backend: str = "openai", source: str | None = None) -> str:
    """The study's row name: `rag3_and_<source>` with retrieved examples, `<source>` without
    (`source` from `code_source`: `leetcodedataset-response` for the recorded backend)."""
    source = code_source(model, llm_backend, source)
    return f"rag{shots}_and_{source}" if shots > 0 else source


def reference_name() -> str:
    """The label of the reference row that `measure` adds: LeetCodeDataset's recorded responses."""
    return RECORDED_SOURCE + REFERENCE_SUFFIX


def efficiency_rows(rows: Mapping[str, EfficiencyMetrics] | Sequence[tuple[str, EfficiencyMetrics]],
                    columns: Sequence[tuple[str, Any]] = EFFICIENCY_TABLE_COLUMNS) -> list[list[str]]:
    items = rows.items() if isinstance(rows, Mapping) else rows
    return [[name, *(format_cell(lambda f, m=m: getattr(m, f), field) for _, field in columns)]
            for name, m in items]


def efficiency_table(rows: Mapping[str, EfficiencyMetrics] | Sequence[tuple[str, EfficiencyMetrics]],
                     fmt: str = "github") -> str:
    """The study's table: `Model`, its 13 columns and the intervals beside NET, NMU and NTMU;
    `fmt` is a tabulate format."""
    headers = ["Model", *(header for header, _ in EFFICIENCY_TABLE_COLUMNS)]
    return tabulate(efficiency_rows(rows), headers=headers, tablefmt=fmt, disable_numparse=True)


def totals_table(rows: Mapping[str, EfficiencyMetrics] | Sequence[tuple[str, EfficiencyMetrics]],
                 fmt: str = "github") -> str:
    """Ratio-of-totals variant (EffiBench's released code) and the task counts behind a row."""
    headers = ["Model", *(header for header, _ in TOTALS_COLUMNS)]
    return tabulate(efficiency_rows(rows, TOTALS_COLUMNS), headers=headers, tablefmt=fmt,
                    disable_numparse=True)


def efficiency_markdown(name: str, metrics: EfficiencyMetrics, backend: str, note: str = "",
                        reference: tuple[str, EfficiencyMetrics] | None = None) -> str:
    """The report stage's markdown: the table (the live row, then the reference row when there
    is one), the totals variant, units, intervals and statuses."""
    rows = {name: metrics, **({reference[0]: reference[1]} if reference else {})}
    unit_of = metrics.time_unit if metrics.normalized or not reference else reference[1].time_unit
    units = {"ms": ("ms", "MB·s", "MB"), "instructions": ("instructions", "MB·instructions", "MB (heap)")}
    time_unit, mu_unit, tmu_unit = units.get(unit_of, (unit_of, f"MB·{unit_of}", "MB"))
    parts = [
        f"# Efficiency ({backend} backend)",
        "",
        efficiency_table(rows),
        "",
        f"ET in {time_unit} per run of the tests, MU in {mu_unit}, TMU in {tmu_unit}; N* are means of "
        "per-task ratios to the canonical solution measured in the same run; NET>5, NMU>5 are % of "
        "those tasks with a ratio above 5, TMU>5 the % whose TMU exceeds 5 MB; pass1 is % of all tasks. "
        "`95% CI`: seeded percentile bootstrap over the tasks in the ratios (2,000 resamples); "
        "one task gives its value twice.",
    ]
    if reference:
        parts += [
            "",
            f"`{reference[0]}`: the solutions LeetCodeDataset ships in its `response` field for the same "
            "tasks, measured in the same run beside the same canonical solutions: a filled reference row "
            f"for the columns, not this experiment's model (that is `{name}`).",
        ]
    parts += [
        "",
        "## Ratio of totals (EffiBench's released code)",
        "",
        totals_table(rows),
        "",
    ]
    for row_name, row in rows.items():
        statuses = ", ".join(f"{status}: {count}" for status, count in row.status_counts.items())
        parts.append(f"Completion statuses ({row_name}): {statuses}." if reference else f"Completion statuses: {statuses}.")
    if note:
        parts += ["", note]
    return "\n".join(parts) + "\n"


def _efficiency_entries(results: Sequence[ExperimentResult], metrics_path: str) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(row name, flat metrics, (timing backend, result)) per distinct experiment, sorted."""
    rows = []
    for result in results:
        flat = dotted_get(result.metrics.get(metrics_path) or {}, "efficiency")
        if not isinstance(flat, Mapping):
            continue
        shots = int(dotted_get(result.params, "shots", 0) or 0)
        model = str(dotted_get(result.params, "llm.model", "?"))
        backend = str(dotted_get(result.params, "llm.backend", "openai"))
        name = experiment_name(shots, model, backend, samples_source(result.params))
        timing = str(dotted_get(result.params, "timing.backend", "wall"))
        if timing != "wall":
            name += f" [timing: {timing}]"
        rows.append((name, (model, backend == "recorded", timing != "wall", timing, shots), flat, result.name,
                     (timing, result)))
    return dedupe_with(rows)


def efficiency_experiment_rows(results: Sequence[ExperimentResult],
                               metrics_path: str = "metrics/efficiency.json") -> list[tuple[str, Mapping[str, Any]]]:
    """(row name, flat efficiency metrics) per distinct experiment, named like the study
    (`rag3_and_<model>`), sorted by model then shots; a timing backend other than wall is noted."""
    return [(name, flat) for name, flat, _ in _efficiency_entries(results, metrics_path)]


def efficiency_table_from_dicts(rows: Sequence[tuple[str, Mapping[str, Any]]], fmt: str = "github") -> str:
    """The study's efficiency table (`Model`, its 13 columns, the intervals beside NET, NMU and
    NTMU) from flat metrics dicts; an experiment run before the intervals existed shows "-"."""
    headers = ["Model", *(header for header, _ in EFFICIENCY_TABLE_COLUMNS)]
    body = [[name, *(format_cell(values.get, spec) for _, spec in EFFICIENCY_TABLE_COLUMNS)] for name, values in rows]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def efficiency_paired_rows(results: Sequence[ExperimentResult], metrics_path: str = "metrics/efficiency.json"
                           ) -> list[tuple[str, str, PairedComparison]]:
    """(A, B, comparison of B against A) for every pair of distinct experiments (in table order)
    measured with the same timing backend that both have per-task NET."""
    entries = [(name, timing, per) for name, _, (timing, result) in _efficiency_entries(results, metrics_path)
               if (per := per_task_net(result)) is not None]
    return paired_rows(entries)


# the report stage's files: efficiency.json, .md, net_ratios.json, reference_ratios.json, net_plot.json

REFERENCE_ROLE = "reference"
REFERENCE_KEYS = ("NET", "NET_lo", "NET_hi", "NMU", "NTMU", "pass1")  # few: the rest is in efficiency.md


def _number(value):
    return round(value, 6) if isinstance(value, float) else value


def _status(task_id, by_task, completions, canonicals) -> str:
    """`ok` when the task has ratios, else why not (completion status, or `canonical_<status>`)."""
    if task_id in by_task:
        return "ok"
    done, canon = completions.get(task_id), canonicals.get(task_id)
    if done is None:
        return "missing"
    if not done.passed:
        return done.status
    return "canonical_missing" if canon is None else f"canonical_{canon.status}"


def ratio_rows(task_ids, ratios, completions, canonicals) -> list[dict]:
    """One row per task (null ratios where the completion or the canonical did not pass), so the
    plot and `dvc plots` never see an empty file when no completion passes."""
    by_task = {r.task_id: r for r in ratios}
    return [
        {"task_id": task_id, "status": _status(task_id, by_task, completions, canonicals),
         **({"NET": _number(r.net), "NMU": _number(r.nmu), "NTMU": _number(r.ntmu)} if (r := by_task.get(task_id))
            else {"NET": None, "NMU": None, "NTMU": None})}
        for task_id in task_ids
    ]


def net_plot_rows(rows, name: str, metrics) -> list[dict]:
    """The per-task rows of one table row for the NET plot (metrics/net_plot.json): each task's
    ratios plus the row's name and its NET with the 95% bootstrap interval, so the chart shows the
    points and the interval side by side (and the reference row when the live model passed nothing)."""
    summary = {key: _number(getattr(metrics, key, None)) for key in ("NET", "NET_lo", "NET_hi")}
    return [{**row, "row": name, "row_NET": summary["NET"], "row_NET_lo": summary["NET_lo"],
             "row_NET_hi": summary["NET_hi"], "row_pass1": _number(metrics.pass1)} for row in rows]


def net_text(metrics) -> str:
    """``NET 1.23 [1.10, 1.40] over 8 tasks``, or ``NET n/a: no completion passed`` (never "None")."""
    if metrics.NET is None:
        return "NET n/a: no completion passed"
    interval = (f" [{metrics.NET_lo:.3g}, {metrics.NET_hi:.3g}]"
                if getattr(metrics, "NET_lo", None) is not None and getattr(metrics, "NET_hi", None) is not None else "")
    return f"NET {metrics.NET:.3g}{interval} over {metrics.normalized} tasks"


@dataclass(frozen=True)
class EfficiencyReport:
    """What the report stage writes, built from one run's measurements: `content` is
    efficiency.json without its run_info; the rows are net_ratios.json's, reference_ratios.json's
    (empty without a reference row) and net_plot.json's."""

    name: str
    metrics: EfficiencyMetrics
    reference: EfficiencyMetrics | None  # the reference row (role "reference"), when `measure` measured one
    content: dict[str, Any]
    markdown: str
    net_rows: list[dict]
    reference_rows: list[dict]
    plot_rows: list[dict]


def efficiency_report(task_ids: Sequence[str], measurements: Sequence[Measurement], name: str,
                      timing_backend: str) -> EfficiencyReport:
    """The report stage's files for the row `name` (`experiment_name`), the table in the unit of
    `timing_backend`. Raises ValueError when the measurements mix time units."""
    metrics = efficiency_metrics(task_ids, measurements)
    ratios, completions, canonicals = task_ratios(task_ids, measurements)
    has_reference = any(m.role == REFERENCE_ROLE for m in measurements)
    reference = efficiency_metrics(task_ids, measurements, role=REFERENCE_ROLE) if has_reference else None
    flat = {key: _number(value) for key, value in metrics.as_dict().items()
            if key not in ("status_counts", "time_unit")}
    flat.update({f"status_{status}": count for status, count in metrics.status_counts.items()})
    content = {"efficiency": flat}
    if reference is not None:
        content["efficiency_reference"] = {key: _number(getattr(reference, key)) for key in REFERENCE_KEYS}
    markdown = efficiency_markdown(name, metrics, timing_backend,
                                   reference=(reference_name(), reference) if reference else None)
    net_rows = ratio_rows(task_ids, ratios, completions, canonicals)
    reference_rows = (ratio_rows(task_ids, *task_ratios(task_ids, measurements, role=REFERENCE_ROLE))
                      if reference is not None else [])
    plot_rows = net_plot_rows(net_rows, name, metrics) + (
        net_plot_rows(reference_rows, reference_name(), reference) if reference is not None else [])
    return EfficiencyReport(name, metrics, reference, content, markdown, net_rows, reference_rows, plot_rows)
