"""Stage `negatives`: LLM-made slow variants of corpus train solutions (params: seed, negatives).

For the first `negatives.limit` train problems in a seeded order, the `negatives.llm` model
rewrites the performant solution into a behaviour-preserving, less efficient one. Writes
data/negatives/slow_variants.jsonl rows {"id", "slow_solution" (code or null), "status"}.
Responses are cached like generate's. Exits 1, writing nothing, when more than
`negatives.llm.max_failure_fraction` of the requests failed for good.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.generation.backends import BackendError, open_backend
from perfrepro.generation.local_server import LocalServerError
from perfrepro.generation.runinfo import interrupt_on_sigterm, summary
from perfrepro.generation.negatives import make_slow_variants, select_pairs
from perfrepro.io import atomic_outputs
from perfrepro.logs import setup_logging
from perfrepro.records import CorpusPair, read_jsonl, write_jsonl

log = logging.getLogger("negatives")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--train", type=Path, default=Path("data/prepared/corpus_train.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("data/negatives/slow_variants.jsonl"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    setup_logging("negatives")
    interrupt_on_sigterm()
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        llm = params.negatives.llm
        if llm.backend == "recorded":
            raise BackendError("negatives.llm.backend: recorded has no slow variants to replay; use local or openai")
        pairs = select_pairs(read_jsonl(args.train, CorpusPair), params.negatives.limit, params.seed)
        if not pairs:
            with atomic_outputs(args.out) as (out,):
                write_jsonl(out, [])
            log.info("negatives.limit is 0: wrote an empty %s", args.out)
            return 0
        with open_backend(llm, key="negatives.llm") as backend:
            rows = make_slow_variants(pairs, backend)
    except (ConfigError, BackendError, LocalServerError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; responses received so far are cached, a rerun sends only the rest")
        return 130
    counts = Counter(row["status"] for row in rows)
    summary(backend, len(rows), counts["error"], started)
    fraction = counts["error"] / len(rows)
    if fraction > llm.max_failure_fraction:
        log.error("%.0f%% of requests failed (negatives.llm.max_failure_fraction %.2f); nothing written",
                  100 * fraction, llm.max_failure_fraction)
        return 1
    with atomic_outputs(args.out) as (out,):
        write_jsonl(out, rows)
    log.info("%s: %d rows (%s)", args.out, len(rows), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
