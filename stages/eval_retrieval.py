"""eval_retrieval stage: Hit/MRR/MAP/NDCG@k, with 95% bootstrap intervals over queries, of the base
model, every linear adapter variant, encoder_mnrl, bm25 and hybrid, on the held-out and the
out-of-corpus evaluation sets (perfrepro.retrieval.comparison).

Writes metrics/retrieval.json (DVC metrics: Hit@1 with its interval, Hit@10, MRR@10 per model on
held-out), metrics/retrieval_full.json (every k, both sets, what trained each variant),
metrics/retrieval.md (the tables) and metrics/retrieval_hit_at_k.json (DVC plot).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.environment import fingerprint
from perfrepro.io import write_json, write_text
from perfrepro.retrieval.comparison import ComparisonInputs, ComparisonSettings, compare_retrievers
from perfrepro.retrieval.report import full_results, headline_metrics, hit_plot_rows, markdown_report, training_warnings
from perfrepro.retrieval.retrievers import RetrievalInputError

log = logging.getLogger("eval_retrieval")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    for name in ("embeddings", "index", "adapters", "test", "ooc", "metrics", "full", "table", "plot"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        ks = tuple(sorted(set(params.retrieval.ks)))
        hybrid_depth = params.retrievers.hybrid.depth if params.retrievers is not None else 0
        settings = ComparisonSettings(ks, params.seed, params.retrieval.protocol, depth=max(max(ks), hybrid_depth),
                                      variants=tuple(params.adapters),
                                      min_training_pairs=params.retrieval.min_training_pairs)
        comparison = compare_retrievers(
            ComparisonInputs(args.embeddings, args.index, args.adapters, args.test, args.ooc), settings)
    except (ConfigError, RetrievalInputError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    write_json(args.metrics, {**headline_metrics(comparison), "run_info": fingerprint()})
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
