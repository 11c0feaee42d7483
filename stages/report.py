"""Stage `report`: data/timings -> metrics/efficiency.json, .md and net_ratios.json.

Params: shots, llm.backend, llm.model (the row's name, e.g. `rag3_and_smollm2-135m-instruct`)
and timing.backend (the table's unit). Metrics keys are flat (`efficiency.NET`, `efficiency.NET_lo`,
`efficiency.NET_hi`, `efficiency.NET_gt5`, ...; `_lo`/`_hi`: the 95% bootstrap interval over
tasks); net_ratios.json holds the per-task ratios for `dvc plots` and `perfrepro table`'s paired
comparison. When `measure` measured the reference row (LeetCodeDataset's recorded responses, role
"reference"), the table gets it as a second row, labelled `leetcodedataset-response (reference)`,
and efficiency.json a short `efficiency_reference` section (NET with its interval, NMU, NTMU,
pass1); its per-task ratios go to reference_ratios.json (a plain output, not a metric; an empty
list without a reference row). net_plot.json is the NET plot's data: both rows' per-task ratios,
each with its row's NET and interval.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.environment import fingerprint
from perfrepro.generation.samples import configured_source
from perfrepro.io import atomic_outputs, write_json, write_text
from perfrepro.logs import setup_logging
from perfrepro.records import Measurement, RecordError, Task, read_jsonl
from perfrepro.report.efficiency import efficiency_report, experiment_name, net_text, reference_name

log = logging.getLogger("report")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tasks", type=Path, default=Path("data/prepared/tasks.jsonl"))
    parser.add_argument("--timings", type=Path, default=Path("data/timings"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    setup_logging("report")
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        task_ids = [task.id for task in read_jsonl(args.tasks, Task)]
        measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
        name = experiment_name(params.shots, params.llm.model, params.llm.backend, configured_source(params.samples))
        report = efficiency_report(task_ids, measurements, name, params.timing.backend)
    except (ConfigError, RecordError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    names = ("efficiency.json", "efficiency.md", "net_ratios.json", "reference_ratios.json", "net_plot.json")
    with atomic_outputs(*(args.metrics / n for n in names)) as (json_out, md_out, net_out, reference_out, plot_out):
        write_json(json_out, {**report.content, "run_info": fingerprint()})  # the environment (perfrepro.environment)
        write_text(md_out, report.markdown)
        write_json(net_out, {"net_ratios": report.net_rows})
        write_json(reference_out, {"reference_ratios": report.reference_rows})
        write_json(plot_out, {"net_plot": report.plot_rows})
    log.info("%s: pass1 %.1f%%, %s -> %s", name, report.metrics.pass1, net_text(report.metrics),
             args.metrics / "efficiency.md")
    if report.reference is not None:
        log.info("%s: pass1 %.1f%%, %s", reference_name(), report.reference.pass1, net_text(report.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
