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
from perfrepro.metrics.efficiency import efficiency_metrics, task_ratios
from perfrepro.records import Measurement, RecordError, Task, read_jsonl
from perfrepro.report import efficiency_markdown, experiment_name, reference_name

log = logging.getLogger("report")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tasks", type=Path, default=Path("data/prepared/tasks.jsonl"))
    parser.add_argument("--timings", type=Path, default=Path("data/timings"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics"))
    return parser.parse_args(argv)


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


REFERENCE_ROLE = "reference"
REFERENCE_KEYS = ("NET", "NET_lo", "NET_hi", "NMU", "NTMU", "pass1")  # few: the rest is in efficiency.md


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


def main(argv=None) -> int:
    setup_logging("report")
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        task_ids = [task.id for task in read_jsonl(args.tasks, Task)]
        measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
        metrics = efficiency_metrics(task_ids, measurements)
        ratios, completions, canonicals = task_ratios(task_ids, measurements)
        has_reference = any(m.role == REFERENCE_ROLE for m in measurements)
        reference = efficiency_metrics(task_ids, measurements, role=REFERENCE_ROLE) if has_reference else None
    except (ConfigError, RecordError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    name = experiment_name(params.shots, params.llm.model, params.llm.backend,
                           configured_source(params.samples))
    flat = {key: _number(value) for key, value in metrics.as_dict().items()
            if key not in ("status_counts", "time_unit")}
    flat.update({f"status_{status}": count for status, count in metrics.status_counts.items()})
    content = {"efficiency": flat}
    if reference is not None:
        content["efficiency_reference"] = {key: _number(getattr(reference, key)) for key in REFERENCE_KEYS}
    names = ("efficiency.json", "efficiency.md", "net_ratios.json", "reference_ratios.json", "net_plot.json")
    with atomic_outputs(*(args.metrics / n for n in names)) as (json_out, md_out, net_out, reference_out, plot_out):
        write_json(json_out, {**content, "run_info": fingerprint()})  # the environment (perfrepro.environment)
        write_text(md_out, efficiency_markdown(
            name, metrics, params.timing.backend, reference=(reference_name(), reference) if reference else None))
        net_rows = ratio_rows(task_ids, ratios, completions, canonicals)
        reference_rows = (ratio_rows(task_ids, *task_ratios(task_ids, measurements, role=REFERENCE_ROLE))
                          if reference is not None else [])
        write_json(net_out, {"net_ratios": net_rows})
        write_json(reference_out, {"reference_ratios": reference_rows})
        write_json(plot_out, {"net_plot": net_plot_rows(net_rows, name, metrics) + (
            net_plot_rows(reference_rows, reference_name(), reference) if reference is not None else [])})
    log.info("%s: pass1 %.1f%%, %s -> %s", name, metrics.pass1, net_text(metrics), args.metrics / "efficiency.md")
    if reference is not None:
        log.info("%s: pass1 %.1f%%, %s", reference_name(), reference.pass1, net_text(reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
