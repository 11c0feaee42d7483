"""Stage `finetune`: PIE fine-tuning records -> a fine-tuned model (params: seed, finetune, llm.api_key_env,
llm.base_url, llm.cache_dir).

`finetune.data`: pie trains on pie_train_data's records; pie+self_play adds the self_play stage's
kept pairs (data/self_play/finetune_pairs.jsonl, which that stage leaves empty under pie, so a
self-play change never retrains a pie model) to the train split.

`finetune.backend`:
- `local`: LoRA (peft) on `finetune.base_model` (default: the shipped SmolLM2-135M GGUF), rendered
  with `finetune.template`; writes data/finetune/model/{adapter,merged,info.json} and the loss curve
  metrics/finetune_loss.json (train and validation loss against step) and metrics/finetune.json.
- `openai`: uploads the records in OpenAI's chat format, creates a fine-tuning job on
  `finetune.openai_model`, polls it, and writes its fine-tuned model id and events to
  data/finetune/model/info.json. The job is keyed by the hash of data and params in the LLM cache
  directory, so a rerun never starts a second job. The API key (`$<llm.api_key_env>`) is checked
  before anything is uploaded.

The optimize_finetuned stage reads info.json to generate with the fine-tuned model.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from perfrepro.config import load_params
from perfrepro.finetuning.data import FinetuneDataError, check_data_choice, finetune_records
from perfrepro.finetuning.templates import conditioned_template_for
from perfrepro.finetuning.train import finetune_metrics, openai_api_key, train
from perfrepro.io import atomic_outputs, write_json
from perfrepro.records import SftRecord, read_jsonl
from perfrepro.stage import stage

log = logging.getLogger("finetune")


@stage("finetune", "data", "self-play-pairs", "templates", "out", "plots", "metrics", model=True, also=(ValueError,),
       interrupted="interrupted (an OpenAI job keeps running; a rerun resumes it)")
def main(args) -> int:
    started = time.perf_counter()
    params = load_params(args.params)
    ft = params.finetune
    check_data_choice(ft.data)
    api_key = openai_api_key(params.llm.api_key_env, params.llm.base_url) if ft.backend == "openai" else None
    train_records = read_jsonl(args.data / "train.jsonl", SftRecord)
    val = read_jsonl(args.data / "val.jsonl", SftRecord)
    if not train_records:
        raise FinetuneDataError(f"{args.data / 'train.jsonl'}: no training record (rerun pie_train_data)")
    train_records, val, added = finetune_records(train_records, val, ft.data, args.self_play_pairs, ft.max_code_chars)
    if ft.data == "pie+self_play":
        log.info("finetune.data pie+self_play: %d self-play pairs added to %d PIE train records", added,
                 len(train_records) - added)
        if not added:
            log.warning("%s holds no pair: training on PIE alone (the self_play stage kept none, see "
                        "metrics/self_play.json, or it last ran under finetune.data: pie; `dvc repro` reruns it)",
                        args.self_play_pairs)
    conditioned = conditioned_template_for(ft.template, args.templates)
    # a fresh folder (no stale adapter from another backend or base model), renamed into place
    # with the plot and metrics only when everything succeeded
    with atomic_outputs(args.out, args.plots, args.metrics) as (out, plots_out, metrics_out):
        out.mkdir(parents=True)
        info, curve = train(params, train_records, val, conditioned, out, api_key)
        info["data"] = ft.data
        info["self_play_records_added"] = added
        info["stage_wall_s"] = round(time.perf_counter() - started, 1)
        write_json(out / "info.json", info)
        write_json(plots_out, curve)
        write_json(metrics_out, finetune_metrics(info, added))
    log.info("fine-tuned model %s (%s) -> %s; %s", info["model"], ft.backend, args.out,
             json.dumps({k: info[k] for k in ("first_loss", "last_loss", "train_wall_s") if k in info}))
    return 0

if __name__ == "__main__":
    sys.exit(main())
