"""The retrieval track's table across experiments (`perfrepro table`): the study's layout, grouped by
k, one row per model in eval_retrieval's order."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tabulate import tabulate

from perfrepro.report.experiments import ExperimentResult
from perfrepro.report.formatting import dotted_get, format_value


RETRIEVAL_BASE_KEY = "base_all-MiniLM-L6-v2"
RETRIEVAL_BASE_NAME = "base all-MiniLM-L6-v2"
RETRIEVAL_HEADERS = ("Model Type", "k", "Average Hit Rate @k", "Mean Reciprocal Rank @k",
                     "Mean Average Precision @k", "Average NDCG @k")


def retrieval_display_names(params: Mapping[str, Any], keys: Sequence[str]) -> list[tuple[str, str]]:
    """(metrics key, display name) in eval_retrieval's order: the base model, the adapters of
    `retrieval.protocol` in params order, those of the other protocol, then unknown keys."""
    from perfrepro.retrieval.evaluation import metric_key

    variants = list(dotted_get(params, "adapters", {}) or {})
    heldout = [(metric_key(v), v) for v in variants]
    study = [(metric_key(f"{v} [study protocol]"), f"{v} [study protocol]") for v in variants]
    groups = study + heldout if dotted_get(params, "retrieval.protocol") == "study" else heldout + study
    ordered = [(RETRIEVAL_BASE_KEY, RETRIEVAL_BASE_NAME), *groups]
    present = set(keys)
    out = [(key, name) for key, name in ordered if key in present]
    known = {key for key, _ in out}
    return out + [(key, key) for key in keys if key not in known]


def retrieval_ks(models: Mapping[str, Mapping[str, float]]) -> list[int]:
    return sorted({int(name.split("@", 1)[1]) for row in models.values() for name in row
                   if name.startswith("hit@") and name.split("@", 1)[1].isdigit()})


def retrieval_rows(params: Mapping[str, Any], models: Mapping[str, Mapping[str, float]],
                   digits: int = 4) -> list[list[Any]]:
    """The study's layout, grouped by k: [model, k, Hit@k, MRR@k, MAP@k, NDCG@k] per model and k."""
    names = retrieval_display_names(params, list(models))
    rows = []
    for k in retrieval_ks(models):
        for key, name in names:
            values = [models[key].get(f"{m}@{k}") for m in ("hit", "mrr", "map", "ndcg")]
            rows.append([name, k, *(format_value(v, digits) for v in values)])
    return rows


def retrieval_experiment_tables(results: Sequence[ExperimentResult], fmt: str = "github",
                                metrics_path: str = "metrics/retrieval.json") -> str:
    """One retrieval table per distinct retrieval result (usually one: `shots` or `llm.*`
    experiments do not change retrieval), headed by the experiments that share it."""
    groups: list[tuple[list[str], ExperimentResult, Mapping[str, Any]]] = []
    for result in results:
        models = dotted_get(result.metrics.get(metrics_path) or {}, "retrieval")
        if not isinstance(models, Mapping) or not models:
            continue
        for names, _, seen in groups:
            if seen == models:
                names.append(result.name)
                break
        else:
            groups.append(([result.name], result, models))
    parts = []
    for names, result, models in groups:
        table = tabulate(retrieval_rows(result.params, models), headers=list(RETRIEVAL_HEADERS), tablefmt=fmt,
                         disable_numparse=True)
        parts.append(table if len(groups) == 1 else f"Experiments: {', '.join(names)}\n\n{table}")
    return "\n\n".join(parts)
