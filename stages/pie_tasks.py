"""Stage `pie_tasks`: ENAMEL tasks -> data/pie/tasks (params: seed, pie.limit_tasks, pie.tests_per_level).

Takes a deterministic subset (`pie.limit_tasks`, chosen by `seed`) of data/prepared/opt_tasks.jsonl,
runs each task's ENAMEL generator at its four size levels (`pie.tests_per_level` seeded inputs
per level), answers them with the ENAMEL reference and adds the HumanEval+ inputs for correctness.
Every program of the track is measured on these stored inputs. A task whose generator or
reference fails is skipped; manifest.json records why. Under `pie.protocol: enamel` the tests are
ENAMEL's own (`pie.enamel.seed`, `pie.enamel.tests_per_level`), none dropped, no HumanEval+ input.
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import ConfigError, load_params
from perfrepro.datasets.split import select_subset
from perfrepro.dispatch import make_executor
from perfrepro.io import atomic_outputs
from perfrepro.generation.samples import select_tasks
from perfrepro.optimization.tasks import PLUS_CAP, load_plus_inputs, write_pie_tasks
from perfrepro.records import OptTask, read_jsonl
from perfrepro.stage import stage

log = logging.getLogger("pie_tasks")


def options(parser) -> None:
    parser.add_argument("--subset", choices=("pie", "samples"), default="pie",
                        help="pie: pie.limit_tasks, chosen by seed; samples: the first samples.limit_tasks of samples.tasks")
    parser.add_argument("--plus-cap", type=int, default=PLUS_CAP,
                        help="at most this many HumanEval+ inputs per task, a seeded sample (default: all)")


@stage("pie_tasks", "opt-tasks", "humanevalplus", "out", options=options, also=(ValueError,))
def main(args) -> int:
    params = load_params(args.params)
    tasks = read_jsonl(args.opt_tasks, OptTask)
    plus = load_plus_inputs(args.humanevalplus)
    if args.subset == "samples":  # the samples rows (samples_tasks): every model on the same tasks
        if params.samples is None:
            raise ConfigError("samples: missing section (pie_tasks --subset samples reads samples.tasks)")
        subset = select_tasks(tasks, params.samples.tasks, params.samples.limit_tasks, str(args.opt_tasks))
    else:
        subset = select_subset(tasks, params.pie.limit_tasks, params.seed)
    enamel = params.pie.enamel
    enamel_spec = ({"seed": enamel.seed, "tests_per_level": list(enamel.tests_per_level)}
                   if params.pie.protocol == "enamel" else None)
    # a fresh folder: stale pickles of tasks no longer selected must not linger
    with atomic_outputs(args.out) as (out,):
        # executor.* says where the tasks run, never what they compute (no dvc.yaml stage tracks it); an
        # ExecutorError leaves the block by an exception: nothing is written
        with make_executor(params.executor) as executor:
            manifest = write_pie_tasks(subset, out, params.seed, params.pie.tests_per_level, plus, args.plus_cap,
                                       executor=executor, enamel=enamel_spec)
        log.info("%d of %d tasks kept, %d skipped -> %s", len(manifest["kept"]), len(subset), len(manifest["skipped"]), args.out)
        for item in manifest["skipped"]:
            log.info("skipped %s: %s", item["task_id"], item["reason"])
        if not manifest["kept"]:
            log.error("no task kept: nothing written")
            raise SystemExit(1)  # leaves the block by an exception: nothing is written
    return 0


if __name__ == "__main__":
    sys.exit(main())
