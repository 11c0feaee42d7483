"""Retrieval-track benchmarks, measured side by side in one run (numbers, not assertions):

1. embed-stage encoding throughput vs a bare SentenceTransformer.encode on the same texts
   (goal: ratio >= 0.9);
2. adapter training seconds per variant in params.yaml (heldout protocol, cached embeddings);
3. query latency of the chroma index vs exact numpy search (same queries, same k);
4. encoder_mnrl fine-tuning seconds with params.yaml's settings (goal <= 600 s on 2 idle cores).

Usage: python benchmarks/retrieval.py [--texts 256] [--embeddings data/embeddings] [--index data/index]
Needs data/embeddings (the embed stage) for parts 2-3; part 1 reads the shipped corpus directly.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from perfrepro.config import load_params  # noqa: E402
from perfrepro.embeddings.cache import EmbeddingSet  # noqa: E402
from perfrepro.embeddings.encoder import encode_texts, load_encoder  # noqa: E402
from perfrepro.embeddings.training import train_variant  # noqa: E402
from perfrepro.index.chroma import ChromaIndex  # noqa: E402
from perfrepro.index.exact import ExactIndex  # noqa: E402


def corpus_texts(n: int) -> list[str]:
    path = ROOT / "data/raw/leetcodedataset/LeetCodeDataset-v0.2.0-train.jsonl.gz"
    texts = []
    with gzip.open(path, "rt", encoding="utf-8") as rows:
        for line in rows:
            row = json.loads(line)
            texts.append(row["completion"])
            if len(texts) >= n:
                break
    return texts


def bench_encode(n_texts: int, batch_size: int, max_seq_length: int, repeats: int) -> None:
    model = load_encoder(max_seq_length)
    texts = corpus_texts(n_texts)
    encode_texts(model, texts[:batch_size], batch_size, show_progress=False)  # warm-up
    ours, bare = [], []
    for _ in range(repeats):  # interleaved so machine load hits both alike
        start = time.perf_counter()
        encode_texts(model, texts, batch_size, show_progress=True)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.encode(texts, batch_size=batch_size)
        bare.append(time.perf_counter() - start)
    t_ours, t_bare = statistics.median(ours), statistics.median(bare)
    print(f"\n[1] encoding {len(texts)} solutions (batch {batch_size}, max_seq_length {max_seq_length}, median of {repeats})")
    print(f"    embed stage encode_texts : {len(texts) / t_ours:8.1f} texts/s ({t_ours:.2f}s)")
    print(f"    bare SentenceTransformer : {len(texts) / t_bare:8.1f} texts/s ({t_bare:.2f}s)")
    print(f"    throughput ratio         : {t_bare / t_ours:.3f}   (goal >= 0.9)")


def bench_training(embeddings: EmbeddingSet, params_path: Path) -> None:
    params = load_params(params_path)
    print(f"\n[2] adapter training, heldout protocol ({len(embeddings.rows('train'))} train pairs, cached embeddings)")
    for name, config in params.adapters.items():
        try:
            _, log = train_variant(embeddings, config, "heldout", params.seed, show_progress=False)
        except ValueError as exc:
            print(f"    {name:34s} skipped: {exc}")
            continue
        print(f"    {name:34s} {log['seconds']:7.2f}s  {log['steps']:5d} steps  ({log['data']})")


def bench_query(embeddings: EmbeddingSet, index_path: Path, k: int, repeats: int) -> None:
    tmp = None
    if not (index_path / "chroma.sqlite3").exists():
        tmp = tempfile.TemporaryDirectory()
        index_path = Path(tmp.name) / "index"
        ChromaIndex.build(index_path, embeddings.ids, embeddings.solutions, [d["solution"] for d in embeddings.documents])
    chroma = ChromaIndex.open(index_path)
    exact = ExactIndex(embeddings.ids, embeddings.solutions, [d["solution"] for d in embeddings.documents])
    queries = embeddings.problems[embeddings.rows("test")]
    timings = {"chroma": [], "exact": []}
    for _ in range(repeats):
        for name, index in (("chroma", chroma), ("exact", exact)):
            start = time.perf_counter()
            for q in queries:
                index.query(q[None, :], k)
            timings[name].append((time.perf_counter() - start) / len(queries))
    c, e = statistics.median(timings["chroma"]), statistics.median(timings["exact"])
    print(f"\n[3] query latency, top-{k} of {len(exact)} solutions, {len(queries)} single queries (median of {repeats})")
    print(f"    chroma : {c * 1e3:7.3f} ms/query")
    print(f"    exact  : {e * 1e3:7.3f} ms/query")
    print(f"    chroma / exact latency ratio: {c / e:.2f}")
    if tmp:
        tmp.cleanup()


def bench_encoder(embeddings: EmbeddingSet, train_path: Path, params_path: Path, pairs: int | None) -> None:
    """Seconds to fine-tune encoder_mnrl with params.yaml's settings (first `pairs` train pairs)."""
    from perfrepro.embeddings.encoder_training import encoder_training_data, train_encoder
    from perfrepro.records import CorpusPair, read_jsonl

    params = load_params(params_path)
    config = params.retrievers.encoder_mnrl
    text = {p.id: p for p in read_jsonl(train_path, CorpusPair)}
    rows = embeddings.rows("train")
    ids = [embeddings.ids[i] for i in rows]
    data = encoder_training_data(ids, [text[c].problem for c in ids], [text[c].solution for c in ids],
                                 embeddings.problems[rows], embeddings.solutions[rows], config.hard_negatives,
                                 pairs if pairs is not None else config.max_train_pairs)
    with tempfile.TemporaryDirectory() as work:
        _, log = train_encoder(load_encoder(config.max_seq_length), data, epochs=config.epochs,
                               batch_size=config.batch_size, lr=config.lr, warmup_ratio=config.warmup_ratio,
                               scale=config.scale, seed=params.seed, work_dir=work, show_progress=True)
    print(f"\n[4] encoder_mnrl fine-tuning ({log['data']}, {config.epochs} epoch(s), batch {config.batch_size}, "
          f"max_seq_length {config.max_seq_length}): {log['seconds']:.1f}s, {log['steps']} steps "
          f"(goal <= 600 s for the default on 2 idle cores)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embeddings", type=Path, default=ROOT / "data/embeddings")
    parser.add_argument("--index", type=Path, default=ROOT / "data/index")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--train", type=Path, default=ROOT / "data/prepared/corpus_train.jsonl")
    parser.add_argument("--encoder-pairs", type=int, default=None, help="[4] on the first n train pairs only")
    parser.add_argument("--only-encoder", action="store_true", help="run part [4] only")
    args = parser.parse_args()
    embed = load_params(args.params).embed
    if not args.only_encoder:
        bench_encode(args.texts, embed.batch_size, embed.max_seq_length, args.repeats)
    if not (args.embeddings / "ids.json").exists():
        print(f"\n[2,3] skipped: {args.embeddings} not found (run `dvc repro embed` first)")
        return 0
    embeddings = EmbeddingSet.load(args.embeddings)
    if not args.only_encoder:
        bench_training(embeddings, args.params)
        bench_query(embeddings, args.index, args.k, args.repeats)
    bench_encoder(embeddings, args.train, args.params, args.encoder_pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
