"""Stage `pie_train_data`: PIE pairs -> fine-tuning records (params: seed, finetune.data,
finetune.sources, finetune.val_fraction, finetune.max_code_chars, finetune.leak_threshold).

Reads every `finetune.sources` file (the shipped py_reference pairs; PIE's released train /
train_hq_only / train_with_synthetic / val files where you have them, locally or on the hub),
scores each target 1..10 by its runtime percentile, removes every problem that overlaps the
evaluation tasks (data/prepared/opt_tasks.jsonl), splits train / validation by problem_id (seeded)
and truncates programs at `finetune.max_code_chars`. Writes data/finetune/data/{train,val}.jsonl
(template-free SftRecords: the finetune stage renders `finetune.template`, so changing the
template reruns nothing here) and summary.json, and metrics/pie_train_data.json.
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.finetuning.data import (
    build_training_data,
    check_data_choice,
    load_training_pairs,
)
from perfrepro.finetuning.leakage import eval_programs_from_tasks
from perfrepro.io import atomic_outputs, write_json
from perfrepro.records import OptTask, read_jsonl, write_jsonl
from perfrepro.stage import stage

log = logging.getLogger("pie_train_data")


@stage("pie_train_data", "eval-tasks", "out", "metrics")
def main(args) -> int:
    params = load_params(args.params)
    ft = params.finetune
    check_data_choice(ft.data)
    data = build_training_data(
        load_training_pairs(ft.sources), eval_programs_from_tasks(read_jsonl(args.eval_tasks, OptTask)),
        seed=params.seed, val_fraction=ft.val_fraction, max_code_chars=ft.max_code_chars,
        leak_threshold=ft.leak_threshold,
    )
    s = data.summary
    with atomic_outputs(args.out, args.metrics) as (out, metrics_out):
        write_jsonl(out / "train.jsonl", data.train)
        write_jsonl(out / "val.jsonl", data.val)
        write_json(out / "summary.json", data.summary)
        write_json(metrics_out, {
            "pie_train_data.train_records": s["train_records"],
            "pie_train_data.val_records": s["val_records"],
            "pie_train_data.leaked_problems_removed": s["leaked_problems_removed"],
            "pie_train_data.overlap_after_filter": s["overlap_after_filter"],
            "pie_train_data.truncated_records": s["truncated_records"],
        })
    log.info("%d train / %d val records (%d / %d problems); %d problems overlapping the %d evaluation tasks "
             "removed, overlap after the filter %d; %d records truncated at %d characters; scores: %s",
             s["train_records"], s["val_records"], s["train_problems"], s["val_problems"],
             s["leaked_problems_removed"], s["eval_tasks"], s["overlap_after_filter"], s["truncated_records"],
             s["max_code_chars"], s["score_basis_counts"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
