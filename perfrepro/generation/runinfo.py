"""What the LLM stages (generate, negatives, optimize) share: Ctrl-C/SIGTERM handling and the run summary."""

from __future__ import annotations

import logging
import os
import signal
import time

from perfrepro.logs import setup_logging as _setup_logging

log = logging.getLogger(__name__)


def setup_logging(prefix: str = "llm") -> logging.Logger:
    """The project's one log style (perfrepro.logs), without a line per HTTP request."""
    return _setup_logging(prefix)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM (what `dvc` and CI send) into KeyboardInterrupt, so the local server is stopped
    and the run ends the way Ctrl-C ends it."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def start_model_stage(name: str) -> None:
    """The common start of a stage that talks to a model: its log style, the Hugging Face hub
    kept offline (a model comes from disk or a server, never a download), SIGTERM as Ctrl-C."""
    setup_logging(name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    interrupt_on_sigterm()


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
