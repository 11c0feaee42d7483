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

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from perfrepro.config import ConfigError, Params, load_params
from perfrepro.datasets.base import DatasetError
from perfrepro.finetuning.data import FinetuneDataError, SftRecord, check_data_choice, finetune_records
from perfrepro.finetuning.lora import FinetuneModelError
from perfrepro.finetuning.openai_jobs import OpenAIJobError
from perfrepro.finetuning.templates import chat_jsonl_line, conditioned_template_for, training_messages
from perfrepro.generation.cache import resolve_cache_dir
from perfrepro.generation.runinfo import start_model_stage
from perfrepro.generation.transformers_backend import LABEL_FILE
from perfrepro.io import atomic_outputs, write_json
from perfrepro.records import RecordError, read_jsonl

log = logging.getLogger("finetune")


class FinetuneStageError(ValueError):
    """The stage cannot run as configured; the message names the param or variable."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/finetune/data"), help="pie_train_data's output")
    parser.add_argument("--self-play-pairs", type=Path, default=Path("data/self_play/finetune_pairs.jsonl"),
                        help="the self_play stage's pairs (read when finetune.data is pie+self_play)")
    parser.add_argument("--templates", type=Path, default=Path("data/raw/pie/templates"))
    parser.add_argument("--out", type=Path, default=Path("data/finetune/model"))
    parser.add_argument("--plots", type=Path, default=Path("metrics/finetune_loss.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/finetune.json"))
    return parser.parse_args(argv)


def openai_api_key(env_name: str, base_url: str | None = None) -> str:
    """The key in `$env_name`, or an error before any upload (a hosted job always needs one)."""
    key = os.environ.get(env_name)
    if not key:
        where = base_url or "api.openai.com"
        raise FinetuneStageError(
            f"finetune.backend: openai needs an API key for {where} in the environment variable {env_name} "
            f"(llm.api_key_env); it is not set, so nothing was uploaded"
        )
    return key


def render_messages(records, template: str, conditioned: str | None):
    return [training_messages(r.slow, r.fast, r.score, template, conditioned) for r in records]


def model_label(base_label: str, template: str) -> str:
    return f"{base_label}+lora-pie-{template}"


def run_local(params: Params, train: list[SftRecord], val: list[SftRecord], conditioned: str | None,
              out: Path) -> tuple[dict, list[dict]]:
    from perfrepro.finetuning import lora

    ft = params.finetune
    ref = lora.resolve_base_model(ft.base_model)
    log.info("base model %s (%s%s); loading the tokenizer", ref.label, ref.location,
             f", gguf_file={ref.gguf_file}" if ref.gguf_file else "")
    tokenizer = lora.load_tokenizer(ref)

    def tokenize(records):
        examples = [lora.tokenize_example(tokenizer, r.id, m, ft.max_length)
                    for r, m in zip(records, render_messages(records, ft.template, conditioned))]
        return [e for e in examples if e is not None]

    train_examples, val_examples = tokenize(train), tokenize(val)
    log.info("%d of %d train and %d of %d val records fit finetune.max_length %d tokens",
             len(train_examples), len(train), len(val_examples), len(val), ft.max_length)
    if not train_examples:
        raise FinetuneModelError(f"no training record fits finetune.max_length {ft.max_length} tokens; raise it")
    base = lora.load_causal_lm(ref)
    settings = lora.LoraSettings(
        max_steps=ft.max_steps, batch_size=ft.batch_size, lr=ft.lr, warmup_steps=ft.warmup_steps,
        lora_r=ft.lora_r, lora_alpha=ft.lora_alpha, lora_dropout=ft.lora_dropout,
        target_modules=ft.target_modules, lora_layers=ft.lora_layers, eval_steps=ft.eval_steps, eval_records=ft.eval_records,
        threads=ft.threads, seed=params.seed,
    )
    result = lora.train_lora(
        base, train_examples, val_examples, settings, tokenizer.pad_token_id,
        on_eval=lambda step, point: log.info("step %d: %s", step, ", ".join(f"{k} loss {v:.4f}" for k, v in point.items())),
    )
    shas = lora.save_outputs(result, tokenizer, out / "adapter", out / "merged", base_model=ref.label)
    write_json(out / "merged" / LABEL_FILE, {"model": model_label(ref.label, ft.template), **shas})
    first = {row["split"]: row["loss"] for row in result.curve if row["step"] == 0}
    last_step = result.curve[-1]["step"]
    last = {row["split"]: row["loss"] for row in result.curve if row["step"] == last_step}
    info = {
        "backend": "local",
        "model": model_label(ref.label, ft.template),
        "model_dir": "merged",
        "adapter_dir": "adapter",
        "base_model": ft.base_model,
        "base_model_location": ref.location if ref.gguf_file is None else os.path.basename(ref.location),
        "base_gguf_file": ref.gguf_file,
        "template": ft.template,
        "train_records_used": len(train_examples),
        "train_records_too_long": len(train) - len(train_examples),
        "val_records_used": len(val_examples),
        "steps": ft.max_steps,
        "train_wall_s": round(result.wall_s, 1),
        "first_loss": first,
        "last_loss": last,
        "settings": dataclasses.asdict(settings),
        **shas,
    }
    return info, result.curve


def openai_curve(events: list[dict]) -> list[dict]:
    """Loss rows from the job's metrics events (``data``: step, train_loss, valid_loss), when it has any."""
    rows = []
    for event in events:
        data = event.get("data") or {}
        if isinstance(data, dict) and "step" in data:
            for split, name in (("train", "train_loss"), ("val", "valid_loss")):
                if isinstance(data.get(name), (int, float)):
                    rows.append({"step": int(data["step"]), "split": split, "loss": float(data[name])})
    return sorted(rows, key=lambda r: (r["step"], r["split"]))


def run_openai(params: Params, api_key: str, train, val, conditioned: str | None) -> tuple[dict, list[dict]]:
    from perfrepro.finetuning.openai_jobs import FineTuningClient, OpenAIJobSettings, run_finetuning_job

    ft = params.finetune
    lines = lambda records: "".join(chat_jsonl_line(m) + "\n" for m in render_messages(records, ft.template, conditioned))
    train_bytes = lines(train).encode("utf-8")
    val_bytes = lines(val).encode("utf-8") if val else None
    settings = OpenAIJobSettings(model=ft.openai_model, n_epochs=ft.openai_epochs, seed=params.seed,
                                 suffix=f"pie-{ft.template}", poll_interval_s=ft.poll_interval_s,
                                 poll_timeout_s=ft.poll_timeout_s)
    client = FineTuningClient(api_key, params.llm.base_url, timeout_s=params.llm.timeout_s)
    cache_dir = resolve_cache_dir(params.llm.cache_dir)
    job = run_finetuning_job(client, train_bytes, val_bytes, settings, cache_dir)
    info = {
        "backend": "openai",
        "model": job["fine_tuned_model"],
        "base_model": ft.openai_model,
        "template": ft.template,
        "job_id": job["job_id"],
        "job_key": job["key"],
        "status": job["status"],
        "trained_tokens": job.get("trained_tokens"),
        "train_records_used": len(train),
        "val_records_used": len(val),
        "events": job["events"],
    }
    return info, openai_curve(job["events"])


def main(argv=None) -> int:
    start_model_stage("finetune")
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        ft = params.finetune
        check_data_choice(ft.data)
        api_key = openai_api_key(params.llm.api_key_env, params.llm.base_url) if ft.backend == "openai" else None
        train = read_jsonl(args.data / "train.jsonl", SftRecord)
        val = read_jsonl(args.data / "val.jsonl", SftRecord)
        if not train:
            raise FinetuneDataError(f"{args.data / 'train.jsonl'}: no training record (rerun pie_train_data)")
        train, val, added = finetune_records(train, val, ft.data, args.self_play_pairs, ft.max_code_chars)
        if ft.data == "pie+self_play":
            log.info("finetune.data pie+self_play: %d self-play pairs added to %d PIE train records", added,
                     len(train) - added)
            if not added:
                log.warning("%s holds no pair: training on PIE alone (the self_play stage kept none, see "
                            "metrics/self_play.json, or it last ran under finetune.data: pie; `dvc repro` reruns it)",
                            args.self_play_pairs)
        conditioned = conditioned_template_for(ft.template, args.templates)
        # a fresh folder (no stale adapter from another backend or base model), renamed into place
        # with the plot and metrics only when everything succeeded
        with atomic_outputs(args.out, args.plots, args.metrics) as (out, plots_out, metrics_out):
            out.mkdir(parents=True)
            if ft.backend == "local":
                info, curve = run_local(params, train, val, conditioned, out)
            else:
                info, curve = run_openai(params, api_key, train, val, conditioned)
            info["data"] = ft.data
            info["self_play_records_added"] = added
            info["stage_wall_s"] = round(time.perf_counter() - started, 1)
            write_json(out / "info.json", info)
            write_json(plots_out, curve)
            first, last = info.get("first_loss", {}), info.get("last_loss", {})
            write_json(metrics_out, {
                "finetune.train_records_used": info["train_records_used"],
                "finetune.self_play_records_added": added,
                **({"finetune.train_wall_s": info["train_wall_s"]} if "train_wall_s" in info else {}),
                **{f"finetune.first_{split}_loss": value for split, value in first.items()},
                **{f"finetune.last_{split}_loss": value for split, value in last.items()},
            })
    except (ConfigError, FinetuneStageError, FinetuneDataError, FinetuneModelError, OpenAIJobError, RecordError,
            DatasetError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted (an OpenAI job keeps running; a rerun resumes it)")
        return 130
    log.info("fine-tuned model %s (%s) -> %s; %s", info["model"], ft.backend, args.out,
             json.dumps({k: info[k] for k in ("first_loss", "last_loss", "train_wall_s") if k in info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
