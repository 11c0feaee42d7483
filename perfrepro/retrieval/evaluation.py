"""Scoring retrievers on an evaluation set, in the manner of BEIR's `EvaluateRetrieval.evaluate` and
sentence-transformers' InformationRetrievalEvaluator: retrieve, then compute the metrics over
plain dicts. `evaluate` scores rankings against the relevant documents and knows nothing of how
the rankings were made; `evaluate_retrievers` runs each retriever's `rank` and scores it."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from perfrepro.metrics.uncertainty import bootstrap_interval
from perfrepro.retrieval.metrics import METRICS, PER_QUERY, mean_metrics, rank_of
from perfrepro.retrieval.retrievers import Rankings, Retriever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSet:
    name: str  # e.g. "heldout", "ooc"
    queries: dict[str, str]  # query id -> text
    relevant: dict[str, str]  # query id -> its one relevant document id (the qrels)

    def __post_init__(self) -> None:
        if set(self.queries) != set(self.relevant):
            raise ValueError(f"evaluation set {self.name}: queries and relevant documents name different query ids")
        if not self.queries:
            raise ValueError(f"evaluation set {self.name}: no queries")


@dataclass(frozen=True)
class Candidate:
    display: str  # name in the tables
    protocol: str | None  # the training protocol; None for the base model
    retriever: Retriever


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


def per_query_values(ranks: Sequence[int | None], ks: Sequence[int]) -> dict[str, list[float]]:
    """{'hit@1': [1.0, 0.0, ...], ...}: each metric per query (their means are `mean_metrics`)."""
    return {f"{name}@{k}": [PER_QUERY[name](r, k) for r in ranks] for k in ks for name in METRICS}


def evaluate(
    relevant: Mapping[str, str],
    results: Rankings,
    ks: Sequence[int],
    *,
    interval_keys: Sequence[str] = (),
    seed: int = 0,
    n_resamples: int = 2000,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Means over queries (in `relevant`'s order) of Hit/MRR/MAP/NDCG@k, and a 95% bootstrap
    interval over queries for each of `interval_keys` (e.g. "hit@1"), seeded so the same ranks give
    the same interval. `results` must rank every query of `relevant`."""
    missing = [query_id for query_id in relevant if query_id not in results]
    if missing:
        raise ValueError(f"evaluate: no ranking for query {missing[0]!r} ({len(missing)} of {len(relevant)} missing)")
    top = max(ks)
    ranks = [rank_of([doc_id for doc_id, _ in results[query_id][:top]], doc) for query_id, doc in relevant.items()]
    values = per_query_values(ranks, ks)
    intervals = {key: bootstrap_interval(values[key], n_resamples=n_resamples, seed=seed) for key in interval_keys}
    return mean_metrics(ranks, ks), intervals


def evaluate_retrievers(candidates: Iterable[Candidate], evaluation_set: EvaluationSet, ks: Sequence[int], *,
                        depth: int, seed: int) -> list[ModelRow]:
    """One row per candidate: its ranking of the set's queries to `depth`, scored at every k, with
    a Hit@k interval for each k. `candidates` may be a generator, so each loads when its turn comes."""
    rows = []
    for candidate in candidates:
        results = candidate.retriever.rank(evaluation_set.queries, depth)
        metrics, intervals = evaluate(evaluation_set.relevant, results, ks, interval_keys=[f"hit@{k}" for k in ks],
                                      seed=seed)
        rows.append(ModelRow(metric_key(candidate.display), candidate.display, metrics, candidate.protocol, intervals))
        log.info("%-12s %-50s hit@%d %.4f", evaluation_set.name, candidate.display, ks[0], metrics[f"hit@{ks[0]}"])
    return rows


def index_recall(approximate: Rankings, exact: Rankings, k: int) -> float:
    """Share of the exact top-k ids, over all queries, that the approximate top-k also returns."""
    overlap = sum(len({d for d, _ in approximate[q][:k]} & {d for d, _ in exact[q][:k]}) for q in exact)
    return overlap / (k * len(exact))
