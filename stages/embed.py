"""embed stage: encode corpus problems, solutions and slow variants once into data/embeddings."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from perfrepro.config import load_params
from perfrepro.embeddings.cache import build_embedding_set
from perfrepro.embeddings.encoder import load_encoder
from perfrepro.io import atomic_outputs
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.stage import stage

log = logging.getLogger("embed")


def read_slow_variants(path: Path) -> dict[str, str]:
    """id -> slow solution from the negatives stage; a missing or empty file means none."""
    if not path.exists():
        log.warning("%s not found: no LLM-made slow variants (variants with negatives: slow will fail)", path)
        return {}
    found: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "id" not in row:
                raise SystemExit(f"{path}, line {number}: field 'id' is missing")
            code = row.get("slow_solution")
            if isinstance(code, str) and code.strip():
                found[str(row["id"])] = code
    log.info("%s: %d slow variants", path, len(found))
    return found


@stage("embed", "train", "test", "slow-variants", "out", model=True)
def main(args) -> int:
    params = load_params(args.params).embed
    train = read_jsonl(args.train, CorpusPair)
    test = read_jsonl(args.test, CorpusPair)
    pairs = train + test
    splits = ["train"] * len(train) + ["test"] * len(test)
    slow = {p.id: p.slow_solution for p in pairs if p.slow_solution}
    slow.update(read_slow_variants(args.slow_variants))
    unknown = sorted(set(slow) - {p.id for p in pairs})
    if unknown:
        log.warning("%d slow variants name ids not in the corpus (ignored), e.g. %s", len(unknown), unknown[0])
        for cid in unknown:
            del slow[cid]
    model = load_encoder(params.max_seq_length)
    embeddings = build_embedding_set(model, pairs, splits, slow, params.batch_size)
    with atomic_outputs(args.out) as (out,):
        embeddings.save(out)
    log.info("wrote %s: %d pairs (%d train, %d test), %d slow variants", args.out, len(pairs), len(train),
             len(test), len(embeddings.slow_ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
