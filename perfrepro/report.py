"""Markdown / console tables in the study's style (tabulate). A module of small functions.

Efficiency: one row per experiment, columns in the study's order
`Model | ET | NET | Max_NET | NET>5 | MU | NMU | Max_NMU | NMU>5 | TMU | NTMU | Max_TMU | TMU>5 | pass1`.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# ---- the study's tables across experiments (`perfrepro table`) ----
# Pure functions over parsed `dvc exp show --json` (or the workspace's params and metrics files).

RETRIEVAL_BASE_KEY = "base_all-MiniLM-L6-v2"
RETRIEVAL_BASE_NAME = "base all-MiniLM-L6-v2"
RETRIEVAL_HEADERS = ("Model Type", "k", "Average Hit Rate @k", "Mean Reciprocal Rank @k",
                     "Mean Average Precision @k", "Average NDCG @k")
OPTIMIZATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tasks", "tasks"), ("Speedup", "speedup"), ("%Opt", "pct_opt"), ("%Correct", "pct_correct"),
    ("eff@1", "eff_at_1"),
)
TABLE_FORMATS = {"md": "github", "console": "simple"}


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment (or the workspace / a commit): its name, params.yaml and metrics files."""

    name: str
    rev: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]  # metrics file path -> parsed content


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


def _dedupe(rows: Sequence[tuple[str, Any, Mapping[str, Any], str]]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, sort key, values, experiment) -> unique (name, values), sorted; a name shared by
    different values gets its experiment's name appended."""
    unique: list[tuple[str, Any, Mapping[str, Any], str]] = []
    for row in rows:
        if not any(row[0] == u[0] and row[2] == u[2] for u in unique):
            unique.append(row)
    counts = {name: sum(u[0] == name for u in unique) for name, *_ in unique}
    unique.sort(key=lambda u: u[1])
    return [(f"{name} [{exp}]" if counts[name] > 1 else name, values) for name, _, values, exp in unique]


def efficiency_experiment_rows(results: Sequence[ExperimentResult],
                               metrics_path: str = "metrics/efficiency.json") -> list[tuple[str, Mapping[str, Any]]]:
    """(row name, flat efficiency metrics) per distinct experiment, named like the study
    (`rag3_and_<model>`), sorted by model then shots; a timing backend other than wall is noted."""
    rows = []
    for result in results:
        flat = _get(result.metrics.get(metrics_path) or {}, "efficiency")
        if not isinstance(flat, Mapping):
            continue
        shots = int(_get(result.params, "shots", 0) or 0)
        model = str(_get(result.params, "llm.model", "?"))
        backend = str(_get(result.params, "llm.backend", "openai"))
        name = experiment_name(shots, model, backend)
        timing = str(_get(result.params, "timing.backend", "wall"))
        if timing != "wall":
            name += f" [timing: {timing}]"
        rows.append((name, (model, backend == "recorded", timing != "wall", timing, shots), flat, result.name))
    return _dedupe(rows)


def efficiency_table_from_dicts(rows: Sequence[tuple[str, Mapping[str, Any]]], fmt: str = "github") -> str:
    """The study's efficiency table (`Model` and its 13 columns) from flat metrics dicts."""
    headers = ["Model", *(header for header, _ in EFFICIENCY_COLUMNS)]
    body = [[name, *(format_value(values.get(field)) for _, field in EFFICIENCY_COLUMNS)] for name, values in rows]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


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
        for role, rank in order.items():
            values = {field: flat.get(f"optimization.{role}.{field}") for _, field in OPTIMIZATION_COLUMNS}
            if all(v is None for v in values.values()):
                continue
            name = f"generated ({model}, {shots}-shot {style})" if role == "generated" else OPTIMIZATION_ROW_NAMES[role]
            if timing != "wall":
                name += f" [timing: {timing}]"
            rows.append((name, (timing != "wall", timing, rank, model, str(shots), str(style)), values, result.name))
    return _dedupe(rows)


def optimization_table_from_dicts(rows: Sequence[tuple[str, Mapping[str, Any]]], fmt: str = "github") -> str:
    headers = ["program", *(header for header, _ in OPTIMIZATION_COLUMNS)]
    body = [[name, *(format_value(values.get(field), 3 if field == "eff_at_1" else 2)
                     for _, field in OPTIMIZATION_COLUMNS)] for name, values in rows]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def study_tables(results: Sequence[ExperimentResult], track: str = "all", fmt: str = "github") -> str:
    """The requested track's table(s) with markdown headings; a track without results says so."""
    sections = []
    if track in ("efficiency", "all"):
        rows = efficiency_experiment_rows(results)
        sections.append(("Efficiency", efficiency_table_from_dicts(rows, fmt) if rows else None))
    if track in ("retrieval", "all"):
        sections.append(("Retrieval", retrieval_experiment_tables(results, fmt) or None))
    if track in ("optimization", "all"):
        rows = optimization_experiment_rows(results)
        sections.append(("Optimization (PIE)", optimization_table_from_dicts(rows, fmt) if rows else None))
    return "\n\n".join(f"## {title}\n\n{body if body else '(no results)'}" for title, body in sections) + "\n"
