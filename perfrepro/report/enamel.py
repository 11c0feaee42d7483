"""pie.protocol enamel (perfrepro.metrics.enamel): eff@k and pass@k per row, the per-task table, and
the report_pie page under that protocol."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from tabulate import tabulate

from perfrepro.config import EnamelConfig
from perfrepro.metrics.enamel import EnamelRow, EnamelTaskScore, enamel_metrics, enamel_rows, enamel_scores
from perfrepro.records import Measurement
from perfrepro.report.formatting import CI_SUFFIX, format_interval, format_value
from perfrepro.report.optimization import PieReport


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


def enamel_pie_report(measurements: Sequence[Measurement], model_runs: Sequence[tuple[str, str, Sequence[Measurement]]],
                      enamel: EnamelConfig, samples: int, model: str, llm_backend: str) -> PieReport:
    """report_pie's files under `pie.protocol: enamel` (`enamel_report` with `pie.enamel`'s level
    weights and timeout factor); no per-task file."""
    header = f"Model `{model}` (llm.backend {llm_backend}); samples {samples}."
    metrics, text = enamel_report(measurements, model_runs, enamel.level_weights, enamel.timeout_factor, samples,
                                  model, header)
    return PieReport(metrics, text, None, text.split("## Per task")[0], None)
