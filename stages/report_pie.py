"""Stage `report_pie`: PIE-track timings -> metrics/optimization.json, optimization.md and
optimization_tasks.json (params: pie.samples, llm.backend, llm.model, timing.backend, samples).

Speedup (mean over tasks of max(1, t_slow / t_generated); incorrect or missing: 1.0), %Opt, %Correct
and ENAMEL's eff@1 of the generated programs (Best@k when pie.samples > 1), the ENAMEL reference and
the slow program; one row per model besides, each against the slow program of its own run: the runs
under `--rows` (base model, plain and conditioned prompt; fine-tuned model) and each model of
`samples.models` under `--samples-rows` (@1 the mean over its samples.samples_per_task samples;
Best@k, eff@k for k = samples.k), with their paired comparison. optimization_tasks.json: each row's
per-task speedups (`perfrepro table` pairs rows across experiments with them). Under `pie.protocol:
enamel` (params pie.protocol, pie.enamel): ENAMEL's eff@k and pass@k instead, and no per-task file.
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.generation.samples import configured_source
from perfrepro.io import atomic_outputs, write_json, write_text
from perfrepro.metrics.optimization import read_model_runs, run_rows, samples_run_rows
from perfrepro.records import Measurement, read_jsonl
from perfrepro.report.enamel import enamel_pie_report
from perfrepro.report.optimization import MODEL_ROLES, pie_report
from perfrepro.stage import stage, with_run_info

log = logging.getLogger("report_pie")


# rows: <rows>/<role>/ and <samples-rows>/<model>/, each completions.jsonl and timings/ (missing: no such row)
@stage("report_pie", "timings", "rows", "samples-rows", "metrics", "table", "per-task")
def main(args) -> int:
    params = load_params(args.params)
    measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
    extra = run_rows(args.rows, MODEL_ROLES, params.pie.samples)
    sampled = (samples_run_rows(args.samples_rows, params.samples.models, params.samples.samples_per_task,
                                params.samples.k) if params.samples else [])
    llm, pie = params.llm, params.pie
    if pie.protocol == "enamel":  # ENAMEL's eff@k and pass@k (perfrepro.metrics.enamel)
        runs = read_model_runs(args.rows, MODEL_ROLES) + (
            read_model_runs(args.samples_rows, params.samples.models) if params.samples else [])
        report = enamel_pie_report(measurements, runs, pie.enamel, pie.samples, llm.model, llm.backend)
    else:
        report = pie_report(measurements, pie.samples, llm.model, llm.backend, configured_source(params.samples),
                            params.timing.backend, extra, sampled)
    with atomic_outputs(args.metrics, args.table, args.per_task) as (metrics_out, table_out, per_task_out):
        write_json(metrics_out, with_run_info(report.metrics))
        write_text(table_out, report.markdown)
        if report.per_task is not None:  # an output not written is left as it was
            write_json(per_task_out, report.per_task)
    if report.tasks is not None:  # ENAMEL's page says its task count itself
        log.info("%s, %s: %d tasks", args.metrics, args.table, report.tasks)
    print(report.table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
