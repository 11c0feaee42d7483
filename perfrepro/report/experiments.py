"""Experiments as `perfrepro table` sees them: parsed `dvc exp show --json` (or the workspace's params
and metrics files), and the merging of rows that several experiments share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment (or the workspace / a commit): its name, params.yaml and metrics files."""

    name: str
    rev: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]  # metrics file path -> parsed content
    per_task: Mapping[str, Any] = field(default_factory=dict)  # per-task file path -> parsed content


def _rev_result(entry: Mapping[str, Any], fallback_name: str) -> ExperimentResult | None:
    data = entry.get("data") or {}
    if entry.get("error") or data.get("status") in ("Queued", "Running", "Failed"):
        return None
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = {path: (content or {}).get("data") for path, content in (data.get("metrics") or {}).items()}
    metrics = {path: value for path, value in metrics.items() if isinstance(value, Mapping)}
    if not metrics:
        return None
    rev = str(entry.get("rev") or data.get("rev") or "")
    return ExperimentResult(str(entry.get("name") or fallback_name or rev[:7]), rev, params, metrics)


def experiments_from_exp_show(payload: Sequence[Mapping[str, Any]]) -> list[ExperimentResult]:
    """Every entry of `dvc exp show --json` that has metrics: the workspace, each commit and each
    experiment under it, in that order. Queued, running and failed experiments are left out."""
    results: list[ExperimentResult] = []
    for commit in payload:
        found = _rev_result(commit, str(commit.get("rev") or ""))
        if found:
            results.append(found)
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                found = _rev_result(rev, str(exp.get("name") or ""))
                if found:
                    results.append(found)
    return results


def dedupe_with(rows: Sequence[tuple[str, Any, Mapping[str, Any], str, Any]]) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(name, sort key, values, experiment, payload) -> unique (name, values, payload), sorted. Rows
    merge only when name (which says where the code came from) and values are equal; a name shared
    by different values gets the names of the experiments that gave each value appended."""
    unique: list[tuple[str, Any, Mapping[str, Any], str, Any]] = []
    experiments: list[list[str]] = []
    for row in rows:
        same = next((i for i, u in enumerate(unique) if row[0] == u[0] and row[2] == u[2]), None)
        if same is None:
            unique.append(row)
            experiments.append([row[3]])
        elif row[3] not in experiments[same]:
            experiments[same].append(row[3])
    counts = {u[0]: sum(v[0] == u[0] for v in unique) for u in unique}
    order = sorted(range(len(unique)), key=lambda i: unique[i][1])
    return [(f"{unique[i][0]} [{', '.join(experiments[i])}]" if counts[unique[i][0]] > 1 else unique[i][0],
             unique[i][2], unique[i][4]) for i in order]


def dedupe(rows: Sequence[tuple[str, Any, Mapping[str, Any], str]]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(name, values) for name, values, _ in dedupe_with([(*row, None) for row in rows])]
