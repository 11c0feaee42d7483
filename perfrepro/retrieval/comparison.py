"""Every retriever on two evaluation sets (what eval_retrieval reports):

- held-out: the test-split problem statements against all corpus solutions (each retriever's own
  index: data/index, encoder_mnrl's index, bm25's index);
- out-of-corpus: the efficiency tasks' statements (data/ooc) against the corpus solutions plus
  the tasks' canonical solutions, an evaluation-only set that generate never reads. No variant
  trained on these problems, so a variant that only memorised the corpus falls here.

Which retrievers exist and how each loads is `perfrepro.retrieval.loading`'s business; this
module only lists them, runs the evaluation and gathers what the report needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from perfrepro.embeddings.adapter import PROTOCOLS
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.index.exact import ExactIndex
from perfrepro.records import CorpusPair, read_jsonl
from perfrepro.retrieval.evaluation import Candidate, EvaluationSet, ModelRow, evaluate_retrievers, index_recall
from perfrepro.retrieval.loading import EvaluationInputs, RetrieverEntry, list_retrievers, load_retriever
from perfrepro.retrieval.retrievers import (
    LinearRetriever, RetrievalInputError, StoredQueries, canonical_id, read_ooc_tasks,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComparisonInputs:
    embeddings_dir: Path  # data/embeddings: the corpus, its split and base embeddings
    index_dir: Path  # data/index: chroma index of every corpus solution
    adapters_dir: Path  # data/adapters: linear variants and the built retrievers
    test_file: Path  # data/prepared/corpus_test.jsonl: the held-out problem statements
    ooc_dir: Path  # data/ooc: the out-of-corpus set (skipped when absent)


@dataclass(frozen=True)
class ComparisonSettings:
    ks: tuple[int, ...]  # sorted, distinct
    seed: int  # of the bootstrap intervals
    protocol: str  # the linear variants of this training protocol come first
    depth: int  # each ranking's length (>= max(ks); a hybrid's components need theirs)
    variants: tuple[str, ...] = ()  # linear variants in report order (params.yaml's adapters)
    min_training_pairs: int = 200  # the report warns about a trained retriever that saw fewer


@dataclass(frozen=True)
class Comparison:
    settings: ComparisonSettings
    entries: tuple[RetrieverEntry, ...]  # every retriever evaluated, in report order
    heldout: tuple[ModelRow, ...]
    ooc: tuple[ModelRow, ...]  # empty when the out-of-corpus set is absent
    n_queries: int
    n_documents: int
    n_ooc_queries: int  # 0 when the out-of-corpus set is absent
    index_recall: float  # of chroma's top max(ks) against exact search, base-model queries
    notes: tuple[str, ...]

    @property
    def has_ooc(self) -> bool:
        return self.n_ooc_queries > 0


def heldout_set(embeddings: EmbeddingSet, embeddings_dir: Path, test_file: Path) -> EvaluationSet:
    """Test-split problem statements, each relevant to its own solution."""
    test_ids = [embeddings.ids[row] for row in embeddings.rows("test")]
    if not test_ids:
        raise RetrievalInputError(f"{embeddings_dir}: no test-split queries")
    statement = {pair.id: pair.problem for pair in read_jsonl(test_file, CorpusPair)}
    missing = [query_id for query_id in test_ids if query_id not in statement]
    if missing:
        raise RetrievalInputError(f"{test_file}: no statement for test id {missing[0]!r} ({len(missing)} missing)")
    return EvaluationSet("heldout", {q: statement[q] for q in test_ids}, {q: q for q in test_ids})


def out_of_corpus_set(ooc_dir: Path) -> EvaluationSet:
    """Task statements, each relevant to its task's canonical solution (`task:<id>`)."""
    tasks = read_ooc_tasks(ooc_dir)
    return EvaluationSet("ooc", {t["id"]: t["statement"] for t in tasks}, {t["id"]: canonical_id(t["id"]) for t in tasks})


def compare_retrievers(inputs: ComparisonInputs, settings: ComparisonSettings) -> Comparison:
    """Rows per retriever on the held-out and out-of-corpus sets, and what the report says about them."""
    embeddings = EmbeddingSet.load(inputs.embeddings_dir)
    heldout = heldout_set(embeddings, inputs.embeddings_dir, inputs.test_file)
    has_ooc = (inputs.ooc_dir / "tasks.jsonl").exists()
    ooc = out_of_corpus_set(inputs.ooc_dir) if has_ooc else None
    protocols = [settings.protocol] + [p for p in PROTOCOLS if p != settings.protocol]
    entries, notes = list_retrievers(inputs.adapters_dir, settings.variants, protocols)

    def candidates(out_of_corpus: bool) -> Iterator[Candidate]:
        evaluation = EvaluationInputs(inputs.embeddings_dir, inputs.ooc_dir, out_of_corpus)
        for entry in entries:  # loaded one at a time, as the evaluation reaches it
            retriever = load_retriever(inputs.adapters_dir, entry.name, protocol=entry.protocol or "heldout",
                                       index_dir=inputs.index_dir, evaluation=evaluation)
            yield Candidate(entry.display, entry.protocol, retriever)

    def rows(evaluation_set: EvaluationSet, out_of_corpus: bool) -> tuple[ModelRow, ...]:
        return tuple(evaluate_retrievers(candidates(out_of_corpus), evaluation_set, settings.ks,
                                         depth=settings.depth, seed=settings.seed))

    if not has_ooc:
        notes.append(f"out-of-corpus evaluation skipped: {inputs.ooc_dir}/tasks.jsonl not found (run embed_ooc)")
    return Comparison(
        settings, tuple(entries), heldout=rows(heldout, False), ooc=rows(ooc, True) if ooc else (),
        n_queries=len(heldout.queries), n_documents=len(embeddings.ids), n_ooc_queries=len(ooc.queries) if ooc else 0,
        index_recall=chroma_recall(inputs, embeddings, heldout, settings), notes=tuple(notes))


def chroma_recall(inputs: ComparisonInputs, embeddings: EmbeddingSet, heldout: EvaluationSet,
                  settings: ComparisonSettings) -> float:
    """Chroma is searched exhaustively: how much of the exact top max(ks) it returns for the base
    model's held-out queries (1.0 when it is exhaustive indeed)."""
    evaluation = EvaluationInputs(inputs.embeddings_dir, inputs.ooc_dir)
    chroma = load_retriever(inputs.adapters_dir, None, index_dir=inputs.index_dir, evaluation=evaluation)
    stored = StoredQueries(tuple(embeddings.ids), embeddings.problems, f"{inputs.embeddings_dir}/problems.npy")
    exact = LinearRetriever(ExactIndex(embeddings.ids, embeddings.solutions), stored)
    top = max(settings.ks)
    return index_recall(chroma.rank(heldout.queries, settings.depth), exact.rank(heldout.queries, top), top)
