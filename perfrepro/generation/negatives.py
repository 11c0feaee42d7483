"""LLM-made slow variants of corpus solutions: the study's "non-optimal solution" negatives.

For the first `limit` train problems in a seeded order, the model is asked for a rewrite that
keeps the solution's behaviour but is deliberately less efficient. Each row is
``{"id", "slow_solution" (code or None), "status"}`` with status
ok | no_code (no block defines the solution's entry point) | unchanged (the same program back) |
syntax_error | error (the request failed).
"""

from __future__ import annotations

import ast
import random
from typing import Any, Sequence

from perfrepro.generation.client import ChatBackend, ChatRequest, ChatResult
from perfrepro.generation.extract import class_entry_point, extract_code, main_entry, python_blocks
from perfrepro.generation.prompts import negative_messages
from perfrepro.records import CorpusPair

STATUSES = ("ok", "no_code", "unchanged", "syntax_error", "error")


def select_pairs(pairs: Sequence[CorpusPair], limit: int, seed: int) -> list[CorpusPair]:
    """The first `limit` pairs of a seeded shuffle of the sorted problem ids (a larger limit keeps
    the smaller one's choice, so its cached answers are reused)."""
    if limit <= 0:
        return []
    by_id = {pair.id: pair for pair in pairs}
    ids = sorted(by_id)
    random.Random(seed).shuffle(ids)
    return [by_id[pair_id] for pair_id in ids[:limit]]


def negative_requests(pairs: Sequence[CorpusPair]) -> list[ChatRequest]:
    return [ChatRequest(id=pair.id, messages=negative_messages(pair.solution)) for pair in pairs]


def _normalised(code: str) -> str:
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError):
        return "\n".join(line.rstrip() for line in code.strip().splitlines())


def slow_variant_row(pair: CorpusPair, result: ChatResult) -> dict[str, Any]:
    """The stored row for one answer (see the module docstring for the statuses)."""
    if not result.ok:
        return {"id": pair.id, "slow_solution": None, "status": "error"}
    entry = main_entry(pair.solution)
    if entry == "Solution":
        entry = class_entry_point(pair.solution)
    if entry is not None:
        code = extract_code(result.text, entry)
    else:
        blocks = python_blocks(result.text or "")
        code = blocks[0] if blocks else None
    if code is None:
        return {"id": pair.id, "slow_solution": None, "status": "no_code"}
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return {"id": pair.id, "slow_solution": None, "status": "syntax_error"}
    if _normalised(code) == _normalised(pair.solution):
        return {"id": pair.id, "slow_solution": None, "status": "unchanged"}
    return {"id": pair.id, "slow_solution": code, "status": "ok"}


def make_slow_variants(pairs: Sequence[CorpusPair], backend: ChatBackend) -> list[dict[str, Any]]:
    """Ask `backend` for one slow variant per pair; rows in the order of `pairs`."""
    results = backend.complete_many(negative_requests(pairs), desc="negatives")
    return [slow_variant_row(pair, result) for pair, result in zip(pairs, results)]
