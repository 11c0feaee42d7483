"""Optimization prompts in PIE's shapes, with retrieved slow -> fast examples.

- ``plain``: PIE's few-shot shape (pie-perf), each example as
  ``# slower version:`` / slow code / ``# optimized version of the same code:`` / fast code, then
  the task's slow program in the same shape with the fast side left open. The examples come in
  ascending similarity, so the most similar one sits right above the query.
- ``conditioned``: PIE's performance-conditioned template (LearningOpt/pie
  ``code_opt_w_speedup_pctile.json``, read from the raw data) filled at 10/10, the score PIE
  asks for at test time; examples use the same template with their fast side filled in.

Both open with one instruction line (keep the entry point, answer in a python block), since the
model is a chat model rather than PIE's completion models. Template text lives in
``perfrepro/optimization/templates`` and the PIE data directory, not in code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from perfrepro.generation.prompts import package_template, render

PROMPT_STYLES = ("plain", "conditioned")
CONDITIONED_TEMPLATE_FILE = "code_opt_w_speedup_pctile.json"
TARGET_PCTILE = "10"  # PIE generates at the top score, "10/10"


def load_template(name: str) -> str:
    """The text of ``perfrepro/optimization/templates/<name>.txt``."""
    return package_template("perfrepro.optimization", name)


def load_conditioned_template(templates_dir: str | Path) -> str:
    """PIE's ``prompt_no_input`` string with ``{src_code}`` and ``{pctile}`` placeholders."""
    path = Path(templates_dir) / CONDITIONED_TEMPLATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        template = data["prompt_no_input"]
    except FileNotFoundError:
        raise FileNotFoundError(f"PIE template {path}: not found (it ships in data/raw/pie/templates)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"PIE template {path}: expected JSON with a 'prompt_no_input' string ({exc})") from None
    if "{src_code}" not in template or "{pctile}" not in template:
        raise ValueError(f"PIE template {path}: 'prompt_no_input' lacks {{src_code}} or {{pctile}}")
    return template


def _conditioned(template: str, slow: str) -> str:
    # str.replace rather than str.format: code is full of braces
    return template.replace("{pctile}", TARGET_PCTILE).replace("{src_code}", slow.strip("\n"))


def optimization_user_prompt(
    slow_program: str,
    entry_point: str,
    examples: Sequence[tuple[str, str]] = (),
    style: str = "plain",
    conditioned_template: str | None = None,
) -> str:
    """The user message. `examples` are (slow, fast) pairs, least similar first."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"pie.prompt_style: expected one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    parts = [render(load_template("instructions"), entry_point=entry_point)]
    if style == "plain":
        for slow, fast in examples:
            parts.append(render(load_template("plain_example"), slow=slow.strip("\n"), fast=fast.strip("\n")))
        parts.append(render(load_template("plain_query"), slow=slow_program.strip("\n")))
    else:
        if conditioned_template is None:
            raise ValueError("pie.prompt_style: conditioned needs PIE's pctile template (load_conditioned_template)")
        for slow, fast in examples:
            parts.append(_conditioned(conditioned_template, slow) + fast.strip("\n") + "\n\n")
        parts.append(_conditioned(conditioned_template, slow_program))
    return "".join(parts)


def optimization_messages(user_prompt: str) -> tuple[Mapping[str, str], ...]:
    """The chat: the system message, then `user_prompt` (optimization_user_prompt's)."""
    return ({"role": "system", "content": load_template("system").strip()}, {"role": "user", "content": user_prompt})
