"""Content-addressed, on-disk cache of chat responses.

A response is stored under the sha256 of everything that decides it: the model, the endpoint
identity, the messages and the decoding parameters. Never the API key. Each entry is written
atomically the moment its response arrives, so an interrupted run loses nothing already paid for,
and a rerun, a resumed run or a queued experiment never sends a request that is already cached.

The cache lives outside the DVC workspace (``llm.cache_dir``, ``~`` expanded), because DVC deletes
a stage's outs before rerunning it; ``$PERFREPRO_LLM_CACHE`` overrides the location.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

CACHE_ENV_VAR = "PERFREPRO_LLM_CACHE"
CACHE_FORMAT = 1


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """The cache directory: ``$PERFREPRO_LLM_CACHE`` when set, else `cache_dir` with ``~`` expanded."""
    override = os.environ.get(CACHE_ENV_VAR)
    chosen = override if override else cache_dir
    if not chosen:
        raise ValueError(f"no LLM cache directory: set llm.cache_dir or ${CACHE_ENV_VAR}")
    return Path(os.path.expandvars(os.path.expanduser(str(chosen))))


def request_fingerprint(
    model: str,
    endpoint: str,
    messages: Sequence[Mapping[str, str]],
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The canonical description of a request that the cache key hashes (no credentials in it)."""
    return {
        "format": CACHE_FORMAT,
        "model": model,
        "endpoint": endpoint,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "params": dict(sorted(params.items())),
    }


def cache_key(fingerprint: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a request fingerprint."""
    blob = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Maps a cache key to a stored response entry (a JSON object) in ``<dir>/<k[:2]>/<k>.json``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @classmethod
    def from_config(cls, cache_dir: str | os.PathLike | None) -> "ResponseCache":
        return cls(resolve_cache_dir(cache_dir))

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None when missing or unreadable (a torn file counts as a miss)."""
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
            return None
        return entry if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: str, entry: Mapping[str, Any]) -> Path:
        """Store `entry` under `key` atomically (temp file in the same directory, then rename)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({**entry, "key": key}, sort_keys=True, ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(data + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("??/*.json")) if self.directory.exists() else 0
