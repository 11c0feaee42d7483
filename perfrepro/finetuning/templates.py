"""The two fine-tuning prompt templates, as chat messages (system, user, assistant).

- ``plain``: pie-perf's wording, ``# slower version:`` / slow code / ``# optimized version of the
  same code:`` (perfrepro/optimization/templates/plain_query.txt, the same text the few-shot
  prompts use);
- ``conditioned``: PIE's performance-conditioned template (LearningOpt/pie
  ``finetuning/templates/code_opt_w_speedup_pctile.json``, read from data/raw/pie/templates), the
  target tagged with its score ``{pctile}/10`` during training and asked for at 10/10 at test time.

The assistant turn is the fast program in one ```python block, the answer shape the code
extractor reads. The same function renders training records and the fine-tuned model's test
prompts, so the model is asked exactly what it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from perfrepro.generation.prompts import render
from perfrepro.optimization.prompts import TARGET_PCTILE, load_conditioned_template, load_template

TEMPLATES = ("plain", "conditioned")

Message = Mapping[str, str]


def check_template(template: str, key: str = "finetune.template") -> None:
    if template not in TEMPLATES:
        raise ValueError(f"{key}: expected one of {', '.join(TEMPLATES)}, got {template!r}")


def user_prompt(slow: str, template: str, score: int | str, conditioned_template: str | None = None) -> str:
    """The user turn for `slow` under `template`; `score` fills the conditioned template's {pctile}."""
    check_template(template)
    if template == "plain":
        return render(load_template("plain_query"), slow=slow.strip("\n"))
    if conditioned_template is None:
        raise ValueError("finetune.template: conditioned needs PIE's pctile template (load_conditioned_template)")
    # str.replace rather than str.format: code is full of braces
    return conditioned_template.replace("{pctile}", str(score)).replace("{src_code}", slow.strip("\n"))


def assistant_answer(fast: str) -> str:
    return f"```python\n{fast.strip(chr(10))}\n```"


def prompt_messages(slow: str, template: str, score: int | str = TARGET_PCTILE,
                    conditioned_template: str | None = None) -> tuple[Message, ...]:
    """(system, user): what the fine-tuned model is asked, at training and at test time (score 10)."""
    return (
        {"role": "system", "content": load_template("system").strip()},
        {"role": "user", "content": user_prompt(slow, template, score, conditioned_template)},
    )


def training_messages(slow: str, fast: str, score: int, template: str,
                      conditioned_template: str | None = None) -> tuple[Message, ...]:
    """(system, user, assistant) of one training record."""
    return prompt_messages(slow, template, score, conditioned_template) + (
        {"role": "assistant", "content": assistant_answer(fast)},
    )


def chat_jsonl_line(messages: tuple[Message, ...]) -> str:
    """One line of OpenAI's chat fine-tuning format."""
    return json.dumps({"messages": [{"role": m["role"], "content": m["content"]} for m in messages]},
                      ensure_ascii=False, sort_keys=True)


def conditioned_template_for(template: str, templates_dir: str | Path) -> str | None:
    """PIE's pctile template when `template` is conditioned, else None."""
    return load_conditioned_template(templates_dir) if template == "conditioned" else None
