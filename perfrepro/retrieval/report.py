"""eval_retrieval's outputs from a `Comparison`: the DVC metrics (headline numbers per retriever on
held-out), the full results (every k, both evaluation sets, what trained each retriever), the
Hit@k plot rows and the markdown tables."""

from __future__ import annotations

from typing import Any, Sequence

from tabulate import tabulate

from perfrepro.retrieval.comparison import Comparison
from perfrepro.retrieval.evaluation import ModelRow, metric_key

HEADLINE = ("hit@1", "hit@10", "mrr@10")


def headline(row: ModelRow) -> dict[str, float]:
    out = {k: row.metrics[k] for k in HEADLINE if k in row.metrics}
    if "hit@1" in row.intervals:
        out["hit@1_low"], out["hit@1_high"] = row.intervals["hit@1"]
    return out


def headline_metrics(comparison: Comparison) -> dict[str, Any]:
    """{"retrieval": {<model key>: headline}, "retrieval_best": {"hit@1": ...}}: `retrieval_best.hit@1`
    is the best Hit@1 of the rows not trained under the study protocol, one column that
    `dvc exp show` can show beside pass1 and NET (the per-model keys are many)."""
    honest = [row.metrics["hit@1"] for row in comparison.heldout if row.protocol != "study" and "hit@1" in row.metrics]
    best = {"retrieval_best": {"hit@1": max(honest)}} if honest else {}
    return {"retrieval": {row.key: headline(row) for row in comparison.heldout}, **best}


def full_results(comparison: Comparison) -> dict[str, Any]:
    def rows(rows: Sequence[ModelRow]) -> dict[str, Any]:
        return {row.key: {"display": row.display, "protocol": row.protocol, "metrics": row.metrics,
                          "intervals": {k: list(v) for k, v in row.intervals.items()}} for row in rows}

    ks = list(comparison.settings.ks)
    return {
        "ks": ks,
        "heldout": rows(comparison.heldout),
        "ooc": rows(comparison.ooc),
        "training": {metric_key(entry.display): entry.training.as_dict() for entry in comparison.entries},
        "info": {"queries": comparison.n_queries, "documents": comparison.n_documents,
                 "ooc_queries": comparison.n_ooc_queries,
                 "ooc_documents": comparison.n_documents + comparison.n_ooc_queries if comparison.has_ooc else 0,
                 f"chroma_recall_at_{max(ks)}": comparison.index_recall},
    }


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


def training_warnings(comparison: Comparison) -> list[str]:
    """A warning per trained retriever that saw fewer pairs/triplets than `min_training_pairs`, and why."""
    least = comparison.settings.min_training_pairs
    warnings = []
    for entry in comparison.entries:
        n = max(int(entry.training.n_train or 0), 0)
        if entry.training.trained and n < least:
            why = entry.training.data or ""
            if "slow-variant" in why:
                why += "; too few LLM-made slow variants (negatives.limit, or the negatives stage's failures)"
            warnings.append(f"**{entry.display}** trained on only {n} pairs/triplets (< retrieval.min_training_pairs "
                            f"{least}): {why}")
    return warnings


def markdown_report(comparison: Comparison) -> str:
    """metrics/retrieval.md: the held-out and out-of-corpus tables, what trained each retriever,
    warnings and notes."""
    settings, n_documents = comparison.settings, comparison.n_documents
    top = max(settings.ks)
    text = (
        f"# Retrieval\n\n## Held-out: {comparison.n_queries} test-split queries (problem statements) against all "
        f"{n_documents} corpus solutions\n\n"
        f"Dense rows search chromadb (cosine, exhaustive: recall@{top} against exact search "
        f"{comparison.index_recall:.4f}); encoder_mnrl its own index of the "
        f"re-embedded corpus; bm25 a bm25s index; hybrid fuses bm25 and its dense variant by reciprocal rank. "
        f"Intervals: 95% bootstrap over queries (seed {settings.seed}). Everything trains on the train split only "
        f"(`heldout`), except rows labelled `[study protocol]`, trained on every row, the test queries included, "
        f"as the study's notebooks did.\n\n"
    ) + markdown_table(comparison.heldout, settings.ks) + "\n"
    if comparison.has_ooc:
        text += (
            f"\n## Out-of-corpus: {comparison.n_ooc_queries} efficiency-task statements against the {n_documents} "
            f"corpus solutions plus the tasks' {comparison.n_ooc_queries} canonical solutions\n\n"
            f"No variant trained on these problems; this evaluation set is never the index generate reads.\n\n"
            + markdown_table(comparison.ooc, settings.ks) + "\n"
        )
    text += "\n## What trained each variant\n\n| Model | training pairs | of which triplets | trained on |\n|---|---|---|---|\n"
    text += "".join(f"| {entry.display} | {entry.training.n_train or 0} | {entry.training.n_triplets or 0} | "
                    f"{entry.training.data} |\n" for entry in comparison.entries)
    warnings = training_warnings(comparison)
    if warnings:
        text += "\nWarnings:\n\n" + "".join(f"- {w}\n" for w in warnings)
    if comparison.notes:
        text += "\nNotes:\n\n" + "".join(f"- {n}\n" for n in comparison.notes)
    return text
