"""Stage `negatives`: LLM-made slow variants of corpus train solutions (params: seed, negatives).

For the first `negatives.limit` train problems in a seeded order, the `negatives.llm` model
rewrites the performant solution into a behaviour-preserving, less efficient one. Writes
data/negatives/slow_variants.jsonl rows {"id", "slow_solution" (code or null), "status"}.
Responses are cached like generate's. Exits 1, writing nothing, when more than
`negatives.llm.max_failure_fraction` of the requests failed for good.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

from perfrepro.config import load_params
from perfrepro.generation.backends import BackendError, open_backend
from perfrepro.generation.negatives import make_slow_variants, select_pairs
from perfrepro.generation.runinfo import CACHED_ON_INTERRUPT, summary
from perfrepro.io import atomic_outputs
from perfrepro.records import CorpusPair, read_jsonl, write_jsonl
from perfrepro.stage import stage

log = logging.getLogger("negatives")


@stage("negatives", "train", "out", interrupted=CACHED_ON_INTERRUPT)
def main(args) -> int:
    started = time.perf_counter()
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
