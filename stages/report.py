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

import logging
import sys

from perfrepro.config import load_params
from perfrepro.generation.samples import configured_source
from perfrepro.io import atomic_outputs, write_json, write_text
from perfrepro.records import Measurement, Task, read_jsonl
from perfrepro.report.efficiency import efficiency_report, experiment_name, net_text, reference_name
from perfrepro.stage import stage, with_run_info

log = logging.getLogger("report")


@stage("report", "tasks", "timings", "metrics", also=(ValueError,))
def main(args) -> int:
    params = load_params(args.params)
    task_ids = [task.id for task in read_jsonl(args.tasks, Task)]
    measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
    name = experiment_name(params.shots, params.llm.model, params.llm.backend, configured_source(params.samples))
    report = efficiency_report(task_ids, measurements, name, params.timing.backend)
    names = ("efficiency.json", "efficiency.md", "net_ratios.json", "reference_ratios.json", "net_plot.json")
    with atomic_outputs(*(args.metrics / n for n in names)) as (json_out, md_out, net_out, reference_out, plot_out):
        write_json(json_out, with_run_info(report.content))  # the environment (perfrepro.environment)
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
