"""Markdown / console tables in the study's style (tabulate). A module of small functions.

Efficiency: one row per experiment, columns in the study's order
`Model | ET | NET | Max_NET | NET>5 | MU | NMU | Max_NMU | NMU>5 | TMU | NTMU | Max_TMU | TMU>5 | pass1`,
with the 95% bootstrap interval over tasks beside NET, NMU and NTMU (`NET 95% CI`, ...). Across
experiments (`perfrepro table`), a paired comparison of per-task NET on the tasks both passed.

Row labels say where a row's code came from: the live model's name (`llm.model`), or for
`llm.backend: recorded` the dataset field it replays (`leetcodedataset-response`), never the
name of a model that did not write it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tabulate import tabulate

from perfrepro.metrics.efficiency import EfficiencyMetrics
from perfrepro.metrics.enamel import EnamelRow, EnamelTaskScore, enamel_metrics, enamel_rows, enamel_scores
from perfrepro.metrics.optimization import RowSummary, TaskOutcome
from perfrepro.metrics.uncertainty import PairedComparison, paired_comparison
from perfrepro.records import Measurement

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
CI_SUFFIX = " 95% CI"


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


# `llm.backend: recorded` replays LeetCodeDataset's `response` field: that is where its code came from
RECORDED_SOURCE = "leetcodedataset-response"
REFERENCE_SUFFIX = " (reference)"


def code_source(model: str, llm_backend: str = "openai", samples_source: str | None = None) -> str:
    """Where a row's code came from: `llm.model` for a live model, RECORDED_SOURCE for recorded,
    ``<model> (<samples.backend.source>)`` for a samples file."""
    if llm_backend == "samples":
        return f"{model} ({samples_source or 'samples file'})"
    return RECORDED_SOURCE if llm_backend == "recorded" else model


def samples_source(params: Mapping[str, Any]) -> str | None:
    """``samples.backend.source`` of a params mapping (where llm.backend: samples' code came from)."""
    source = _get(params, "samples.backend.source")
    return str(source) if source is not None else None


def experiment_name(shots: int, model: str, llm_backend: str = "openai", source: str | None = None) -> str:
    """The study's row name: `rag3_and_<source>` with retrieved examples, `<source>` without
    (`source` from `code_source`: `leetcodedataset-response` for the recorded backend)."""
    source = code_source(model, llm_backend, source)
    return f"rag{shots}_and_{source}" if shots > 0 else source


def reference_name() -> str:
    """The label of the reference row that `measure` adds: LeetCodeDataset's recorded responses."""
    return RECORDED_SOURCE + REFERENCE_SUFFIX


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


def format_interval(low: Any, high: Any, digits: int = 2) -> str:
    """`[low, high]`, or "-" when there is no interval (no task in the ratios)."""
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return "-"
    return f"[{format_value(low, digits)}, {format_value(high, digits)}]"


def format_cell(get, name: Any, digits: int = 2) -> str:
    """One cell: a field's value, or for a (low, high) pair of fields the interval."""
    if isinstance(name, tuple):
        return format_interval(get(name[0]), get(name[1]), digits)
    return format_value(get(name), digits)


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


# ---- optimization track (PIE) ----

OPTIMIZATION_ROW_NAMES = {
    "generated": "generated",
    "reference": "human reference (ENAMEL, ceiling)",
    "slow": "slow (HumanEval canonical)",
    # report_pie's per-model rows (their labels carry the model: "finetuned (<model>)")
    "base_plain": "base model, plain prompt",
    "base_conditioned": "base model, conditioned prompt (10/10)",
    "finetuned": "fine-tuned model",
}


def pie_generated_source(model: str, llm_backend: str = "openai", samples_source: str | None = None) -> str:
    """Who wrote a PIE row's generated programs: the live model, a samples file's model, or nobody
    for `recorded` (LeetCodeDataset's responses answer the efficiency tasks only; optimize records failures)."""
    if llm_backend == "recorded":
        return "none: llm.backend recorded has no PIE responses"
    return code_source(model, llm_backend, samples_source)


def optimization_row_name(row: RowSummary, model: str) -> str:
    """A PIE row's name in the tables: the role's name, with `model` for the generated rows (a
    samples row's label already says the model and where its code came from)."""
    role, _, rest = row.label.partition(" ")
    return OPTIMIZATION_ROW_NAMES.get(role, role) + (f" ({model})" if role == "generated" else "") + (f" {rest}" if rest else "")


def optimization_table(rows: Sequence[RowSummary], model: str) -> str:
    """Speedup (with its 95% bootstrap interval over tasks), %Opt, %Correct and eff@k per row
    (markdown, pipe format). `model` names who wrote the generated programs (`pie_generated_source`)."""
    body = []
    for row in rows:
        name = optimization_row_name(row, model)
        interval = format_interval(row.speedup_lo, row.speedup_hi) if row.label != "slow" else "-"
        body.append([name, row.tasks, f"{row.speedup:.2f}", interval, f"{row.pct_opt:.1f}", f"{row.pct_correct:.1f}",
                     f"{row.eff:.3f}", row.k])
    return tabulate(body, headers=["program", "tasks", "Speedup", "Speedup" + CI_SUFFIX, "%Opt", "%Correct", "eff@k", "k"],
                    tablefmt="pipe", disable_numparse=True)


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


OPTIMIZATION_PAIRED_HEADERS = ("A", "B", "tasks both have", "median speedup ratio B/A", "95% CI", "Wilcoxon p",
                               "ratio 1", "p-value")
OPTIMIZATION_PAIRED_NOTE = (
    "Paired comparison of per-task speedup on the tasks both rows have (a samples row's per-task speedup is the "
    "mean over its samples): the median over those tasks of speedup_B / speedup_A (above 1: B's programs are "
    "faster) with its 95% bootstrap interval, and the two-sided Wilcoxon signed-rank p-value of its log. Tasks at "
    "ratio 1 (both rows at the same speedup, e.g. 1.0) are left out of the test and counted under `ratio 1`.")


def per_task_speedups(rows: Sequence[RowSummary], model: str) -> dict[str, Any]:
    """The per-task file of a PIE report (metrics/optimization_tasks.json): every @1 row but the
    slow program's, named as in the table, with its per-task speedups (what `perfrepro table` pairs)."""
    return {"rows": [{"key": row.key or row.label.split()[0], "name": optimization_row_name(row, model),
                      "speedups": dict(row.per_task)}
                     for row in rows if row.k == 1 and row.label != "slow" and row.per_task]}


def optimization_markdown(rows: Sequence[RowSummary], model: str, heading: str, outcomes: Sequence[TaskOutcome],
                          excluded: Sequence[str], compared: Sequence[RowSummary] = ()) -> str:
    """report_pie's markdown: the table, the tasks left out, the paired comparison of the
    `compared` rows (each pair that shares a task) and the per-task table of the main run."""
    lines = ["# Optimization track (PIE-style, ENAMEL tasks)", "", heading, "", optimization_table(rows, model), ""]
    if excluded:
        lines += [f"Left out (the slow program passed no timed level): {', '.join(excluded)}.", ""]
    entries = [(optimization_row_name(row, model), "", dict(row.per_task)) for row in compared]
    pairs = [(a, b, done) for a, b, done in paired_rows(entries) if done.n]
    if pairs:
        lines += ["## Paired comparison of the samples rows", "", OPTIMIZATION_PAIRED_NOTE, "",
                  paired_table(pairs, headers=OPTIMIZATION_PAIRED_HEADERS), ""]
    return "\n".join(lines + ["## Per task", "", optimization_task_table(outcomes), ""])


# ---- pie.protocol enamel (perfrepro.metrics.enamel) ----
ENAMEL_ROW_NAMES = {"slow": "HumanEval canonical (the slow program)", "humaneval-canonical": "HumanEval canonical",
                    "humanevalplus-canonical": "HumanEval+ canonical"}


def enamel_row_name(role: str, model: str) -> str:
    """A row's label: the model for generated programs, the sample set's name otherwise."""
    return f"generated ({model})" if role == "generated" else ENAMEL_ROW_NAMES.get(role, role)


def enamel_table(rows: Sequence[EnamelRow], model: str) -> str:
    """eff@k (eff@1 with its 95% bootstrap interval over tasks) and pass@k per row (markdown)."""
    body = [[row.label or enamel_row_name(row.role, model), row.tasks, row.k, f"{row.eff:.3f}",
             format_interval(row.eff_lo, row.eff_hi, 3), f"{row.pass_rate:.3f}"]
            for row in rows]
    return tabulate(body, headers=["program", "tasks", "k", "eff@k", "eff@1" + CI_SUFFIX, "pass@k"],
                    tablefmt="pipe", disable_numparse=True)


def enamel_outcome(score: EnamelTaskScore, sample: int = 0) -> str:
    """``ok``, or the first level that did not pass and why (``timeout@L3``, ``wrong_answer@L0``)."""
    statuses = score.statuses[sample] if sample < len(score.statuses) else {}
    bad = next((f"{status}@L{level}" for level, status in sorted(statuses.items()) if status != "ok"), None)
    return bad or "ok"


def enamel_task_table(scores: Mapping[str, Sequence[EnamelTaskScore]], model: str) -> str:
    """Per task: the reference's level times and T (ms), then per role its eff (sample 0) and outcome."""
    roles = list(scores)
    by_task: dict[str, dict[str, EnamelTaskScore]] = {}
    for role in roles:
        for score in scores[role]:
            by_task.setdefault(score.task_id, {})[role] = score
    levels = sorted({level for task in by_task.values() for s in task.values() for level in s.reference_ms if level > 0})
    body = []
    for task_id, row in by_task.items():
        first = next(iter(row.values()))
        cells = [task_id, *(format_value(first.reference_ms.get(level), 3) for level in levels),
                 format_value(first.timeout_ms, 3)]
        for role in roles:
            score = row.get(role)
            cells += ["-", "-"] if score is None else [f"{score.effs[0]:.3f}" if score.effs else "-", enamel_outcome(score)]
        body.append(cells)
    headers = ["task", *(f"ref L{level} (ms)" for level in levels), "T (ms)"]
    for role in roles:
        name = enamel_row_name(role, model)
        headers += [f"{name} eff", f"{name} outcome"]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True)


def enamel_report(measurements: Sequence[Measurement], model_runs: Sequence[tuple[str, str, Sequence[Measurement]]],
                  weights: Sequence[float], alpha: float, samples: int, model: str, header: str) -> tuple[dict, str]:
    """The ENAMEL protocol's metrics (perfrepro.metrics.enamel.enamel_metrics) and markdown page:
    the main run's rows (generated, the slow program, the sample sets), then each model run's
    generated rows (`model_runs`: (role, model, measurements)), then the per-task table."""
    scores = enamel_scores(measurements, weights, alpha)
    ks = (1, samples) if samples > 1 else (1,)
    order = ["generated", *sorted(r for r in scores if r not in ("generated", "slow")), "slow"]
    rows = enamel_rows({role: scores[role] for role in order if role in scores}, ks)
    extra = []
    for role, run_model, run in model_runs:
        generated = enamel_scores(run, weights, alpha).get("generated", [])
        extra += [dataclasses.replace(row, role=role, label=f"{role} ({run_model})")
                  for row in enamel_rows({"generated": generated}, ks)]
    rows = rows[:1] + extra + rows[1:] if rows and rows[0].role == "generated" else extra + rows
    tasks = len(next(iter(scores.values()), []))
    text = "\n".join([
        "# Optimization track (ENAMEL protocol)", "", header,
        f"{tasks} tasks; eff@1 is ENAMEL's (README, \"Agreement with published results\"); a wrong answer scores 0.", "",
        enamel_table(rows, model), "", "## Per task", "", enamel_task_table(scores, model), "",
    ])
    return enamel_metrics(rows), text


# ---- the study's tables across experiments (`perfrepro table`) ----
# Pure functions over parsed `dvc exp show --json` (or the workspace's params and metrics files).

RETRIEVAL_BASE_KEY = "base_all-MiniLM-L6-v2"
RETRIEVAL_BASE_NAME = "base all-MiniLM-L6-v2"
RETRIEVAL_HEADERS = ("Model Type", "k", "Average Hit Rate @k", "Mean Reciprocal Rank @k",
                     "Mean Average Precision @k", "Average NDCG @k")
OPTIMIZATION_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("tasks", "tasks"), ("Speedup", "speedup"), ("Speedup" + CI_SUFFIX, ("speedup_lo", "speedup_hi")),
    ("%Opt", "pct_opt"), ("%Correct", "pct_correct"), ("eff@1", "eff_at_1"),
)
TABLE_FORMATS = {"md": "github", "console": "simple"}


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment (or the workspace / a commit): its name, params.yaml and metrics files."""

    name: str
    rev: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]  # metrics file path -> parsed content
    per_task: Mapping[str, Any] = field(default_factory=dict)  # per-task file path -> parsed content


def _rev_result(entry: Mapping[str, Any], fallback_name: str) -> ExperimentResult | None:
    data = entry.get("data") or {}
    if entry.get("error") or data.get("status") in ("Queued", "Running", "Failed"):
        return None
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = {path: (content or {}).get("data") for path, content in (data.get("metrics") or {}).items()}
    metrics = {path: value for path, value in metrics.items() if isinstance(value, Mapping)}
    if not metrics:
        return None
    rev = str(entry.get("rev") or data.get("rev") or "")
    return ExperimentResult(str(entry.get("name") or fallback_name or rev[:7]), rev, params, metrics)


def experiments_from_exp_show(payload: Sequence[Mapping[str, Any]]) -> list[ExperimentResult]:
    """Every entry of `dvc exp show --json` that has metrics: the workspace, each commit and each
    experiment under it, in that order. Queued, running and failed experiments are left out."""
    results: list[ExperimentResult] = []
    for commit in payload:
        found = _rev_result(commit, str(commit.get("rev") or ""))
        if found:
            results.append(found)
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                found = _rev_result(rev, str(exp.get("name") or ""))
                if found:
                    results.append(found)
    return results


def _get(mapping: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    value: Any = mapping
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def _dedupe_with(rows: Sequence[tuple[str, Any, Mapping[str, Any], str, Any]]) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(name, sort key, values, experiment, payload) -> unique (name, values, payload), sorted. Rows
    merge only when name (which says where the code came from) and values are equal; a name shared
    by different values gets the names of the experiments that gave each value appended."""
    unique: list[tuple[str, Any, Mapping[str, Any], str, Any]] = []
    experiments: list[list[str]] = []
    for row in rows:
        same = next((i for i, u in enumerate(unique) if row[0] == u[0] and row[2] == u[2]), None)
        if same is None:
            unique.append(row)
            experiments.append([row[3]])
        elif row[3] not in experiments[same]:
            experiments[same].append(row[3])
    counts = {u[0]: sum(v[0] == u[0] for v in unique) for u in unique}
    order = sorted(range(len(unique)), key=lambda i: unique[i][1])
    return [(f"{unique[i][0]} [{', '.join(experiments[i])}]" if counts[unique[i][0]] > 1 else unique[i][0],
             unique[i][2], unique[i][4]) for i in order]


def _dedupe(rows: Sequence[tuple[str, Any, Mapping[str, Any], str]]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(name, values) for name, values, _ in _dedupe_with([(*row, None) for row in rows])]


def _efficiency_entries(results: Sequence[ExperimentResult], metrics_path: str) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(row name, flat metrics, (timing backend, result)) per distinct experiment, sorted."""
    rows = []
    for result in results:
        flat = _get(result.metrics.get(metrics_path) or {}, "efficiency")
        if not isinstance(flat, Mapping):
            continue
        shots = int(_get(result.params, "shots", 0) or 0)
        model = str(_get(result.params, "llm.model", "?"))
        backend = str(_get(result.params, "llm.backend", "openai"))
        name = experiment_name(shots, model, backend, samples_source(result.params))
        timing = str(_get(result.params, "timing.backend", "wall"))
        if timing != "wall":
            name += f" [timing: {timing}]"
        rows.append((name, (model, backend == "recorded", timing != "wall", timing, shots), flat, result.name,
                     (timing, result)))
    return _dedupe_with(rows)


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


# ---- paired comparison of two experiments (per-task NET on the tasks both passed) ----

NET_RATIOS_PATH = "metrics/net_ratios.json"  # the report stage's per-task ratios (a git-tracked plot file)
OPTIMIZATION_TASKS_PATH = "metrics/optimization_tasks.json"  # report_pie's per-task speedups of each row
PAIRED_HEADERS = ("A", "B", "tasks both passed", "median NET ratio B/A", "95% CI", "Wilcoxon p", "ratio 1", "p-value")


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


def efficiency_paired_rows(results: Sequence[ExperimentResult], metrics_path: str = "metrics/efficiency.json"
                           ) -> list[tuple[str, str, PairedComparison]]:
    """(A, B, comparison of B against A) for every pair of distinct experiments (in table order)
    measured with the same timing backend that both have per-task NET."""
    entries = [(name, timing, per) for name, _, (timing, result) in _efficiency_entries(results, metrics_path)
               if (per := per_task_net(result)) is not None]
    return paired_rows(entries)


def format_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def paired_table(rows: Sequence[tuple[str, str, PairedComparison]], fmt: str = "github",
                 headers: Sequence[str] = PAIRED_HEADERS) -> str:
    """One line per pair: tasks, median ratio B/A with its 95% bootstrap interval, the Wilcoxon
    p-value, the tasks at ratio 1 (left out of the test) and how p was computed."""
    ratio = lambda value: "-" if math.isnan(value) else f"{value:.3f}"  # noqa: E731
    body = [[a, b, c.n, ratio(c.median_ratio), format_interval(c.median_lo, c.median_hi, 3), format_p(c.wilcoxon_p),
             c.zeros, "; ".join(part for part in (c.method, c.note) if part) or "-"] for a, b, c in rows]
    return tabulate(body, headers=list(headers), tablefmt=fmt, disable_numparse=True)


PAIRED_NOTE = ("Paired comparison of per-task NET on the tasks both experiments passed: the median over those "
               "tasks of NET_B / NET_A (below 1: B is faster) with its 95% bootstrap interval, and the two-sided "
               "Wilcoxon signed-rank p-value of log(NET_B / NET_A); tasks at ratio 1 are left out of the test.")


def retrieval_display_names(params: Mapping[str, Any], keys: Sequence[str]) -> list[tuple[str, str]]:
    """(metrics key, display name) in eval_retrieval's order: the base model, the adapters of
    `retrieval.protocol` in params order, those of the other protocol, then unknown keys."""
    from perfrepro.retrieval.evaluation import metric_key

    variants = list(_get(params, "adapters", {}) or {})
    heldout = [(metric_key(v), v) for v in variants]
    study = [(metric_key(f"{v} [study protocol]"), f"{v} [study protocol]") for v in variants]
    groups = study + heldout if _get(params, "retrieval.protocol") == "study" else heldout + study
    ordered = [(RETRIEVAL_BASE_KEY, RETRIEVAL_BASE_NAME), *groups]
    present = set(keys)
    out = [(key, name) for key, name in ordered if key in present]
    known = {key for key, _ in out}
    return out + [(key, key) for key in keys if key not in known]


def retrieval_ks(models: Mapping[str, Mapping[str, float]]) -> list[int]:
    return sorted({int(name.split("@", 1)[1]) for row in models.values() for name in row
                   if name.startswith("hit@") and name.split("@", 1)[1].isdigit()})


def retrieval_rows(params: Mapping[str, Any], models: Mapping[str, Mapping[str, float]],
                   digits: int = 4) -> list[list[Any]]:
    """The study's layout, grouped by k: [model, k, Hit@k, MRR@k, MAP@k, NDCG@k] per model and k."""
    names = retrieval_display_names(params, list(models))
    rows = []
    for k in retrieval_ks(models):
        for key, name in names:
            values = [models[key].get(f"{m}@{k}") for m in ("hit", "mrr", "map", "ndcg")]
            rows.append([name, k, *(format_value(v, digits) for v in values)])
    return rows


def retrieval_experiment_tables(results: Sequence[ExperimentResult], fmt: str = "github",
                                metrics_path: str = "metrics/retrieval.json") -> str:
    """One retrieval table per distinct retrieval result (usually one: `shots` or `llm.*`
    experiments do not change retrieval), headed by the experiments that share it."""
    groups: list[tuple[list[str], ExperimentResult, Mapping[str, Any]]] = []
    for result in results:
        models = _get(result.metrics.get(metrics_path) or {}, "retrieval")
        if not isinstance(models, Mapping) or not models:
            continue
        for names, _, seen in groups:
            if seen == models:
                names.append(result.name)
                break
        else:
            groups.append(([result.name], result, models))
    parts = []
    for names, result, models in groups:
        table = tabulate(retrieval_rows(result.params, models), headers=list(RETRIEVAL_HEADERS), tablefmt=fmt,
                         disable_numparse=True)
        parts.append(table if len(groups) == 1 else f"Experiments: {', '.join(names)}\n\n{table}")
    return "\n\n".join(parts)


def optimization_experiment_rows(results: Sequence[ExperimentResult],
                                 metrics_path: str = "metrics/optimization.json") -> list[tuple[str, Mapping[str, Any]]]:
    """(row name, values) for the PIE track: `generated (<model>, <n>-shot <style>)` per distinct
    experiment, then the human-reference ceiling and the slow programs; wall-clock rows first, then
    each other timing backend's rows (noted in the name)."""
    order = {"generated": 0, "reference": 1, "slow": 2}
    rows = []
    for result in results:
        flat = result.metrics.get(metrics_path)
        if not isinstance(flat, Mapping):
            continue
        model = str(_get(result.params, "llm.model", "?"))
        shots, style = _get(result.params, "pie.shots", "?"), _get(result.params, "pie.prompt_style", "?")
        timing = str(_get(result.params, "timing.backend", "wall"))
        fields = [f for _, spec in OPTIMIZATION_COLUMNS for f in (spec if isinstance(spec, tuple) else (spec,))]
        for role, rank in order.items():
            values = {f: flat.get(f"optimization.{role}.{f}") for f in fields}
            if all(v is None for v in values.values()):
                continue
            backend = str(_get(result.params, "llm.backend", "openai"))
            source = pie_generated_source(model, backend, samples_source(result.params))
            prompt = "" if backend == "samples" else f", {shots}-shot {style}"  # samples were not asked by our prompts
            name = f"generated ({source}{prompt})" if role == "generated" else OPTIMIZATION_ROW_NAMES[role]
            if timing != "wall":
                name += f" [timing: {timing}]"
            rows.append((name, (timing != "wall", timing, rank, model, str(shots), str(style)), values, result.name))
        for sampled, entry in (_get(result.params, "samples.models", {}) or {}).items():  # the samples rows (@1)
            values = {f: flat.get(f"optimization.samples.{sampled}.{f}") for f in fields}
            if all(v is None for v in values.values()):
                continue
            name = code_source(str(sampled), "samples", (entry or {}).get("source"))
            name += f" [timing: {timing}]" if timing != "wall" else ""
            rows.append((name, (timing != "wall", timing, 0.5, str(sampled), "", ""), values, result.name))
    return _dedupe(rows)


def optimization_paired_rows(results: Sequence[ExperimentResult], path: str = OPTIMIZATION_TASKS_PATH
                             ) -> list[tuple[str, str, PairedComparison]]:
    """Pairs of PIE rows (within an experiment or across experiments, same timing backend) from each
    experiment's per-task speedups, leaving out pairs equal on every task they share."""
    found = []
    for result in results:
        content = result.per_task.get(path)
        timing = str(_get(result.params, "timing.backend", "wall"))
        for order, row in enumerate(content.get("rows", []) if isinstance(content, Mapping) else []):
            speedups = row.get("speedups") if isinstance(row, Mapping) else None
            if isinstance(speedups, Mapping) and speedups:
                name = str(row.get("name") or row.get("key")) + (f" [timing: {timing}]" if timing != "wall" else "")
                found.append((name, (timing, order), dict(speedups), result.name, timing))
    entries = [(name, timing, speedups) for name, speedups, timing in _dedupe_with(found)]
    return paired_rows(entries, differing_only=True)


def optimization_table_from_dicts(rows: Sequence[tuple[str, Mapping[str, Any]]], fmt: str = "github") -> str:
    headers = ["program", *(header for header, _ in OPTIMIZATION_COLUMNS)]
    body = [[name, *(format_cell(values.get, field, 3 if field == "eff_at_1" else 2)
                     for _, field in OPTIMIZATION_COLUMNS)] for name, values in rows]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def study_tables(results: Sequence[ExperimentResult], track: str = "all", fmt: str = "github") -> str:
    """The requested track's table(s) with markdown headings; a track without results says so."""
    sections = []
    if track in ("efficiency", "all"):
        rows = efficiency_experiment_rows(results)
        body = efficiency_table_from_dicts(rows, fmt) if rows else None
        paired = efficiency_paired_rows(results)
        if body and paired:
            body += f"\n\n{PAIRED_NOTE}\n\n{paired_table(paired, fmt)}"
        sections.append(("Efficiency", body))
    if track in ("retrieval", "all"):
        sections.append(("Retrieval", retrieval_experiment_tables(results, fmt) or None))
    if track in ("optimization", "all"):
        rows = optimization_experiment_rows(results)
        body = optimization_table_from_dicts(rows, fmt) if rows else None
        paired = optimization_paired_rows(results)
        if body and paired:
            body += f"\n\n{OPTIMIZATION_PAIRED_NOTE}\n\n{paired_table(paired, fmt, OPTIMIZATION_PAIRED_HEADERS)}"
        sections.append(("Optimization (PIE)", body))
    return "\n\n".join(f"## {title}\n\n{body if body else '(no results)'}" for title, body in sections) + "\n"
