"""`perfrepro table`: the requested track's tables across experiments, with markdown headings."""

from __future__ import annotations

from typing import Sequence

from perfrepro.report.efficiency import efficiency_experiment_rows, efficiency_paired_rows, efficiency_table_from_dicts
from perfrepro.report.experiments import ExperimentResult
from perfrepro.report.optimization import (OPTIMIZATION_PAIRED_HEADERS, OPTIMIZATION_PAIRED_NOTE,
                                           optimization_experiment_rows, optimization_paired_rows,
                                           optimization_table_from_dicts)
from perfrepro.report.paired import PAIRED_HEADERS, PAIRED_NOTE, paired_table
from perfrepro.report.retrieval_tables import retrieval_experiment_tables


def _with_pairs(body: str | None, paired: Sequence, note: str, fmt: str, headers: Sequence[str] = PAIRED_HEADERS
                ) -> str | None:
    """A track's table followed by its paired comparison, when it has both."""
    if body and paired:
        body += f"\n\n{note}\n\n{paired_table(paired, fmt, headers)}"
    return body


def study_tables(results: Sequence[ExperimentResult], track: str = "all", fmt: str = "github") -> str:
    """The requested track's table(s) with markdown headings; a track without results says so."""
    sections = []
    if track in ("efficiency", "all"):
        rows = efficiency_experiment_rows(results)
        body = efficiency_table_from_dicts(rows, fmt) if rows else None
        sections.append(("Efficiency", _with_pairs(body, efficiency_paired_rows(results), PAIRED_NOTE, fmt)))
    if track in ("retrieval", "all"):
        sections.append(("Retrieval", retrieval_experiment_tables(results, fmt) or None))
    if track in ("optimization", "all"):
        rows = optimization_experiment_rows(results)
        body = optimization_table_from_dicts(rows, fmt) if rows else None
        sections.append(("Optimization (PIE)", _with_pairs(body, optimization_paired_rows(results),
                                                           OPTIMIZATION_PAIRED_NOTE, fmt, OPTIMIZATION_PAIRED_HEADERS)))
    return "\n\n".join(f"## {title}\n\n{body if body else '(no results)'}" for title, body in sections) + "\n"
