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


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        task_ids = [task.id for task in read_jsonl(args.tasks, Task)]
        measurements = read_jsonl(args.timings / "measurements.jsonl", Measurement)
        metrics = efficiency_metrics(task_ids, measurements)
        ratios, _, _ = task_ratios(task_ids, measurements)
    except (ConfigError, RecordError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    name = experiment_name(params.shots, params.llm.model, params.llm.backend)
    flat = {key: _number(value) for key, value in metrics.as_dict().items()
            if key not in ("status_counts", "time_unit")}
    flat.update({f"status_{status}": count for status, count in metrics.status_counts.items()})
    write_json(args.metrics / "efficiency.json", {"efficiency": flat})
    write_text(args.metrics / "efficiency.md", efficiency_markdown(name, metrics, params.timing.backend))
    write_json(args.metrics / "net_ratios.json", {"net_ratios": [
        {"task_id": r.task_id, "NET": _number(r.net), "NMU": _number(r.nmu), "NTMU": _number(r.ntmu)}
        for r in ratios
    ]})
    log.info("%s: pass1 %.1f%%, NET %s over %d tasks -> %s", name, metrics.pass1, metrics.NET,
             metrics.normalized, args.metrics / "efficiency.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
