"""Stage `report`: data/timings -> metrics/efficiency.json, .md and net_ratios.json.

Params: shots, llm.backend, llm.model (the row's name, e.g. `rag3_and_smollm2-135m-instruct`)
and timing.backend (the table's unit). Metrics keys are flat (`efficiency.NET`,
`efficiency.NET_gt5`, ...); net_ratios.json holds the per-task ratios for `dvc plots`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.io import write_json, write_text
from perfrepro.metrics.efficiency import efficiency_metrics, task_ratios
from perfrepro.records import Measurement, RecordError, Task, read_jsonl
from perfrepro.report import efficiency_markdown, experiment_name

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


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        task_ids = [task.id for task in read_jsonl(args.tasks, Task)]
        measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
        metrics = efficiency_metrics(task_ids, measurements)
        ratios, completions, canonicals = task_ratios(task_ids, measurements)
    except (ConfigError, RecordError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    name = experiment_name(params.shots, params.llm.model, params.llm.backend)
    flat = {key: _number(value) for key, value in metrics.as_dict().items()
            if key not in ("status_counts", "time_unit")}
    flat.update({f"status_{status}": count for status, count in metrics.status_counts.items()})
    write_json(args.metrics / "efficiency.json", {"efficiency": flat})
    write_text(args.metrics / "efficiency.md", efficiency_markdown(name, metrics, params.timing.backend))
    # One row per task (null ratios where the completion or the canonical did not pass), so the
    # plot and `dvc plots` never see an empty file when no completion passes.
    by_task = {r.task_id: r for r in ratios}
    write_json(args.metrics / "net_ratios.json", {"net_ratios": [
        {"task_id": task_id, "status": _status(task_id, by_task, completions, canonicals),
         **({"NET": _number(r.net), "NMU": _number(r.nmu), "NTMU": _number(r.ntmu)} if (r := by_task.get(task_id))
            else {"NET": None, "NMU": None, "NTMU": None})}
        for task_id in task_ids
    ]})
    log.info("%s: pass1 %.1f%%, NET %s over %d tasks -> %s", name, metrics.pass1, metrics.NET,
             metrics.normalized, args.metrics / "efficiency.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
