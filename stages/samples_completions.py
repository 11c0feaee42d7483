"""Stage `samples_completions@<model>`: one model's samples file -> its completions on the samples
rows' tasks (params: samples.samples_per_task).

The first `samples.samples_per_task` samples (file order) of every task in --tasks (samples_tasks'
output) become Completion records labelled "<model> (<source>)"; a sample the file does not have
is no_code. Task ids are checked against all of ENAMEL's HumanEval tasks (--enamel-dir): an id
outside them, or a malformed line, stops the stage naming the file and line. The file may be a
folder of samples files, one per model (<folder>/<model>.jsonl).
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import ConfigError, load_params
from perfrepro.datasets import load_opt_tasks
from perfrepro.generation.generate import status_counts
from perfrepro.generation.samples import open_samples, sample_completions
from perfrepro.io import atomic_outputs
from perfrepro.optimization.tasks import PieTaskDir
from perfrepro.records import write_jsonl
from perfrepro.stage import stage

log = logging.getLogger("samples_completions")


def labels(parser) -> None:
    parser.add_argument("--model", required=True, help="the model's name (its samples.models key)")
    parser.add_argument("--source", required=True, help="where the code came from, for the label")


@stage("samples_completions", "samples", "tasks", "enamel-dir", "out", options=labels)
def main(args) -> int:
    params = load_params(args.params)
    if params.samples is None:
        raise ConfigError("samples: missing section (samples_completions reads samples.samples_per_task)")
    tasks = PieTaskDir(args.tasks).tasks
    track = f"optimization track ({args.enamel_dir})"
    backend = open_samples(args.samples, args.model, args.source, load_opt_tasks(args.enamel_dir, include_excluded=True),
                           tasks, track)
    completions = sample_completions(backend, tasks, params.samples.samples_per_task)
    with atomic_outputs(args.out) as (out,):
        write_jsonl(out, completions)
    statuses = status_counts(completions)
    log.info("%s: %d tasks x %d samples of %s (ok %d, no sample %d)", args.out, len(tasks),
             params.samples.samples_per_task, backend.model_label, statuses["ok"], statuses["no_code"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
