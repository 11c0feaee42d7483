"""What the LLM stages (generate, negatives, optimize) share: the run summary, the writing of their
completions and the message of an interrupted run (perfrepro.stage does logging and the signals)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from perfrepro.generation.generate import status_counts, too_many_failures
from perfrepro.io import atomic_outputs
from perfrepro.records import Completion, write_jsonl

log = logging.getLogger(__name__)

# What a stage that sends LLM requests logs when it is interrupted (perfrepro.stage.run_stage).
CACHED_ON_INTERRUPT = "interrupted; responses received so far are cached, a rerun sends only the rest"


def summary(backend, results_count: int, failures: int, started: float) -> dict:
    """Requests sent, cache hits, failures, tokens and rates of this run (logged as two lines of
    prose; returned as a dict)."""
    elapsed = time.perf_counter() - started
    stats = getattr(backend, "stats", None)
    sent = getattr(stats, "http_attempts", 0)
    hits = getattr(stats, "cache_hits", 0)
    fetched = getattr(stats, "succeeded", 0) - hits
    tokens = getattr(stats, "completion_tokens", 0)
    busy = getattr(stats, "busy_s", 0.0)
    info = {
        "model": backend.model_label,
        "requests": results_count,
        "http_attempts": sent,
        "cache_hits": hits,
        "cache_hit_rate": round(hits / results_count, 4) if results_count else 0.0,
        "failures": failures,
        "prompt_tokens_sent": getattr(stats, "prompt_tokens", 0),
        "completion_tokens_received": tokens,
        "wall_s": round(elapsed, 2),  # the whole stage: loading, retrieval, server start-up included
        "requests_s": round(busy, 2),  # time spent answering requests
        "requests_per_s": round(fetched / busy, 4) if fetched and busy else 0.0,
        "completion_tokens_per_s": round(tokens / busy, 2) if tokens and busy else 0.0,
    }
    log.info("%s: %d requests, %d from the cache (%.0f%%), %d HTTP attempts, %d failed",
             info["model"], results_count, hits, 100 * info["cache_hit_rate"], sent, failures)
    rate = (f"{info['requests_per_s']:g} requests/s, {info['completion_tokens_per_s']:g} tokens/s"
            if fetched and busy else "nothing fetched")
    log.info("%d completion tokens received; %.1f s in all, %.1f s answering requests (%s)",
             tokens, elapsed, busy, rate)
    return info


def write_completions(out: Path, completions: Sequence[Completion], backend, max_failure_fraction: float,
                      started: float) -> int:
    """Log the run summary (when a backend was opened), then write `completions` to `out`; 1, writing
    nothing, when more than `max_failure_fraction` of the requests failed for good."""
    statuses = status_counts(completions)
    if backend is not None:
        summary(backend, len(completions), statuses["error"], started)
    if too_many_failures(completions, max_failure_fraction):
        log.error("nothing written: a failed stage leaves no outputs (responses received are cached)")
        return 1
    with atomic_outputs(out) as (path,):
        write_jsonl(path, completions)
    log.info("%s: %d completions (%s)", out, len(completions), ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 0
