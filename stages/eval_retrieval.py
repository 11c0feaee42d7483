"""eval_retrieval stage: Hit/MRR/MAP/NDCG@k, with 95% bootstrap intervals over queries, of the base
model, every linear adapter variant, encoder_mnrl, bm25 and hybrid, on the held-out and the
out-of-corpus evaluation sets (perfrepro.retrieval.comparison).

Writes metrics/retrieval.json (DVC metrics: Hit@1 with its interval, Hit@10, MRR@10 per model on
held-out), metrics/retrieval_full.json (every k, both sets, what trained each variant),
metrics/retrieval.md (the tables) and metrics/retrieval_hit_at_k.json (DVC plot).
"""

from __future__ import annotations

import logging
import sys

from perfrepro.config import load_params
from perfrepro.io import write_json, write_text
from perfrepro.retrieval.comparison import ComparisonInputs, ComparisonSettings, compare_retrievers
from perfrepro.retrieval.report import full_results, headline_metrics, hit_plot_rows, markdown_report, training_warnings
from perfrepro.stage import stage, with_run_info

log = logging.getLogger("eval_retrieval")


@stage("eval_retrieval", "embeddings", "index", "adapters", "test", "ooc", "metrics", "full", "table", "plot")
def main(args) -> int:
    params = load_params(args.params)
    ks = tuple(sorted(set(params.retrieval.ks)))
    hybrid_depth = params.retrievers.hybrid.depth if params.retrievers is not None else 0
    settings = ComparisonSettings(ks, params.seed, params.retrieval.protocol, depth=max(max(ks), hybrid_depth),
                                  variants=tuple(params.adapters), min_training_pairs=params.retrieval.min_training_pairs)
    comparison = compare_retrievers(
        ComparisonInputs(args.embeddings, args.index, args.adapters, args.test, args.ooc), settings)
    write_json(args.metrics, with_run_info(headline_metrics(comparison)))
    write_json(args.full, full_results(comparison))
    write_json(args.plot, hit_plot_rows(comparison.heldout, ks))
    write_text(args.table, markdown_report(comparison))
    for warning in training_warnings(comparison):
        log.warning("%s", warning.replace("**", ""))
    log.info("wrote %s, %s, %s, %s (%d models x %d ks)", args.metrics, args.full, args.table, args.plot,
             len(comparison.heldout), len(ks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
