"""The evaluation loop: test-split queries against the index of all corpus solutions."""

from __future__ import annotations

import logging
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from tqdm import tqdm

from perfrepro.retrieval.metrics import mean_metrics, rank_of

log = logging.getLogger(__name__)


class SearchIndex(Protocol):
    def query(self, query_embeddings: np.ndarray, k: int) -> list[list[tuple[str, float, Any]]]: ...


@dataclass(frozen=True)
class ModelRow:
    key: str  # metrics-file key: no dots (DVC nests on them)
    display: str  # name in the markdown table
    metrics: dict[str, float]
    protocol: str | None  # None for the base model
    intervals: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # 95% bootstrap over queries


def metric_key(name: str) -> str:
    """A DVC-friendly key: dots (which DVC nests on), spaces and brackets become underscores,
    and the "[study protocol]" label becomes a "__study" suffix."""
    name = name.replace(" [study protocol]", "__study")
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")


def ranks_for(
    index: SearchIndex, query_embeddings: np.ndarray, relevant_ids: Sequence[str], k: int, batch_size: int = 256
) -> list[int | None]:
    """Rank of each query's relevant document within the index's top k (None when absent)."""
    ranks: list[int | None] = []
    for start in range(0, len(relevant_ids), batch_size):
        hits = index.query(query_embeddings[start : start + batch_size], k)
        for retrieved, relevant in zip(hits, relevant_ids[start : start + batch_size]):
            ranks.append(rank_of([doc_id for doc_id, *_ in retrieved], relevant))
    return ranks


def evaluate(
    index: SearchIndex,
    query_embeddings: np.ndarray,
    relevant_ids: Sequence[str],
    ks: Sequence[int],
    adapter: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Hit/MRR/MAP/NDCG@k for every k; `adapter` (e.g. LinearAdapter.apply) maps the queries first."""
    queries = np.asarray(query_embeddings, dtype=np.float32)
    if adapter is not None:
        queries = adapter(queries)
    ranks = ranks_for(index, queries, list(relevant_ids), max(ks))
    return mean_metrics(ranks, ks)


def evaluate_models(
    index: SearchIndex,
    query_embeddings: np.ndarray,
    relevant_ids: Sequence[str],
    ks: Sequence[int],
    models: Sequence[tuple[str, str | None, Callable[[np.ndarray], np.ndarray] | None]],
    show_progress: bool = True,
) -> list[ModelRow]:
    """Evaluate each (display name, protocol, adapter-or-None) on the same queries and index."""
    rows = []
    for display, protocol, adapter in tqdm(models, desc="evaluate", unit="model", disable=not show_progress):
        metrics = evaluate(index, query_embeddings, relevant_ids, ks, adapter)
        rows.append(ModelRow(metric_key(display), display, metrics, protocol))
        log.info("%-55s hit@1 %.4f", display, metrics[f"hit@{min(ks)}"])
    return rows


def metrics_json(rows: Sequence[ModelRow], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"retrieval": {"<model_key>": {"hit@1": ..., ...}}} with flat, dot-free model keys."""
    out: dict[str, Any] = {"retrieval": {row.key: dict(row.metrics) for row in rows}}
    if extra:
        out["retrieval_info"] = extra
    return out


def hit_plot_rows(rows: Sequence[ModelRow], ks: Sequence[int]) -> list[dict[str, Any]]:
    """Rows for the DVC plot `metrics/retrieval_hit_at_k.json`: one {model, k, hit} per model and k,
    with the fields of `hit_plot_panels` (the template draws one panel per protocol)."""
    return [{"model": row.display, "k": k, "hit": row.metrics[f"hit@{k}"], **panel}
            for row in rows for panel in hit_plot_panels(row) for k in ks]


def hit_plot_panels(row: ModelRow) -> list[dict[str, str]]:
    """{variant, protocol} per panel the row is drawn in: `variant` is the name without the
    "[study protocol]" label (one colour per variant across panels); the base model, trained on
    nothing, is drawn in both panels as the baseline; other rows without a protocol are heldout."""
    variant = row.display.replace(" [study protocol]", "")
    if row.protocol is None:
        return [{"variant": variant, "protocol": p} for p in ("heldout", "study")]
    return [{"variant": variant, "protocol": row.protocol}]


def markdown_table(rows: Sequence[ModelRow], ks: Sequence[int], digits: int = 4) -> str:
    """The study's layout: Model Type | k | Average Hit Rate @k | MRR@k | MAP@k | NDCG@k, grouped by k."""
    from tabulate import tabulate

    headers = ["Model Type", "k", "Average Hit Rate @k", "Mean Reciprocal Rank @k",
               "Mean Average Precision @k", "Average NDCG @k"]
    with_ci = any(row.intervals for row in rows)
    if with_ci:
        headers.insert(3, "Hit@k 95% CI")

    def line(row: ModelRow, k: int) -> list:
        values = [round(row.metrics[f"{m}@{k}"], digits) for m in ("hit", "mrr", "map", "ndcg")]
        if with_ci:
            low, high = row.intervals.get(f"hit@{k}", (float("nan"), float("nan")))
            values.insert(1, f"[{low:.{digits}f}, {high:.{digits}f}]")
        return [row.display, k, *values]

    table = [line(row, k) for k in ks for row in rows]
    return tabulate(table, headers=headers, tablefmt="github", floatfmt=f".{digits}f")


# ---- ranked lists: any retriever (dense, BM25, fused), with bootstrap intervals ----------------

def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = 60, depth: int | None = None) -> list[str]:
    """Reciprocal-rank fusion (Cormack et al. 2009): score(d) = sum over lists of 1 / (k + rank),
    ranks 1-based within each list's first `depth` ids; highest score first, ties by id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for position, doc_id in enumerate(ranking[:depth] if depth else ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + position)
    return [doc_id for doc_id, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def per_query_values(ranks: Sequence[int | None], ks: Sequence[int]) -> dict[str, list[float]]:
    """{'hit@1': [1.0, 0.0, ...], ...}: each metric per query (their means are `mean_metrics`)."""
    from perfrepro.retrieval.metrics import METRICS, PER_QUERY

    return {f"{name}@{k}": [PER_QUERY[name](r, k) for r in ranks] for k in ks for name in METRICS}


def evaluate_rankings(
    ranked_ids: Sequence[Sequence[str]],
    relevant_ids: Sequence[str],
    ks: Sequence[int],
    *,
    interval_keys: Sequence[str] = (),
    seed: int = 0,
    n_resamples: int = 2000,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Means of Hit/MRR/MAP/NDCG@k over queries, and a 95% bootstrap interval over queries for each
    of `interval_keys` (e.g. "hit@1"), seeded so the same ranks give the same interval."""
    from perfrepro.metrics.uncertainty import bootstrap_interval

    if len(ranked_ids) != len(relevant_ids):
        raise ValueError(f"evaluate_rankings: {len(ranked_ids)} ranked lists for {len(relevant_ids)} queries")
    ranks = [rank_of(list(r)[: max(ks)], rel) for r, rel in zip(ranked_ids, relevant_ids)]
    metrics = mean_metrics(ranks, ks)
    values = per_query_values(ranks, ks)
    intervals = {key: bootstrap_interval(values[key], n_resamples=n_resamples, seed=seed) for key in interval_keys}
    return metrics, intervals
