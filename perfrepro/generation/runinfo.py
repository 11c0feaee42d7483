"""What the LLM stages (generate, negatives, optimize) share: Ctrl-C/SIGTERM handling and the run summary."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time


def setup_logging() -> None:
    """INFO logs to stderr, without a line per HTTP request from the openai package's httpx."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    for name in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM (what `dvc` and CI send) into KeyboardInterrupt, so the local server is stopped
    and the run ends the way Ctrl-C ends it."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def summary(backend, results_count: int, failures: int, started: float) -> dict:
    """Requests sent, cache hits, failures, tokens and rates of this run (printed to stderr)."""
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
    print("llm run: " + json.dumps(info, sort_keys=True), file=sys.stderr)
    return info
