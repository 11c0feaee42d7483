"""eval_retrieval stage: Hit/MRR/MAP/NDCG@k of the base model and every adapter variant over the
test-split queries against the chroma index of all solutions.

Writes metrics/retrieval.json (DVC metrics), metrics/retrieval.md (the study's table layout) and
metrics/retrieval_hit_at_k.json (DVC plot: hit rate vs k per model). Rows: the base model, every
variant under `retrieval.protocol`, then every variant under the other protocol; rows trained
under the study protocol (test rows included in training) are labelled "[study protocol]".
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from perfrepro.config import load_params
from perfrepro.embeddings.adapter import PROTOCOLS, adapter_stem, load_variant
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.index.chroma import ChromaIndex
from perfrepro.index.exact import ExactIndex
from perfrepro.io import atomic_outputs, read_json, write_json, write_text
from perfrepro.logs import setup_logging
from perfrepro.retrieval.evaluation import evaluate_models, hit_plot_rows, markdown_table, metric_key, metrics_json

log = logging.getLogger("eval_retrieval")

BASE = "base all-MiniLM-L6-v2"


def display_name(variant: str, protocol: str) -> str:
    return f"{variant} [study protocol]" if protocol == "study" else variant


def variant_order(adapters_dir: Path, params_path: Path) -> list[str]:
    """Variants found on disk, in params.yaml order (only the names are read from `adapters`)."""
    found = sorted(p.name for p in adapters_dir.iterdir() if p.is_dir()) if adapters_dir.is_dir() else []
    try:
        listed = list((yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}).get("adapters") or {})
    except OSError:
        listed = []
    return [v for v in listed if v in found] + [v for v in found if v not in listed]


def main(argv=None) -> int:
    setup_logging("eval_retrieval")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--index", type=Path, default=Path("data/index"))
    parser.add_argument("--adapters", type=Path, default=Path("data/adapters"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/retrieval.json"))
    parser.add_argument("--table", type=Path, default=Path("metrics/retrieval.md"))
    parser.add_argument("--plot", type=Path, default=Path("metrics/retrieval_hit_at_k.json"))
    args = parser.parse_args(argv)

    retrieval = load_params(args.params).retrieval
    ks = sorted(set(retrieval.ks))
    embeddings = EmbeddingSet.load(args.embeddings)
    index = ChromaIndex.open(args.index)
    if len(index) != len(embeddings.ids):
        raise SystemExit(f"{args.index}: {len(index)} documents but {len(embeddings.ids)} corpus pairs; rerun build_index")
    test_rows = embeddings.rows("test")
    if len(test_rows) == 0:
        raise SystemExit(f"{args.embeddings}: no test-split queries")
    queries = embeddings.problems[test_rows]
    relevant = [embeddings.ids[i] for i in test_rows]

    protocols = [retrieval.protocol] + [p for p in PROTOCOLS if p != retrieval.protocol]
    variants = variant_order(args.adapters, args.params)
    models = [(BASE, None, None)]
    info: dict[str, dict[str, float]] = {}
    notes = []
    for protocol in protocols:
        for variant in variants:
            stem = adapter_stem(args.adapters, variant, protocol)
            if not Path(f"{stem}.json").exists():
                notes.append(f"{display_name(variant, protocol)}: not trained ({stem}.json missing)")
                continue
            adapter = load_variant(args.adapters, variant, protocol)
            models.append((display_name(variant, protocol), protocol, adapter.apply))
            train_log = read_json(f"{stem}.json").get("log", {})
            info[metric_key(display_name(variant, protocol))] = {
                "n_train": train_log.get("n_train", 0), "n_triplets": train_log.get("n_triplets", 0),
            }
            if adapter.hyperparameters.get("negatives") == "slow":
                notes.append(f"{display_name(variant, protocol)}: trained on {train_log.get('data', '?')}")

    rows = evaluate_models(index, queries, relevant, ks, models)

    # Chroma is approximate: report how much of the exact top-k it returns for the base queries.
    kmax = max(ks)
    exact = ExactIndex(embeddings.ids, embeddings.solutions).query(queries, kmax)
    approx = index.query(queries, kmax, include_documents=False)
    overlap = sum(len({a for a, *_ in x} & {e for e, *_ in y}) for x, y in zip(approx, exact))
    recall = overlap / (kmax * len(queries))

    extra = {"queries": len(relevant), "documents": len(embeddings.ids), f"chroma_recall_at_{kmax}": recall}
    result = metrics_json(rows)
    result["retrieval_info"] = {**extra, "training": info}
    plot_rows = hit_plot_rows(rows, ks)
    header = (
        f"# Retrieval: {len(relevant)} test-split queries (problem statements) against all "
        f"{len(embeddings.ids)} corpus solutions (chromadb, cosine; recall@{kmax} vs exact search {recall:.4f}).\n\n"
        f"Adapters train on the train split only (`heldout`), except rows labelled `[study protocol]`, "
        f"trained on every row, the test queries included, as the study's notebooks did.\n\n"
    )
    footer = "\n\nNotes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "\n"
    with atomic_outputs(args.metrics, args.plot, args.table) as (metrics_out, plot_out, table_out):
        write_json(metrics_out, result)
        write_json(plot_out, plot_rows)
        write_text(table_out, header + markdown_table(rows, ks) + footer)
    log.info("wrote %s, %s, %s (%d models x %d ks)", args.metrics, args.table, args.plot, len(rows), len(ks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
