"""Chroma vs exact search on a tiny real all-MiniLM-L6-v2 corpus, and a tiny end-to-end eval run."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from perfrepro.embeddings.cache import build_embedding_set
from perfrepro.embeddings.encoder import encode_texts, load_encoder
from perfrepro.index.chroma import ChromaIndex
from perfrepro.index.exact import ExactIndex
from perfrepro.records import CorpusPair, write_jsonl
from perfrepro.retrieval.evaluation import evaluate
from perfrepro.retrieval.retrievers import LinearRetriever, StoredQueries

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]

PAIRS = [
    ("two-sum", "Return indices of two numbers that add up to target.", "def two_sum(nums, t):\n    seen = {}\n    for i, x in enumerate(nums):\n        if t - x in seen: return [seen[t - x], i]\n        seen[x] = i"),
    ("reverse-string", "Reverse a string in place.", "def reverse(s):\n    s.reverse()"),
    ("fib", "Compute the n-th Fibonacci number.", "def fib(n):\n    a, b = 0, 1\n    for _ in range(n): a, b = b, a + b\n    return a"),
    ("max-subarray", "Find the contiguous subarray with the largest sum.", "def max_sub(nums):\n    best = cur = nums[0]\n    for x in nums[1:]:\n        cur = max(x, cur + x); best = max(best, cur)\n    return best"),
    ("valid-parens", "Check whether a bracket string is balanced.", "def valid(s):\n    st = []\n    pairs = {')': '(', ']': '[', '}': '{'}\n    for c in s:\n        if c in pairs:\n            if not st or st.pop() != pairs[c]: return False\n        else: st.append(c)\n    return not st"),
    ("binary-search", "Find a target in a sorted array in logarithmic time.", "def search(a, t):\n    lo, hi = 0, len(a) - 1\n    while lo <= hi:\n        m = (lo + hi) // 2\n        if a[m] == t: return m\n        lo, hi = (m + 1, hi) if a[m] < t else (lo, m - 1)\n    return -1"),
    ("merge-lists", "Merge two sorted lists into one sorted list.", "def merge(a, b):\n    import heapq\n    return list(heapq.merge(a, b))"),
    ("climb-stairs", "Count ways to climb n stairs taking 1 or 2 steps.", "def climb(n):\n    a, b = 1, 1\n    for _ in range(n): a, b = b, a + b\n    return a"),
]


@pytest.fixture(scope="module")
def corpus():
    model = load_encoder()
    pairs = [CorpusPair(i, p, s, None, "python", "fixture") for i, p, s in PAIRS]
    splits = ["test" if k % 2 else "train" for k in range(len(pairs))]
    return model, build_embedding_set(model, pairs, splits, {"fib": "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)"}, batch_size=4, show_progress=False)


def test_encoder_outputs_unit_float32_rows(corpus):
    model, emb = corpus
    out = encode_texts(model, ["hello", "world"], batch_size=2, show_progress=False)
    assert out.dtype == np.float32 and out.shape == (2, 384)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert emb.slow_ids == ["fib"] and emb.slow_solutions.shape == (1, 384)


def test_chroma_top_k_equals_exact_top_k(corpus, tmp_path):
    _, emb = corpus
    docs = [d["solution"] for d in emb.documents]
    ChromaIndex.build(tmp_path / "index", emb.ids, emb.solutions, docs)
    chroma = ChromaIndex.open(tmp_path / "index")
    exact = ExactIndex(emb.ids, emb.solutions, docs)
    for k in (1, 3, len(emb.ids), 20):
        got, want = chroma.query(emb.problems, k), exact.query(emb.problems, k)
        assert [[d for d, *_ in row] for row in got] == [[d for d, *_ in row] for row in want]
        for g, w in zip(got, want):
            assert np.allclose([s for _, s, _ in g], [s for _, s, _ in w], atol=1e-5)
            assert [t for *_, t in g] == [t for *_, t in w]


def test_evaluation_end_to_end_through_the_stages(corpus, tmp_path, monkeypatch):
    _, emb = corpus
    emb.save(tmp_path / "embeddings")
    params = (ROOT / "params.yaml").read_text(encoding="utf-8")
    (tmp_path / "params.yaml").write_text(params, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(ROOT / "stages"))
    try:
        import build_index, eval_retrieval, train_adapter
    finally:
        sys.path.pop(0)
    assert build_index.main(["--embeddings", "embeddings", "--out", "index"]) == 0
    flags = "--epochs 2 --batch_size 4 --lr 0.001 --warmup_steps 1 --max_grad_norm 1.0 --margin 0.2 --loss infonce --negatives none --temperature 0.05"
    assert train_adapter.main(["--variant", "tiny_infonce", "--embeddings", "embeddings", "--out-dir", "adapters", *flags.split()]) == 0
    slow = flags.replace("infonce", "triplet").replace("none", "slow").replace("--temperature 0.05", "")
    assert train_adapter.main(["--variant", "tiny_slow", "--embeddings", "embeddings", "--out-dir", "adapters", *slow.split()]) == 0
    with pytest.raises(SystemExit, match="lr: expected float"):
        train_adapter.main(["--variant", "bad", "--embeddings", "embeddings", "--out-dir", "adapters", *flags.replace("0.001", "fast").split()])
    write_jsonl(Path("corpus_test.jsonl"), [CorpusPair(i, p, s, None, "python", "fixture") for i, p, s in PAIRS])
    assert eval_retrieval.main(["--embeddings", "embeddings", "--index", "index", "--adapters", "adapters",
                                "--test", "corpus_test.jsonl", "--ooc", "no-ooc", "--metrics", "metrics/retrieval.json",
                                "--full", "metrics/retrieval_full.json", "--table", "metrics/retrieval.md",
                                "--plot", "metrics/retrieval_hit_at_k.json"]) == 0
    headline = json.loads(Path("metrics/retrieval.json").read_text())["retrieval"]
    assert set(headline) == {"base_all-MiniLM-L6-v2", "tiny_infonce", "tiny_slow", "tiny_infonce__study", "tiny_slow__study"}
    assert set(headline["tiny_infonce"]) == {"hit@1", "hit@1_low", "hit@1_high", "hit@10", "mrr@10"}
    full = json.loads(Path("metrics/retrieval_full.json").read_text())
    metrics = {key: row["metrics"] for key, row in full["heldout"].items()}
    assert headline["tiny_slow"]["hit@1"] == metrics["tiny_slow"]["hit@1"]
    assert full["training"]["tiny_slow"]["n_train"] == 1
    # the eval loop agrees with a direct exact-search evaluation of the base model
    test_ids = [emb.ids[i] for i in emb.rows("test")]
    exact = LinearRetriever(ExactIndex(emb.ids, emb.solutions), StoredQueries(tuple(emb.ids), emb.problems, "fixture"))
    exact, _ = evaluate({q: q for q in test_ids}, exact.rank({q: "" for q in test_ids}, 3), [1, 3])
    assert metrics["base_all-MiniLM-L6-v2"]["hit@1"] == pytest.approx(exact["hit@1"])
    assert metrics["base_all-MiniLM-L6-v2"]["mrr@3"] == pytest.approx(exact["mrr@3"])
    table = Path("metrics/retrieval.md").read_text()
    assert "| tiny_slow | 1 | 1 | 1 slow-variant triplets" in table and "Average Hit Rate @k" in table
    # fewer than retrieval.min_training_pairs: the report warns and says why
    assert "**tiny_slow** trained on only 1 pairs/triplets" in table and "too few LLM-made slow variants" in table
    assert "out-of-corpus evaluation skipped: no-ooc/tasks.jsonl not found" in table
    plot = json.loads(Path("metrics/retrieval_hit_at_k.json").read_text())
    assert {"model", "k", "hit"} <= set(plot[0])


# chromadb warns when reading back a collection made without an embedding function, as ours are
@pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")
def test_rebuilt_index_answers_like_exact_search(tmp_path):
    # Random unit vectors in 384 dimensions: a hard corpus for HNSW, where a bounded ef_search
    # misses neighbours in some builds and not others. The search must be exhaustive instead.
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((2000, 384)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = rng.standard_normal((200, 384)).astype(np.float32)
    ids = [f"doc{i:04d}" for i in range(len(docs))]
    want = [[d for d, *_ in row] for row in ExactIndex(ids, docs).query(queries, 10)]
    for build in ("first", "second"):
        ChromaIndex.build(tmp_path / build, ids, docs, [""] * len(ids))
        index = ChromaIndex.open(tmp_path / build)
        assert index.collection.configuration["hnsw"]["ef_search"] >= len(ids)  # as persisted
        got = [[d for d, *_ in row] for row in index.query(queries, 10, include_documents=False)]
        assert got == want
