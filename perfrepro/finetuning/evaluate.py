"""Generating with the fine-tuned model: which LLM settings reach it, and what it is asked.

The finetune stage's ``info.json`` says where the model is: ``backend: local`` -> the merged
LoRA weights, served in process (``llm.backend: transformers``, ``llm.model`` = the directory);
``backend: openai`` -> the fine-tuned model id, which replaces ``llm.model`` on the openai backend.
The decoding params (temperature, max_tokens, seed) and the response cache stay ``llm``'s.

The fine-tuned model is asked zero-shot, in the template it was trained on, at score 10/10 for
the conditioned template (PIE's protocol for its fine-tuned models).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from perfrepro.config import LLMConfig
from perfrepro.finetuning.templates import prompt_messages
from perfrepro.generation.client import ChatRequest
from perfrepro.io import read_json
from perfrepro.optimization.prompts import TARGET_PCTILE
from perfrepro.records import OptTask

INFO_FILE = "info.json"


class FinetunedModelError(ValueError):
    """A fine-tuned model directory that cannot serve; the message says what to run."""


def read_info(model_dir: str | Path) -> dict:
    path = Path(model_dir) / INFO_FILE
    try:
        info = read_json(path)
    except FileNotFoundError:
        raise FinetunedModelError(f"{path}: not found; run `dvc repro finetune` first") from None
    if info.get("backend") not in ("local", "openai") or not info.get("model"):
        raise FinetunedModelError(f"{path}: expected 'backend' local or openai and a 'model'")
    return info


def finetuned_llm(llm: LLMConfig, model_dir: str | Path) -> LLMConfig:
    """`llm` pointed at the fine-tuned model (decoding params and cache unchanged)."""
    info = read_info(model_dir)
    if info["backend"] == "local":
        return dataclasses.replace(llm, backend="transformers", model=str(Path(model_dir) / info["model_dir"]))
    return dataclasses.replace(llm, backend="openai", model=info["model"])


def finetuned_requests(tasks: Sequence[OptTask], template: str, conditioned_template: str | None) -> list[ChatRequest]:
    """One zero-shot request per task in the training template (score 10/10 when conditioned)."""
    return [ChatRequest(id=task.id, messages=prompt_messages(task.slow_program, template, TARGET_PCTILE,
                                                             conditioned_template))
            for task in tasks]
