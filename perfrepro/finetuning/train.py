"""Fine-tuning a model on PIE records, either backend: LoRA (peft) on a local base model, or an
OpenAI fine-tuning job; each returns what info.json records and the loss curve."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

from perfrepro.config import Params
from perfrepro.finetuning.lora import FinetuneModelError
from perfrepro.finetuning.templates import chat_jsonl_line, training_messages
from perfrepro.generation.cache import resolve_cache_dir
from perfrepro.generation.transformers_backend import LABEL_FILE
from perfrepro.io import write_json
from perfrepro.records import SftRecord

log = logging.getLogger(__name__)


class FinetuneSetupError(ValueError):
    """Fine-tuning cannot run as configured; the message names the param or variable."""


def openai_api_key(env_name: str, base_url: str | None = None) -> str:
    """The key in `$env_name`, or an error before any upload (a hosted job always needs one)."""
    key = os.environ.get(env_name)
    if not key:
        where = base_url or "api.openai.com"
        raise FinetuneSetupError(
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
    """LoRA on `finetune.base_model`: out/adapter, out/merged; info.json's fields and the loss curve."""
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
    """A fine-tuning job on `finetune.openai_model` (keyed in the LLM cache: a rerun resumes it)."""
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


def train(params: Params, train: Sequence[SftRecord], val: Sequence[SftRecord], conditioned: str | None, out: Path,
          api_key: str | None = None) -> tuple[dict, list[dict]]:
    """Fine-tune by `finetune.backend` (`out`: the model folder, local only; `api_key`: openai only)."""
    if params.finetune.backend == "local":
        return run_local(params, train, val, conditioned, out)
    return run_openai(params, api_key, train, val, conditioned)


def finetune_metrics(info: dict, added: int) -> dict:
    """metrics/finetune.json from info.json's fields and the self-play records added."""
    first, last = info.get("first_loss", {}), info.get("last_loss", {})
    return {
        "finetune.train_records_used": info["train_records_used"],
        "finetune.self_play_records_added": added,
        **({"finetune.train_wall_s": info["train_wall_s"]} if "train_wall_s" in info else {}),
        **{f"finetune.first_{split}_loss": value for split, value in first.items()},
        **{f"finetune.last_{split}_loss": value for split, value in last.items()},
    }
