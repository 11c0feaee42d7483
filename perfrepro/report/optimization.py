"""The optimization track's tables (PIE): Speedup with its interval, %Opt, %Correct and eff@k per
row, the per-task table, report_pie's page and per-task file, and the PIE rows across experiments
(`perfrepro table`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from tabulate import tabulate

from perfrepro.metrics.optimization import RowSummary, TaskOutcome, optimization_metrics, summarize, task_outcomes
from perfrepro.metrics.uncertainty import PairedComparison
from perfrepro.records import Measurement
from perfrepro.report.experiments import ExperimentResult, dedupe, dedupe_with
from perfrepro.report.formatting import CI_SUFFIX, code_source, dotted_get, format_cell, format_interval, samples_source
from perfrepro.report.paired import OPTIMIZATION_TASKS_PATH, paired_rows, paired_table


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


OPTIMIZATION_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("tasks", "tasks"), ("Speedup", "speedup"), ("Speedup" + CI_SUFFIX, ("speedup_lo", "speedup_hi")),
    ("%Opt", "pct_opt"), ("%Correct", "pct_correct"), ("eff@1", "eff_at_1"),
)


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
        model = str(dotted_get(result.params, "llm.model", "?"))
        shots, style = dotted_get(result.params, "pie.shots", "?"), dotted_get(result.params, "pie.prompt_style", "?")
        timing = str(dotted_get(result.params, "timing.backend", "wall"))
        fields = [f for _, spec in OPTIMIZATION_COLUMNS for f in (spec if isinstance(spec, tuple) else (spec,))]
        for role, rank in order.items():
            values = {f: flat.get(f"optimization.{role}.{f}") for f in fields}
            if all(v is None for v in values.values()):
                continue
            backend = str(dotted_get(result.params, "llm.backend", "openai"))
            source = pie_generated_source(model, backend, samples_source(result.params))
            prompt = "" if backend == "samples" else f", {shots}-shot {style}"  # samples were not asked by our prompts
            name = f"generated ({source}{prompt})" if role == "generated" else OPTIMIZATION_ROW_NAMES[role]
            if timing != "wall":
                name += f" [timing: {timing}]"
            rows.append((name, (timing != "wall", timing, rank, model, str(shots), str(style)), values, result.name))
        for sampled, entry in (dotted_get(result.params, "samples.models", {}) or {}).items():  # the samples rows (@1)
            values = {f: flat.get(f"optimization.samples.{sampled}.{f}") for f in fields}
            if all(v is None for v in values.values()):
                continue
            name = code_source(str(sampled), "samples", (entry or {}).get("source"))
            name += f" [timing: {timing}]" if timing != "wall" else ""
            rows.append((name, (timing != "wall", timing, 0.5, str(sampled), "", ""), values, result.name))
    return dedupe(rows)


def optimization_paired_rows(results: Sequence[ExperimentResult], path: str = OPTIMIZATION_TASKS_PATH
                             ) -> list[tuple[str, str, PairedComparison]]:
    """Pairs of PIE rows (within an experiment or across experiments, same timing backend) from each
    experiment's per-task speedups, leaving out pairs equal on every task they share."""
    found = []
    for result in results:
        content = result.per_task.get(path)
        timing = str(dotted_get(result.params, "timing.backend", "wall"))
        for order, row in enumerate(content.get("rows", []) if isinstance(content, Mapping) else []):
            speedups = row.get("speedups") if isinstance(row, Mapping) else None
            if isinstance(speedups, Mapping) and speedups:
                name = str(row.get("name") or row.get("key")) + (f" [timing: {timing}]" if timing != "wall" else "")
                found.append((name, (timing, order), dict(speedups), result.name, timing))
    entries = [(name, timing, speedups) for name, speedups, timing in dedupe_with(found)]
    return paired_rows(entries, differing_only=True)


def optimization_table_from_dicts(rows: Sequence[tuple[str, Mapping[str, Any]]], fmt: str = "github") -> str:
    headers = ["program", *(header for header, _ in OPTIMIZATION_COLUMNS)]
    body = [[name, *(format_cell(values.get, field, 3 if field == "eff_at_1" else 2)
                     for _, field in OPTIMIZATION_COLUMNS)] for name, values in rows]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


# report_pie's files: optimization.json, optimization.md, optimization_tasks.json

MODEL_ROLES = ("base_plain", "base_conditioned", "finetuned")  # report_pie's per-model runs, in table order


@dataclass(frozen=True)
class PieReport:
    """What report_pie writes: `metrics` is optimization.json without its run_info, `markdown`
    optimization.md, `per_task` optimization_tasks.json (None under `pie.protocol: enamel`, which
    writes none); `table` is what it prints, `tasks` the tasks it reports on (None under enamel)."""

    metrics: dict[str, Any]
    markdown: str
    per_task: dict[str, Any] | None
    table: str
    tasks: int | None


def pie_report(measurements: Sequence[Measurement], samples: int, llm_model: str, llm_backend: str,
               source: str | None, timing_backend: str, extra_rows: Sequence[RowSummary] = (),
               sampled_rows: Sequence[RowSummary] = ()) -> PieReport:
    """The PIE page of one run (`samples` programs per task, written by `pie_generated_source`'s model):
    its rows, then `extra_rows` (the per-model runs) and `sampled_rows` (the samples files' rows)
    above the reference and the slow program; the @1 samples rows compared in pairs."""
    model = pie_generated_source(llm_model, llm_backend, source)
    outcomes, excluded = task_outcomes(measurements, samples)
    rows = summarize(outcomes, samples)
    rows = rows[:-2] + list(extra_rows) + list(sampled_rows) + rows[-2:]  # the other rows above reference and slow
    heading = (f"Model `{model}` (llm.backend {llm_backend}); timing backend `{timing_backend}`; "
               f"{len(outcomes)} tasks, samples {samples}.")
    markdown = optimization_markdown(rows, model, heading, outcomes, excluded, [r for r in sampled_rows if r.k == 1])
    return PieReport(optimization_metrics(rows, len(excluded)), markdown, per_task_speedups(rows, model),
                     optimization_table(rows, model), len(outcomes))
