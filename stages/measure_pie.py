"""Stage `measure_pie`: time slow, reference and generated programs (params: seed, timing).

For every task in data/pie/tasks and every timed ENAMEL level (1-3), the slow program (HumanEval
canonical), the ENAMEL reference and each generated sample (data/pie/completions.jsonl) run on the
stored inputs under the `timing.backend` backend, in one call per task so the backend interleaves
them. A generated sample is timed only after one untimed run passes level 0 and every HumanEval+
input. Writes data/pie/timings/measurements.jsonl (Measurement records, task ids ``<id>@L<level>``),
runs.jsonl (every raw run) and info.json (backend, counts, wall time, throughput).
Under `pie.protocol: enamel` (params pie.enamel) ENAMEL's protocol measures instead
(perfrepro.optimization.enamel_protocol), with each `pie.enamel.sample_sets` file as its own role.
"""

from __future__ import annotations

import logging
import sys
import time

from perfrepro.config import load_params
from perfrepro.execution import sandbox
from perfrepro.dispatch import make_executor
from perfrepro.io import atomic_outputs, write_json
from perfrepro.optimization.level_timing import check_task_dir_protocol, make_protocol
from perfrepro.optimization.tasks import PieTaskDir
from perfrepro.records import Completion, read_jsonl, write_jsonl
from perfrepro.stage import stage

log = logging.getLogger("measure_pie")


@stage("measure_pie", "tasks", "completions", "out", "enamel-samples", also=(ValueError, RuntimeError))
def main(args) -> int:
    isolation = sandbox.require_isolation()  # before any input is read: refuse at once
    started = time.perf_counter()
    runs: list[dict] = []

    def on_run(program, repeat, raw):
        runs.append({"task_id": program.task_id, "role": program.role, "sample": program.sample, **raw})

    params = load_params(args.params)
    task_dir = PieTaskDir(args.tasks)
    tasks = task_dir.tasks
    completions = read_jsonl(args.completions, Completion)
    check_task_dir_protocol(task_dir.manifest, params.pie.protocol, args.tasks)
    protocol = make_protocol(params.pie.protocol, params.timing, params.pie.enamel, args.enamel_samples,
                             [t.id for t in tasks], on_run)  # gem5 says here what it is missing
    # executor.* says where the tasks run, never what they compute (no dvc.yaml stage tracks it)
    with make_executor(params.executor) as executor:
        measurements = protocol.measure(tasks, task_dir.inputs, completions, executor)
    elapsed = time.perf_counter() - started
    info = {
        "backend": protocol.backend_name,
        "protocol": protocol.name,
        "sandbox_isolation": isolation.name,
        "settings": protocol.settings,
        "tasks": len(tasks),
        "programs": len(measurements),
        "passed": sum(m.passed for m in measurements),
        "raw_runs": len(runs),
        "wall_s": round(elapsed, 2),
        "programs_per_minute": round(60.0 * len(measurements) / elapsed, 2) if elapsed else 0.0,
        "tasks_per_minute": round(60.0 * len(tasks) / elapsed, 3) if elapsed else 0.0,
    }
    with atomic_outputs(args.out) as (out,):
        write_jsonl(out / "measurements.jsonl", measurements)
        write_jsonl(out / "runs.jsonl", runs)
        write_json(out / "info.json", info)
    log.info("%s: %d tasks, %d programs (%d passed), %d raw runs in %.1f s (%s programs/min) -> %s",
             protocol.backend_name, info["tasks"], info["programs"], info["passed"], info["raw_runs"], elapsed,
             info["programs_per_minute"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
