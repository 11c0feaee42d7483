"""Retrieve PIE slow -> fast pairs whose slow side is nearest to a task's slow program.

Slow programs are embedded with the project's encoder (all-MiniLM-L6-v2, L2-normalised, so the
dot product is the cosine). The PIE side is embedded once and cached on disk under the sha256 of
the pairs file, the model and the sequence length, so reruns never recompute it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from perfrepro.records import CorpusPair

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def nearest_examples(query: np.ndarray, bank: np.ndarray, shots: int) -> list[list[int]]:
    """For each query row, the `shots` most similar bank rows, least similar first (most similar
    last, as PIE orders its prompts). Ties go to the lower bank index."""
    if shots <= 0 or len(bank) == 0:
        return [[] for _ in range(len(query))]
    shots = min(shots, len(bank))
    scores = np.asarray(query, dtype=np.float32) @ np.asarray(bank, dtype=np.float32).T
    result = []
    for row in scores:
        # stable sort on -score keeps the lower index first among equal scores
        top = np.argsort(-row, kind="stable")[:shots]
        result.append([int(i) for i in reversed(top)])
    return result


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pie_slow_embeddings(
    pairs: Sequence[CorpusPair],
    pairs_file: str | os.PathLike,
    cache_dir: str | os.PathLike,
    encoder,
    model_name: str,
    batch_size: int = 64,
) -> np.ndarray:
    """(n, d) float32 embeddings of the pairs' slow programs, read from or written to the cache."""
    from perfrepro.embeddings.encoder import encode_texts

    key_text = json.dumps({
        "format": CACHE_FORMAT,
        "file": file_sha256(pairs_file),
        "model": model_name,
        "max_seq_length": getattr(encoder, "max_seq_length", None),
        "n": len(pairs),
    }, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    path = Path(os.path.expanduser(str(cache_dir))) / f"pie-slow-{key}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(pairs):
            log.info("PIE embeddings: cache hit %s", path)
            return cached
    log.info("PIE embeddings: encoding %d slow programs (cached at %s)", len(pairs), path)
    embeddings = encode_texts(encoder, [p.slow_solution or "" for p in pairs], batch_size=batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, embeddings)
    os.replace(tmp, path)
    return embeddings
