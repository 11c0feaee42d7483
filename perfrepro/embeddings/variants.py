"""Training one adapter variant under every protocol into its folder, and reading a variant's
settings from the command line (DVC's dict unpacking of `params.yaml: adapters.<variant>`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from perfrepro.config import AdapterConfig
from perfrepro.embeddings.adapter import adapter_stem
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.training import NoTrainingDataError, train_variant

log = logging.getLogger(__name__)


def _scalar(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def variant_settings(flags: Sequence[str]) -> dict:
    """``--key value`` pairs -> {key: value} (numbers, true/false/null converted); ValueError otherwise."""
    settings = {}
    i = 0
    while i < len(flags):
        flag = flags[i]
        if not flag.startswith("--") or i + 1 >= len(flags) or flags[i + 1].startswith("--"):
            raise ValueError(f"variant settings must be '--key value' pairs, got {' '.join(flags[i:i + 2])!r}")
        settings[flag[2:].replace("-", "_")] = _scalar(flags[i + 1])
        i += 2
    return settings


def train_protocols(embeddings: EmbeddingSet, config: AdapterConfig, variant: str, protocols: Sequence[str],
                    seed: int, out: Path) -> dict:
    """Train every protocol into `out` (the variant's folder); the per-protocol summary."""
    summary = {}
    for protocol in protocols:
        try:
            adapter, train_log = train_variant(embeddings, config, protocol, seed)
        except NoTrainingDataError as exc:
            raise NoTrainingDataError(f"adapters.{variant} ({protocol}): {exc}") from None
        stem = adapter_stem(out.parent, variant, protocol)
        # wall-clock seconds go to the log only, so the same params give byte-identical outs
        saved_log = {k: v for k, v in train_log.items() if k != "seconds"}
        adapter.save(stem, extra={"variant": variant, "protocol": protocol, "log": saved_log})
        summary[protocol] = {k: train_log[k] for k in ("n_train", "n_triplets", "data")}
        if config.negatives == "slow":
            # why a slow-negative variant trains on few rows: only pairs with an LLM-made slow variant count
            log.warning("%s/%s trains on %s: only train pairs with an LLM-made slow variant form a triplet "
                        "(negatives.limit, minus the negatives stage's failures)", variant, protocol,
                        train_log["data"])
        log.info("%s/%s: %s; loss %s; %.1fs", variant, protocol, train_log["data"],
                 [round(x, 4) for x in train_log["loss_per_epoch"]], train_log["seconds"])
    return summary
