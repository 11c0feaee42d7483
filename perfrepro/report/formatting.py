"""Cells and row names shared by every track's tables: fixed-point values, intervals, p-values,
and where a row's code came from."""

from __future__ import annotations

import math
from typing import Any, Mapping


CI_SUFFIX = " 95% CI"
TABLE_FORMATS = {"md": "github", "console": "simple"}
# `llm.backend: recorded` replays LeetCodeDataset's `response` field: that is where its code came from
RECORDED_SOURCE = "leetcodedataset-response"
REFERENCE_SUFFIX = " (reference)"


def code_source(model: str, llm_backend: str = "openai", samples_source: str | None = None) -> str:
    """Where a row's code came from: `llm.model` for a live model, RECORDED_SOURCE for recorded,
    ``<model> (<samples.backend.source>)`` for a samples file."""
    if llm_backend == "samples":
        return f"{model} ({samples_source or 'samples file'})"
    return RECORDED_SOURCE if llm_backend == "recorded" else model


def samples_source(params: Mapping[str, Any]) -> str | None:
    """``samples.backend.source`` of a params mapping (where llm.backend: samples' code came from)."""
    source = dotted_get(params, "samples.backend.source")
    return str(source) if source is not None else None


def format_value(value: Any, digits: int = 2) -> str:
    """Fixed-point like the seed table; large values (instruction counts) in scientific form."""
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 10 ** -digits):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def format_interval(low: Any, high: Any, digits: int = 2) -> str:
    """`[low, high]`, or "-" when there is no interval (no task in the ratios)."""
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return "-"
    return f"[{format_value(low, digits)}, {format_value(high, digits)}]"


def format_cell(get, name: Any, digits: int = 2) -> str:
    """One cell: a field's value, or for a (low, high) pair of fields the interval."""
    if isinstance(name, tuple):
        return format_interval(get(name[0]), get(name[1]), digits)
    return format_value(get(name), digits)


def format_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def dotted_get(mapping: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    value: Any = mapping
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value
