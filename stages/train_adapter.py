"""train_adapter stage: train one adapter variant under both protocols into data/adapters/<variant>/.

The variant's settings arrive as flags (`--epochs 10 --batch_size 32 --lr 0.01 ... --loss triplet`,
DVC's dict unpacking of `params.yaml: adapters.<variant>`) and are validated by perfrepro.config,
so a bad value names its key. `heldout` trains on the train split only; `study` on every row.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrepro.config import AdapterConfig, ConfigError, build, load_params
from perfrepro.embeddings.adapter import PROTOCOLS, adapter_stem
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.training import NoTrainingDataError, train_variant
from perfrepro.io import atomic_outputs, write_json
from perfrepro.logs import setup_logging

log = logging.getLogger("train_adapter")


def _scalar(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--out-dir", type=Path, default=Path("data/adapters"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    args, rest = parser.parse_known_args(argv)
    settings = {}
    i = 0
    while i < len(rest):
        flag = rest[i]
        if not flag.startswith("--") or i + 1 >= len(rest) or rest[i + 1].startswith("--"):
            parser.error(f"variant settings must be '--key value' pairs, got {' '.join(rest[i:i + 2])!r}")
        settings[flag[2:].replace("-", "_")] = _scalar(rest[i + 1])
        i += 2
    return args, settings


def main(argv=None) -> int:
    setup_logging("train_adapter")
    args, settings = parse_args(argv)
    params = load_params(args.params)
    try:
        config = build(AdapterConfig, settings, f"adapters.{args.variant}") if settings else params.adapters[args.variant]
    except KeyError:
        raise SystemExit(f"adapters.{args.variant}: no such variant in {args.params}") from None
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    embeddings = EmbeddingSet.load(args.embeddings)
    with atomic_outputs(args.out_dir / args.variant) as (out,):  # all protocols or nothing
        summary = train_protocols(args, config, embeddings, params.seed, out)
        write_json(out / "summary.json", {"variant": args.variant, "config": vars(config), "protocols": summary})
    return 0


def train_protocols(args, config, embeddings, seed, out) -> dict:
    """Train every protocol into `out` (the variant's folder); the per-protocol summary."""
    summary = {}
    for protocol in args.protocols.split(","):
        try:
            adapter, train_log = train_variant(embeddings, config, protocol, seed)
        except NoTrainingDataError as exc:
            raise SystemExit(f"adapters.{args.variant} ({protocol}): {exc}") from None
        stem = adapter_stem(out.parent, args.variant, protocol)
        # wall-clock seconds go to the log only, so the same params give byte-identical outs
        saved_log = {k: v for k, v in train_log.items() if k != "seconds"}
        adapter.save(stem, extra={"variant": args.variant, "protocol": protocol, "log": saved_log})
        summary[protocol] = {k: train_log[k] for k in ("n_train", "n_triplets", "data")}
        if config.negatives == "slow":
            # why a slow-negative variant trains on few rows: only pairs with an LLM-made slow variant count
            log.warning("%s/%s trains on %s: only train pairs with an LLM-made slow variant form a triplet "
                        "(negatives.limit, minus the negatives stage's failures)", args.variant, protocol,
                        train_log["data"])
        log.info("%s/%s: %s; loss %s; %.1fs", args.variant, protocol, train_log["data"],
                 [round(x, 4) for x in train_log["loss_per_epoch"]], train_log["seconds"])
    return summary


if __name__ == "__main__":
    sys.exit(main())
