"""eval_retrieval stage: Hit/MRR/MAP/NDCG@k, with 95% bootstrap intervals over queries, of the
base model, every linear adapter variant, encoder_mnrl, bm25 and hybrid, on two evaluations:

- held-out: the test-split problem statements against all corpus solutions (each retriever's
  own index: data/index, encoder_mnrl's index, bm25's index);
- out-of-corpus: the efficiency tasks' statements (data/ooc) against the corpus solutions plus
  the tasks' canonical solutions, an evaluation-only set that generate never reads. No variant
  trained on these problems, so a variant that only memorised the corpus falls here.

Writes metrics/retrieval.json (DVC metrics: the headline numbers per model on held-out: Hit@1
with its interval, Hit@10, MRR@10), metrics/retrieval_full.json (every k, both evaluations, what
each variant trained on), metrics/retrieval.md (the tables) and metrics/retrieval_hit_at_k.json
(DVC plot). Rows trained under the study protocol (test rows included) are labelled
"[study protocol]".
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from perfrepro.config import load_params
from perfrepro.environment import fingerprint
from perfrepro.embeddings.adapter import PROTOCOLS, adapter_stem, load_variant
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.index.chroma import ChromaIndex
from perfrepro.index.exact import ExactIndex
from perfrepro.io import read_json, write_json, write_text
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.retrieval.evaluation import (
    ModelRow, evaluate_rankings, hit_plot_rows, markdown_table, metric_key, reciprocal_rank_fusion,
)
from perfrepro.retrieval.retrievers import canonical_id, read_ooc_tasks, retriever_kind

log = logging.getLogger("eval_retrieval")

BASE = "base all-MiniLM-L6-v2"
HEADLINE = ("hit@1", "hit@10", "mrr@10")
Ranked = list[list[str]]


def best_heldout(rows) -> dict:
    """`retrieval_best.hit@1`: the best Hit@1 of the rows not trained under the study protocol, one
    column that `dvc exp show` can show beside pass1 and NET (the per-model keys are many)."""
    honest = [row.metrics["hit@1"] for row in rows if row.protocol != "study" and "hit@1" in row.metrics]
    return {"retrieval_best": {"hit@1": max(honest)}} if honest else {}


def display_name(variant: str, protocol: str) -> str:
    return f"{variant} [study protocol]" if protocol == "study" else variant


def variant_order(adapters_dir: Path, params_path: Path) -> list[str]:
    """Linear adapter variants found on disk, in params.yaml order (only names are read)."""
    found = sorted(p.name for p in adapters_dir.iterdir() if p.is_dir() and retriever_kind(adapters_dir, p.name) == "linear") \
        if adapters_dir.is_dir() else []
    try:
        listed = list((yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}).get("adapters") or {})
    except OSError:
        listed = []
    return [v for v in listed if v in found] + [v for v in found if v not in listed]


def ids_of(hits) -> Ranked:
    return [[doc_id for doc_id, *_ in row] for row in hits]


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--index", type=Path, default=Path("data/index"))
    parser.add_argument("--adapters", type=Path, default=Path("data/adapters"))
    parser.add_argument("--test", type=Path, default=Path("data/prepared/corpus_test.jsonl"))
    parser.add_argument("--ooc", type=Path, default=Path("data/ooc"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/retrieval.json"))
    parser.add_argument("--full", type=Path, default=Path("metrics/retrieval_full.json"))
    parser.add_argument("--table", type=Path, default=Path("metrics/retrieval.md"))
    parser.add_argument("--plot", type=Path, default=Path("metrics/retrieval_hit_at_k.json"))
    args = parser.parse_args(argv)

    params = load_params(args.params)
    retrieval = params.retrieval
    ks = sorted(set(retrieval.ks))
    kmax = max(ks)
    hybrid = params.retrievers.hybrid if params.retrievers is not None else None
    depth = max(kmax, hybrid.depth if hybrid else 0)

    embeddings = EmbeddingSet.load(args.embeddings)
    index = ChromaIndex.open(args.index)
    if len(index) != len(embeddings.ids):
        raise SystemExit(f"{args.index}: {len(index)} documents but {len(embeddings.ids)} corpus pairs; rerun build_index")
    test_rows = embeddings.rows("test")
    if len(test_rows) == 0:
        raise SystemExit(f"{args.embeddings}: no test-split queries")
    queries = embeddings.problems[test_rows]
    relevant = [embeddings.ids[i] for i in test_rows]
    problem_text = {p.id: p.problem for p in read_jsonl(args.test, CorpusPair)} if args.test.exists() else {}

    has_ooc = (args.ooc / "tasks.jsonl").exists()
    ooc_tasks = read_ooc_tasks(args.ooc) if has_ooc else []
    ooc_relevant = [canonical_id(t["id"]) for t in ooc_tasks]
    ooc_doc_ids = list(embeddings.ids) + ooc_relevant
    if has_ooc:
        ooc_queries = np.load(args.ooc / "queries.npy")
        ooc_index = ExactIndex(ooc_doc_ids, np.concatenate([embeddings.solutions, np.load(args.ooc / "canonicals.npy")]))

    # each model: (display, key protocol, kind, heldout ranked ids, ooc ranked ids or None, training info)
    models: list[dict] = []
    notes: list[str] = []

    def dense(display, protocol, kind, apply: Callable | None, info):
        q = apply(queries) if apply else queries
        ooc = ids_of(ooc_index.query(apply(ooc_queries) if apply else ooc_queries, depth)) if has_ooc else None
        models.append(dict(display=display, protocol=protocol, kind=kind, heldout=ids_of(index.query(q, depth, include_documents=False)),
                           ooc=ooc, info=info))

    dense(BASE, None, "base", None, {"n_train": 0, "data": "no training"})
    protocols = [retrieval.protocol] + [p for p in PROTOCOLS if p != retrieval.protocol]
    for protocol in protocols:
        for variant in variant_order(args.adapters, args.params):
            stem = adapter_stem(args.adapters, variant, protocol)
            if not Path(f"{stem}.json").exists():
                notes.append(f"{display_name(variant, protocol)}: not trained ({stem}.json missing)")
                continue
            adapter = load_variant(args.adapters, variant, protocol)
            train_log = read_json(f"{stem}.json").get("log", {})
            info = {k: train_log.get(k, 0) for k in ("n_train", "n_triplets")} | {"data": train_log.get("data", "?")}
            dense(display_name(variant, protocol), protocol, "linear", adapter.apply, info)

    # encoder_mnrl: its own embeddings and index
    encoder_dir = args.adapters / "encoder_mnrl"
    if (encoder_dir / "retriever.json").exists():
        meta = read_json(encoder_dir / "retriever.json")
        tuned = EmbeddingSet.load(encoder_dir / "embeddings")
        if tuned.ids != embeddings.ids:
            raise SystemExit(f"{encoder_dir}: its corpus differs from {args.embeddings}; rerun train_encoder")
        tuned_index = ChromaIndex.open(encoder_dir / "index")
        ooc = None
        if has_ooc:
            tuned_ooc = ExactIndex(ooc_doc_ids, np.concatenate([tuned.solutions, np.load(encoder_dir / "ooc" / "canonicals.npy")]))
            ooc = ids_of(tuned_ooc.query(np.load(encoder_dir / "ooc" / "queries.npy"), depth))
        models.append(dict(display="encoder_mnrl", protocol="heldout", kind="encoder",
                           heldout=ids_of(tuned_index.query(tuned.problems[test_rows], depth, include_documents=False)),
                           ooc=ooc, info={k: meta.get(k) for k in ("n_train", "n_triplets", "data")}))

    bm25_dir = args.adapters / "bm25"
    if (bm25_dir / "retriever.json").exists():
        from perfrepro.index.bm25 import BM25Index

        missing = [cid for cid in relevant if cid not in problem_text]
        if missing:
            raise SystemExit(f"{args.test}: no statement for test id {missing[0]!r} (bm25 needs the texts)")
        heldout = ids_of(BM25Index.load(bm25_dir / "index").query_texts([problem_text[c] for c in relevant], depth, show_progress=True))
        ooc = ids_of(BM25Index.load(bm25_dir / "ooc").query_texts([t["statement"] for t in ooc_tasks], depth)) if has_ooc else None
        models.append(dict(display="bm25", protocol="heldout", kind="bm25", heldout=heldout, ooc=ooc,
                           info={"n_train": 0, "data": "no training (lexical)"}))

    hybrid_dir = args.adapters / "hybrid"
    if (hybrid_dir / "retriever.json").exists():
        meta = read_json(hybrid_dir / "retriever.json")
        by_name = {m["display"]: m for m in models}
        if meta["dense"] not in by_name or "bm25" not in by_name:
            raise SystemExit(f"{hybrid_dir}: needs rows for bm25 and {meta['dense']!r}; run their stages")
        parts = [by_name[meta["dense"]], by_name["bm25"]]

        def fuse(split):
            return [reciprocal_rank_fusion([p[split][i] for p in parts], k=int(meta["rrf_k"]), depth=int(meta["depth"]))
                    for i in range(len(parts[0][split]))]

        models.append(dict(display="hybrid", protocol="heldout", kind="hybrid", heldout=fuse("heldout"),
                           ooc=fuse("ooc") if has_ooc else None,
                           info={"n_train": 0, "data": f"RRF (k={meta['rrf_k']}) of bm25 and {meta['dense']}"}))

    # chroma is searched exhaustively; report how much of the exact top-k it returns for the base queries
    exact = ids_of(ExactIndex(embeddings.ids, embeddings.solutions).query(queries, kmax))
    overlap = sum(len(set(a[:kmax]) & set(e)) for a, e in zip(models[0]["heldout"], exact))
    recall = overlap / (kmax * len(queries))

    interval_keys = [f"hit@{k}" for k in ks]

    def rows_for(split: str, targets: list[str]) -> list[ModelRow]:
        out = []
        for m in models:
            if m[split] is None:
                continue
            metrics, intervals = evaluate_rankings(m[split], targets, ks, interval_keys=interval_keys, seed=params.seed)
            out.append(ModelRow(metric_key(m["display"]), m["display"], metrics, m["protocol"], intervals))
            log.info("%-12s %-50s hit@1 %.4f", split, m["display"], metrics[f"hit@{ks[0]}"])
        return out

    heldout_rows = rows_for("heldout", relevant)
    ooc_rows = rows_for("ooc", ooc_relevant) if has_ooc else []

    # what trained each variant; warn below retrieval.min_training_pairs
    training = {}
    warnings = []
    for m in models:
        info = m["info"]
        training[metric_key(m["display"])] = info
        n = max(int(info.get("n_train") or 0), 0)
        if m["kind"] in ("linear", "encoder") and n < retrieval.min_training_pairs:
            why = info.get("data", "")
            if "slow-variant" in why:
                why += ("; too few LLM-made slow variants (negatives.limit, or the negatives stage's failures)")
            warnings.append(f"**{m['display']}** trained on only {n} pairs/triplets (< retrieval.min_training_pairs "
                            f"{retrieval.min_training_pairs}): {why}")

    def headline(row: ModelRow) -> dict:
        out = {k: row.metrics[k] for k in HEADLINE if k in row.metrics}
        if "hit@1" in row.intervals:
            out["hit@1_low"], out["hit@1_high"] = row.intervals["hit@1"]
        return out

    result = {"retrieval": {row.key: headline(row) for row in heldout_rows}, **best_heldout(heldout_rows)}
    write_json(args.metrics, {**result, "run_info": fingerprint()})  # the environment (perfrepro.environment)
    full = {
        "ks": ks,
        "heldout": {row.key: {"display": row.display, "protocol": row.protocol, "metrics": row.metrics,
                              "intervals": {k: list(v) for k, v in row.intervals.items()}} for row in heldout_rows},
        "ooc": {row.key: {"display": row.display, "protocol": row.protocol, "metrics": row.metrics,
                          "intervals": {k: list(v) for k, v in row.intervals.items()}} for row in ooc_rows},
        "training": training,
        "info": {"queries": len(relevant), "documents": len(embeddings.ids), "ooc_queries": len(ooc_relevant),
                 "ooc_documents": len(ooc_doc_ids) if has_ooc else 0, f"chroma_recall_at_{kmax}": recall},
    }
    write_json(args.full, full)
    write_json(args.plot, hit_plot_rows(heldout_rows, ks))

    train_table = "| Model | training pairs | of which triplets | trained on |\n|---|---|---|---|\n" + "".join(
        f"| {m['display']} | {m['info'].get('n_train') or 0} | {m['info'].get('n_triplets') or 0} | "
        f"{m['info'].get('data', '?')} |\n" for m in models)
    header = (
        f"# Retrieval\n\n## Held-out: {len(relevant)} test-split queries (problem statements) against all "
        f"{len(embeddings.ids)} corpus solutions\n\n"
        f"Dense rows search chromadb (cosine, exhaustive: recall@{kmax} against exact search {recall:.4f}); encoder_mnrl its own index of the "
        f"re-embedded corpus; bm25 a bm25s index; hybrid fuses bm25 and its dense variant by reciprocal rank. "
        f"Intervals: 95% bootstrap over queries (seed {params.seed}). Everything trains on the train split only "
        f"(`heldout`), except rows labelled `[study protocol]`, trained on every row, the test queries included, "
        f"as the study's notebooks did.\n\n"
    )
    text = header + markdown_table(heldout_rows, ks) + "\n"
    if has_ooc:
        text += (
            f"\n## Out-of-corpus: {len(ooc_relevant)} efficiency-task statements against the {len(embeddings.ids)} "
            f"corpus solutions plus the tasks' {len(ooc_relevant)} canonical solutions\n\n"
            f"No variant trained on these problems; this evaluation set is never the index generate reads.\n\n"
            + markdown_table(ooc_rows, ks) + "\n"
        )
    else:
        notes.append(f"out-of-corpus evaluation skipped: {args.ooc}/tasks.jsonl not found (run embed_ooc)")
    text += "\n## What trained each variant\n\n" + train_table
    if warnings:
        text += "\nWarnings:\n\n" + "".join(f"- {w}\n" for w in warnings)
    if notes:
        text += "\nNotes:\n\n" + "".join(f"- {n}\n" for n in notes)
    write_text(args.table, text)
    for w in warnings:
        log.warning("%s", w.replace("**", ""))
    log.info("wrote %s, %s, %s, %s (%d models x %d ks)", args.metrics, args.full, args.table, args.plot,
             len(heldout_rows), len(ks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
