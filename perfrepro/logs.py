"""One log style for every stage and the CLI: ``<stage>: message`` on stderr, with ``warning:`` or
``error:`` after the prefix when the record is not INFO, and third-party chatter (model loading,
HTTP requests, telemetry) kept below INFO.

    prepare: tasks.jsonl: 10 rows
    generate: error: cannot connect to http://127.0.0.1:9/v1 (...); check llm.base_url ...
"""

from __future__ import annotations

import logging
import os
import sys

# Loggers that speak at INFO about things a stage's reader does not need (one line per HTTP
# request, "Load pretrained SentenceTransformer", "Use pytorch device", chroma telemetry).
QUIET = (
    "httpx", "httpx2", "httpcore", "openai", "urllib3", "filelock", "fsspec", "asyncio",
    "sentence_transformers", "transformers", "huggingface_hub", "datasets", "torch",
    "chromadb", "posthog", "dvc",
)


class StageFormatter(logging.Formatter):
    """``<prefix>: [warning: |error: ]message``; the prefix is the stage's name for every logger
    in the process, so library modules' lines read like the stage's own."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        text = f"{self.prefix}: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(prefix: str, level: int = logging.INFO) -> logging.Logger:
    """Configure the root logger for a stage (or the CLI) named `prefix`; returns its logger.

    Call once at the start of ``main``; calling again replaces the handler (tests call stages'
    mains in one process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StageFormatter(prefix))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, StageFormatter)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # transformers' "Loading weights" bar at every model load (read by huggingface_hub and
    # transformers when they are imported; switched off directly when they already are)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    return logging.getLogger(prefix)
