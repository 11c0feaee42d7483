"""Stage `report_pie`: PIE-track timings -> metrics/optimization.json and metrics/optimization.md
(params: pie.samples, llm.backend, llm.model, timing.backend, pie.protocol, pie.enamel).

Speedup (mean over tasks of max(1, t_slow / t_generated), an incorrect or missing program counting
1.0), %Opt (correct and speedup >= 1.10), %Correct and ENAMEL's eff@1, for the generated programs
(and Best@k when pie.samples > 1), the ENAMEL reference (the human ceiling) and the slow program.
One row per model besides: every run under `--rows` (data/pie/rows/<role>/{completions.jsonl,timings}:
the base model with the plain and the conditioned prompt, the fine-tuned model), each against the
slow program timed in its own run. Under `pie.protocol: enamel`: ENAMEL's eff@k and pass@k instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.environment import fingerprint
from perfrepro.io import atomic_outputs, write_json, write_text
from perfrepro.logs import setup_logging
from perfrepro.metrics.optimization import model_rows, optimization_metrics, summarize, task_outcomes
from perfrepro.report import enamel_report, optimization_table, optimization_task_table
from perfrepro.records import Completion, Measurement, RecordError, read_jsonl

log = logging.getLogger("report_pie")
MODEL_ROLES = ("base_plain", "base_conditioned", "finetuned")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--timings", type=Path, default=Path("data/pie/timings"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/optimization.json"))
    parser.add_argument("--table", type=Path, default=Path("metrics/optimization.md"))
    parser.add_argument("--rows", type=Path, default=Path("data/pie/rows"),
                        help="per-model runs: <rows>/<role>/completions.jsonl and timings/ (missing: no such rows)")
    return parser.parse_args(argv)


def model_runs(rows_dir: Path) -> list[tuple[str, str, list[Measurement]]]:
    """(role, model, measurements) of each run under `rows_dir`, in MODEL_ROLES order."""
    found = []
    for role in MODEL_ROLES:
        run = rows_dir / role
        if not (run / "timings" / "measurements.jsonl").is_file():
            continue
        completions = read_jsonl(run / "completions.jsonl", Completion)
        found.append((role, completions[0].model if completions else role,
                      read_jsonl(run / "timings" / "measurements.jsonl", Measurement)))
    return found


def per_model_rows(runs: list[tuple[str, str, list[Measurement]]], samples: int) -> list:
    """The generated rows of each model run, labelled by its model."""
    return [row for role, model, run in runs for row in model_rows(task_outcomes(run, samples)[0], samples, role, model)]


def main(argv=None) -> int:
    setup_logging("report_pie")
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
        runs = model_runs(args.rows)
    except (ConfigError, RecordError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    if params.pie.protocol == "enamel":  # ENAMEL's eff@k and pass@k (perfrepro.metrics.enamel)
        enamel = params.pie.enamel
        header = f"Model `{params.llm.model}` (llm.backend {params.llm.backend}); samples {params.pie.samples}."
        metrics, text = enamel_report(measurements, runs, enamel.level_weights, enamel.timeout_factor,
                                      params.pie.samples, params.llm.model, header)
        with atomic_outputs(args.metrics, args.table) as (metrics_out, table_out):
            write_json(metrics_out, {**metrics, "run_info": fingerprint()})
            write_text(table_out, text)
        print(text.split("## Per task")[0], file=sys.stderr)
        return 0
    extra = per_model_rows(runs, params.pie.samples)
    outcomes, excluded = task_outcomes(measurements, params.pie.samples)
    rows = summarize(outcomes, params.pie.samples)
    rows = rows[:-2] + extra + rows[-2:]  # the per-model rows above the reference and the slow program
    lines = [
        "# Optimization track (PIE-style, ENAMEL tasks)",
        "",
        f"Model `{params.llm.model}` (llm.backend {params.llm.backend}); timing backend `{params.timing.backend}`; "
        f"{len(outcomes)} tasks, samples {params.pie.samples}.",
        "",
        optimization_table(rows, params.llm.model),
        "",
    ]
    if excluded:
        lines += [f"Left out (the slow program passed no timed level): {', '.join(excluded)}.", ""]
    lines += ["## Per task", "", optimization_task_table(outcomes), ""]
    with atomic_outputs(args.metrics, args.table) as (metrics_out, table_out):
        write_json(metrics_out, {**optimization_metrics(rows, len(excluded)), "run_info": fingerprint()})
        write_text(table_out, "\n".join(lines))
    log.info("%s, %s: %d tasks", args.metrics, args.table, len(outcomes))
    print(optimization_table(rows, params.llm.model), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
