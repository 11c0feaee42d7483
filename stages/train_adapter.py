"""train_adapter stage: train one adapter variant under both protocols into data/adapters/<variant>/.

The variant's settings arrive as flags (`--epochs 10 --batch_size 32 --lr 0.01 ... --loss triplet`,
DVC's dict unpacking of `params.yaml: adapters.<variant>`) and are validated by perfrepro.config,
so a bad value names its key. `heldout` trains on the train split only; `study` on every row.
"""

from __future__ import annotations

import sys

from perfrepro.config import AdapterConfig, ConfigError, build, load_params
from perfrepro.embeddings.adapter import PROTOCOLS
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.variants import train_protocols, variant_settings
from perfrepro.io import atomic_outputs, write_json
from perfrepro.stage import parser, run_stage


def main(argv=None) -> int:
    arguments = parser(__doc__, "embeddings", "out-dir")
    arguments.add_argument("--variant", required=True)
    arguments.add_argument("--protocols", default=",".join(PROTOCOLS))
    args, rest = arguments.parse_known_args(argv)
    try:
        settings = variant_settings(rest)
    except ValueError as exc:
        arguments.error(str(exc))
    return run_stage("train_adapter", lambda: train(args, settings))


def train(args, settings: dict) -> int:
    params = load_params(args.params)
    try:
        config = build(AdapterConfig, settings, f"adapters.{args.variant}") if settings else params.adapters[args.variant]
    except KeyError:
        raise SystemExit(f"adapters.{args.variant}: no such variant in {args.params}") from None
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    embeddings = EmbeddingSet.load(args.embeddings)
    with atomic_outputs(args.out_dir / args.variant) as (out,):  # all protocols or nothing
        summary = train_protocols(embeddings, config, args.variant, args.protocols.split(","), params.seed, out)
        write_json(out / "summary.json", {"variant": args.variant, "config": vars(config), "protocols": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
