"""The retrievers behind one interface: code tokenisation, BM25, reciprocal-rank fusion and the
hybrid's composition (by hand), intervals, the fine-tuned encoder (determinism), the rule that a
task's own canonical solution is never a few-shot example for that task, and generation's and
evaluation's loading of the same retriever agreeing."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from perfrepro.generation.retrieve import retrieve_examples
from perfrepro.index.bm25 import BM25Index, code_tokens
from perfrepro.index.exact import ExactIndex
from perfrepro.retrieval.evaluation import evaluate
from perfrepro.retrieval.loading import EvaluationInputs, directory_digest, load_retriever
from perfrepro.retrieval.retrievers import (
    HybridRetriever, LinearRetriever, RetrievalInputError, StoredQueries, canonical_id, reciprocal_rank_fusion,
)

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]
OUTS = ["--metrics", "metrics/retrieval.json", "--full", "metrics/retrieval_full.json", "--table", "metrics/retrieval.md",
        "--plot", "metrics/retrieval_hit_at_k.json"]


def test_code_tokens_split_camel_and_snake_case():
    assert code_tokens("def maxSubArray(self, nums_list):") == [
        "def", "maxsubarray", "max", "sub", "array", "self", "nums_list", "nums", "list"]
    assert code_tokens("HTTPServer __init__ x2 the") == ["httpserver", "http", "server", "init", "x2", "x", "2"]


def test_bm25_ranks_the_matching_identifier_first_and_breaks_ties_by_id():
    index = BM25Index(["b", "a", "c"], ["def climb_stairs(n): pass", "def climbStairs(n): pass", "def two_sum(nums): pass"])
    hits = index.query_texts(["count ways to climb stairs"], k=3)[0]
    assert [doc_id for doc_id, *_ in hits][:2] == ["a", "b"]  # equal scores: id order
    assert hits[0][1] == pytest.approx(hits[1][1]) and hits[0][1] > hits[2][1]
    assert hits[0][2] == "def climbStairs(n): pass"


def test_bm25_round_trip(tmp_path):
    index = BM25Index(["x", "y"], ["def fib(n): return n", "def two_sum(a): return a"], k1=1.2, b=0.5)
    loaded = BM25Index.load(index.save(tmp_path / "bm25"))
    assert loaded.settings == {"k1": 1.2, "b": 0.5, "method": "lucene"}
    assert np.array_equal(loaded.scores("fib number"), index.scores("fib number"))


def test_reciprocal_rank_fusion_by_hand():
    # a: 1/61 + 1/63 = 0.03227, b: 1/62 + 1/61 = 0.03252, c: 1/63 + 1/62 = 0.03200
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]], k=60)
    assert [doc_id for doc_id, _ in fused] == ["b", "a", "c"]
    assert [score for _, score in fused] == pytest.approx([1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 63 + 1 / 62])
    # a tie (1/61 each) resolves by id
    assert [doc_id for doc_id, _ in reciprocal_rank_fusion([["b"], ["a"]], k=60)] == ["a", "b"]


def exact_retriever(vectors: dict[str, tuple[float, float]], query: tuple[float, float]) -> LinearRetriever:
    """Real exact search over 2-d documents, the query's embedding stored under id "q"."""
    index = ExactIndex(list(vectors), np.array(list(vectors.values())), [f"text of {d}" for d in vectors])
    return LinearRetriever(index, StoredQueries(("q",), np.array([query], dtype=np.float32), "fixture"))


def test_hybrid_fuses_its_two_retrievers_at_its_own_depth():
    # dense ranks a (cos 1), b (0.8), c (0); the other ranks c, b, a
    dense = exact_retriever({"a": (1.0, 0.0), "b": (0.8, 0.6), "c": (0.0, 1.0)}, (1.0, 0.0))
    other = exact_retriever({"a": (1.0, 0.0), "b": (0.6, 0.8), "c": (0.0, 1.0)}, (0.0, 1.0))
    assert [d for d, _ in dense.rank({"q": "?"}, 3)["q"]] == ["a", "b", "c"]
    assert [d for d, _ in other.rank({"q": "?"}, 3)["q"]] == ["c", "b", "a"]
    # depth 3: a = c = 1/61 + 1/63 = 0.032266 > b = 2/62 = 0.032258; a before c by id
    deep = HybridRetriever(dense, other, rrf_k=60, depth=3).rank({"q": "?"}, 3)["q"]
    assert [d for d, _ in deep] == ["a", "c", "b"]
    assert [s for _, s in deep] == pytest.approx([1 / 61 + 1 / 63, 1 / 61 + 1 / 63, 2 / 62])
    # depth 2: dense [a, b], other [c, b]: b = 2/62 first, then a = c = 1/61 by id
    shallow = HybridRetriever(dense, other, rrf_k=60, depth=2)
    assert [d for d, _ in shallow.rank({"q": "?"}, 3)["q"]] == ["b", "a", "c"]
    assert [d for d, _ in shallow.rank({"q": "?"}, 1)["q"]] == ["b"]  # the caller's depth cuts the fused list
    assert shallow.get_documents(["c", "a", "zz"]) == {"c": "text of c", "a": "text of a"}


def test_stored_queries_name_the_missing_query():
    stored = StoredQueries(("q1",), np.zeros((1, 2), dtype=np.float32), "data/ooc/queries.npy")
    with pytest.raises(RetrievalInputError, match=r"data/ooc/queries.npy: no stored embedding for query 'q2'"):
        stored.encode(["q1", "q2"], ["", ""])


def test_evaluate_means_and_seeded_intervals():
    results = {"q1": [("q1", 0.9), ("x", 0.1)], "q2": [("x", 0.9), ("q2", 0.5)], "q3": [("x", 1.0), ("y", 0.0)],
               "q4": [("q4", 0.3), ("y", 0.2)]}
    relevant = {q: q for q in ("q1", "q2", "q3", "q4")}
    metrics, intervals = evaluate(relevant, results, [1, 2], interval_keys=["hit@1"], seed=3)
    assert metrics["hit@1"] == 0.5 and metrics["hit@2"] == 0.75 and metrics["mrr@2"] == pytest.approx((1 + 0.5 + 1) / 4)
    low, high = intervals["hit@1"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert evaluate(relevant, results, [1], interval_keys=["hit@1"], seed=3)[1] == intervals
    all_hit = evaluate({"a": "a", "b": "b"}, {"a": [("a", 1.0)], "b": [("b", 1.0)]}, [1], interval_keys=["hit@1"])[1]
    assert all_hit["hit@1"] == (1.0, 1.0)
    with pytest.raises(ValueError, match="no ranking for query 'q4'"):
        evaluate(relevant, {q: r for q, r in results.items() if q != "q4"}, [1])


CORPUS = [
    ("c-fib", "def fib(n):\n    a, b = 0, 1\n    for _ in range(n): a, b = b, a + b\n    return a"),
    ("c-sum", "def two_sum(nums, target):\n    seen = {}\n    for i, x in enumerate(nums):\n        if target - x in seen: return [seen[target - x], i]\n        seen[x] = i"),
    ("c-rev", "def reverse_string(s):\n    return s[::-1]"),
]
TASKS = [("t-stairs", "Count the ways to climb n stairs taking 1 or 2 steps (climb stairs).",
          "def climb_stairs(n):\n    a, b = 1, 1\n    for _ in range(n): a, b = b, a + b\n    return a")]


def test_a_task_never_retrieves_its_own_canonical(tmp_path):
    """Even from an index that (wrongly) holds the task's canonical solution, as the out-of-corpus
    evaluation index does, generation's retrieval never returns it for that task."""
    from perfrepro.embeddings.encoder import encode_texts, load_encoder
    from perfrepro.index.chroma import ChromaIndex

    ids = [c for c, _ in CORPUS] + [canonical_id(t) for t, _, _ in TASKS]
    docs = [d for _, d in CORPUS] + [code for *_, code in TASKS]
    queries = [(t, statement) for t, statement, _ in TASKS]
    # bm25: the canonical is the best lexical match; it must still not come back
    BM25Index(ids, docs).save(tmp_path / "adapters" / "bm25" / "index")
    (tmp_path / "adapters" / "bm25" / "retriever.json").write_text(json.dumps({"kind": "bm25"}))
    assert BM25Index.load(tmp_path / "adapters" / "bm25" / "index").query_texts([TASKS[0][1]], 1)[0][0][0] == canonical_id("t-stairs")
    got = retrieve_examples(queries, index_dir=tmp_path / "index", k=2, adapters_dir=tmp_path / "adapters", adapter="bm25")
    assert [d for d, _ in got["t-stairs"]] and canonical_id("t-stairs") not in [d for d, _ in got["t-stairs"]]
    assert TASKS[0][2] not in [text for _, text in got["t-stairs"]]
    # dense (base model) over a chroma index with the canonical, and hybrid of the two
    model = load_encoder()
    ChromaIndex.build(tmp_path / "index", ids, encode_texts(model, docs, show_progress=False), docs)
    for name in (None, "hybrid"):
        if name == "hybrid":
            (tmp_path / "adapters" / "hybrid").mkdir()
            meta = {"kind": "hybrid", "dense": None, "rrf_k": 60, "depth": 10, "components": {}}
            (tmp_path / "adapters" / "hybrid" / "retriever.json").write_text(json.dumps(meta))
        got = retrieve_examples(queries, index_dir=tmp_path / "index", k=len(ids), adapters_dir=tmp_path / "adapters",
                                adapter=name)
        assert len(got["t-stairs"]) == len(CORPUS)
        assert canonical_id("t-stairs") not in [d for d, _ in got["t-stairs"]]


def test_hybrid_refuses_a_changed_component(tmp_path):
    (tmp_path / "bm25").mkdir()
    (tmp_path / "bm25" / "retriever.json").write_text("{}")
    meta = {"kind": "hybrid", "dense": None, "rrf_k": 60, "depth": 5, "components": {"bm25": directory_digest(tmp_path / "bm25")}}
    (tmp_path / "hybrid").mkdir()
    (tmp_path / "hybrid" / "retriever.json").write_text(json.dumps(meta))
    (tmp_path / "bm25" / "retriever.json").write_text('{"kind": "bm25"}')
    with pytest.raises(FileNotFoundError, match="run `dvc repro build_hybrid`"):
        load_retriever(tmp_path, "hybrid")


def test_fine_tuned_encoder_is_deterministic_and_learns(tmp_path):
    import torch

    from perfrepro.embeddings.encoder import encode_texts, load_encoder
    from perfrepro.embeddings.encoder_training import encoder_training_data, train_encoder

    torch.set_num_threads(1)
    problems = ["Climb stairs count ways.", "Two numbers adding to target.", "Reverse the string.", "Fibonacci number n."]
    solutions = [CORPUS[0][1].replace("fib", "climb"), CORPUS[1][1], CORPUS[2][1], CORPUS[0][1]]
    base = load_encoder(32)
    p, s = encode_texts(base, problems, show_progress=False), encode_texts(base, solutions, show_progress=False)
    data = encoder_training_data(["a", "b", "c", "d"], problems, solutions, p, s, hard_negatives=True)
    assert data.negatives is not None and len(data.negatives) == 4 and all(n != pos for n, pos in zip(data.negatives, solutions))
    weights, logs = [], []
    for run in range(2):
        model, log = train_encoder(load_encoder(32), data, epochs=1, batch_size=4, lr=1e-4, warmup_ratio=0.0,
                                   scale=20.0, seed=5, work_dir=tmp_path / f"w{run}", show_progress=False)
        weights.append([t.detach().clone() for t in model.parameters()])
        logs.append(log)
    assert logs[0]["steps"] == 1 and logs[0]["n_triplets"] == 4
    assert all(torch.equal(a, b) for a, b in zip(*weights))
    assert logs[0]["loss_per_epoch"] == logs[1]["loss_per_epoch"]
    base_weights = list(load_encoder(32).parameters())
    assert any(not torch.equal(a, b) for a, b in zip(weights[0], base_weights))  # it did train


def test_stages_bm25_hybrid_and_out_of_corpus_table(tmp_path, monkeypatch):
    """build_bm25 -> build_hybrid -> eval_retrieval on a tiny real corpus with an out-of-corpus set."""
    from perfrepro.embeddings.cache import build_embedding_set
    from perfrepro.embeddings.encoder import encode_texts, load_encoder
    from perfrepro.records import CorpusPair, write_jsonl

    model = load_encoder(64)
    statements = ["Return the n-th Fibonacci number.", "Find two indices whose numbers sum to target.",
                  "Reverse a string.", "Count ways to climb stairs."]
    pairs = [CorpusPair(f"c{i}", s, d, None, "python", "fixture")
             for i, (s, (_, d)) in enumerate(zip(statements, CORPUS + [("x", TASKS[0][2].replace("climb_stairs", "ways"))]))]
    splits = ["train", "test", "train", "test"]
    emb = build_embedding_set(model, pairs, splits, {}, batch_size=4, show_progress=False)
    monkeypatch.chdir(tmp_path)
    emb.save("embeddings")
    write_jsonl(Path("corpus_test.jsonl"), [p for p, s in zip(pairs, splits) if s == "test"])
    write_jsonl(Path("corpus_train.jsonl"), [p for p, s in zip(pairs, splits) if s == "train"])
    Path("ooc").mkdir()
    Path("ooc/tasks.jsonl").write_text("".join(json.dumps({"id": t, "statement": s, "canonical": c}) + "\n" for t, s, c in TASKS))
    np.save("ooc/queries.npy", encode_texts(model, [s for _, s, _ in TASKS], show_progress=False))
    np.save("ooc/canonicals.npy", encode_texts(model, [c for *_, c in TASKS], show_progress=False))
    params = (ROOT / "params.yaml").read_text(encoding="utf-8").replace("dense: adapter_infonce", "dense: tiny")
    params = params.replace("batch_size: 32, max_seq_length: 128", "batch_size: 2, max_seq_length: 32")
    assert "batch_size: 2, max_seq_length: 32" in params
    Path("params.yaml").write_text(params, encoding="utf-8")
    sys.path.insert(0, str(ROOT / "stages"))
    try:
        import build_bm25, build_hybrid, build_index, eval_retrieval, train_adapter, train_encoder
    finally:
        sys.path.pop(0)
    assert build_index.main(["--embeddings", "embeddings", "--out", "index"]) == 0
    flags = "--epochs 1 --batch_size 2 --lr 0.001 --warmup_steps 1 --max_grad_norm 1.0 --margin 0.2 --loss infonce --negatives none"
    assert train_adapter.main(["--variant", "tiny", "--embeddings", "embeddings", "--out-dir", "adapters", *flags.split()]) == 0
    assert build_bm25.main(["--embeddings", "embeddings", "--ooc", "ooc", "--out", "adapters/bm25"]) == 0
    assert build_hybrid.main(["--adapters", "adapters", "--out", "adapters/hybrid"]) == 0
    assert train_encoder.main(["--embeddings", "embeddings", "--train", "corpus_train.jsonl", "--test", "corpus_test.jsonl",
                               "--ooc", "ooc", "--out", "adapters/encoder_mnrl", "--threads", "1"]) == 0
    meta = json.loads(Path("adapters/encoder_mnrl/retriever.json").read_text())
    assert meta["kind"] == "encoder" and meta["n_train"] == 2 and meta["n_triplets"] == 2 and "seconds" not in meta
    assert np.load("adapters/encoder_mnrl/ooc/canonicals.npy").shape == (1, 384)
    # generation's bm25 index holds the corpus only; the task canonical is in the ooc index alone
    assert BM25Index.load("adapters/bm25/index").ids == emb.ids
    assert BM25Index.load("adapters/bm25/ooc").ids == emb.ids + [canonical_id("t-stairs")]
    # generation (query texts encoded now) and evaluation (the stored embeddings) load the same retrievers
    queries = {p.id: p.problem for p, s in zip(pairs, splits) if s == "test"}
    stored = EvaluationInputs(Path("embeddings"), Path("ooc"))
    for name in (None, "tiny", "encoder_mnrl", "bm25", "hybrid"):
        live = load_retriever("adapters", name, index_dir="index", max_seq_length=64).rank(queries, 4)
        kept = load_retriever("adapters", name, index_dir="index", evaluation=stored).rank(queries, 4)
        assert {q: [d for d, _ in r] for q, r in live.items()} == {q: [d for d, _ in r] for q, r in kept.items()}, name
    assert eval_retrieval.main(["--embeddings", "embeddings", "--index", "index", "--adapters", "adapters",
                                "--test", "corpus_test.jsonl", "--ooc", "ooc", *OUTS]) == 0
    full = json.loads(Path("metrics/retrieval_full.json").read_text())
    assert set(full["heldout"]) == set(full["ooc"]) == {"base_all-MiniLM-L6-v2", "tiny", "tiny__study", "encoder_mnrl", "bm25", "hybrid"}
    assert full["info"]["ooc_queries"] == 1 and full["info"]["ooc_documents"] == 5
    for split in ("heldout", "ooc"):
        for row in full[split].values():
            low, high = row["intervals"]["hit@1"]
            assert low <= row["metrics"]["hit@1"] <= high
    table = Path("metrics/retrieval.md").read_text()
    assert "**encoder_mnrl** trained on only 2 pairs/triplets" in table
    assert "## Out-of-corpus: 1 efficiency-task statements" in table and "| hybrid | 0 | 0 | RRF (k=60) of bm25 and tiny |" in table
