"""What a retriever's name means, decided in this one place: `load_retriever(adapters_dir, name)`.

Retrievers are named like adapter variants (`retrieval.adapter`), each in its own directory under
the adapters directory:

  (no name)      linear, the base all-MiniLM-L6-v2 model: its queries against data/index (chroma)
  <variant>/     linear: a LinearAdapter on the base model's queries (no retriever.json)
  encoder_mnrl/  kind "encoder": model/ (fine-tuned all-MiniLM-L6-v2), embeddings/ (the corpus
                 re-embedded, an EmbeddingSet), index/ (its chroma index, what generate reads),
                 ooc/ (task statements and canonicals re-embedded, for the out-of-corpus check)
  bm25/          kind "bm25": index/ (corpus solutions), ooc/ (corpus + task canonicals)
  hybrid/        kind "hybrid": {"dense": <name>, "rrf_k": 60, "depth": 100, "components": {...}},
                 reciprocal-rank fusion of that dense retriever and bm25

Generation's few-shot retrieval loads one as it is (query texts encoded, the index generate
reads); eval_retrieval passes `EvaluationInputs`: the query embeddings the embed stages stored,
and for the out-of-corpus check the corpus solutions plus the efficiency tasks' canonical
solutions (ids `task:<task id>`), an evaluation-only set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from perfrepro.io import read_json
from perfrepro.retrieval.retrievers import (
    BM25Retriever, EncoderRetriever, HybridRetriever, LinearRetriever, ModelQueries, RetrievalInputError, Retriever,
    SearchIndex, StoredQueries, canonical_id, read_ooc_tasks,
)

BASE_DISPLAY = "base all-MiniLM-L6-v2"
BUILT_KINDS = ("encoder", "bm25", "hybrid")  # kinds with a retriever.json, in report order


@dataclass(frozen=True)
class EvaluationInputs:
    """For eval_retrieval: queries are the stored embeddings of `embeddings_dir` (test-split
    problems) or, with `out_of_corpus`, of `ooc_dir` (task statements), searched against the
    corpus solutions plus the tasks' canonicals."""

    embeddings_dir: Path  # data/embeddings (the embed stage)
    ooc_dir: Path  # data/ooc (the embed_ooc stage)
    out_of_corpus: bool = False


@dataclass(frozen=True)
class RetrieverSetup:
    adapters_dir: Path
    index_dir: Path  # the chroma index of the corpus solutions that generate reads (data/index)
    protocol: str  # which training of a linear adapter: heldout | study
    max_seq_length: int | None  # the base model's, for query texts
    batch_size: int
    evaluation: EvaluationInputs | None


def load_retriever(
    adapters_dir: str | Path,
    name: str | None,
    *,
    protocol: str = "heldout",
    index_dir: str | Path = "data/index",
    max_seq_length: int | None = None,
    batch_size: int = 64,
    evaluation: EvaluationInputs | None = None,
) -> Retriever:
    """The retriever `name`: None (the base model), a linear adapter variant, encoder_mnrl, bm25
    or hybrid (whatever kind its retriever.json says)."""
    setup = RetrieverSetup(Path(adapters_dir), Path(index_dir), protocol, max_seq_length, batch_size, evaluation)
    return _load(setup, name)


def retriever_kind(adapters_dir: str | Path, name: str | None) -> str:
    """"linear" for the base model (None) and LinearAdapter variants, else its retriever.json's kind."""
    meta = Path(adapters_dir) / name / "retriever.json" if name is not None else None
    return read_json(meta)["kind"] if meta is not None and meta.exists() else "linear"


def _load(setup: RetrieverSetup, name: str | None) -> Retriever:
    kind = retriever_kind(setup.adapters_dir, name)
    if kind not in _LOADERS:
        raise RetrievalInputError(f"{setup.adapters_dir / str(name) / 'retriever.json'}: unknown kind {kind!r} "
                                  f"(expected one of {', '.join(_LOADERS)})")
    return _LOADERS[kind](setup, name)


def _evaluation_parts(evaluation: EvaluationInputs, chroma_dir: Path, embeddings_dir: Path,
                      ooc_embedded_dir: Path) -> tuple[SearchIndex, StoredQueries]:
    """A dense retriever's index and stored queries for evaluation: the test-split problems against
    chroma, or the tasks' statements against the corpus plus the tasks' canonicals (in memory)."""
    from perfrepro.embeddings.cache import EmbeddingSet
    from perfrepro.index.chroma import ChromaIndex
    from perfrepro.index.exact import ExactIndex

    corpus = EmbeddingSet.load(embeddings_dir)
    if not evaluation.out_of_corpus:
        index = ChromaIndex.open(chroma_dir)
        if len(index) != len(corpus.ids):
            raise RetrievalInputError(f"{chroma_dir}: {len(index)} documents but {len(corpus.ids)} corpus pairs in "
                                      f"{embeddings_dir}; rerun the stage that builds it")
        return index, StoredQueries(tuple(corpus.ids), corpus.problems, f"{embeddings_dir}/problems.npy")
    tasks = read_ooc_tasks(evaluation.ooc_dir)
    documents = np.concatenate([corpus.solutions, np.load(ooc_embedded_dir / "canonicals.npy")])
    index = ExactIndex(list(corpus.ids) + [canonical_id(t["id"]) for t in tasks], documents)
    queries = StoredQueries(tuple(t["id"] for t in tasks), np.load(ooc_embedded_dir / "queries.npy"),
                            f"{ooc_embedded_dir}/queries.npy")
    return index, queries


def _load_linear(setup: RetrieverSetup, name: str | None) -> Retriever:
    from perfrepro.embeddings.encoder import load_encoder
    from perfrepro.index.chroma import ChromaIndex

    evaluation = setup.evaluation
    if evaluation is None:
        index, queries = ChromaIndex.open(setup.index_dir), ModelQueries(
            lambda: load_encoder(max_seq_length=setup.max_seq_length), setup.batch_size)
    else:
        index, queries = _evaluation_parts(evaluation, setup.index_dir, evaluation.embeddings_dir, evaluation.ooc_dir)
    adapter = None
    if name is not None:
        from perfrepro.embeddings.adapter import load_variant

        adapter = load_variant(setup.adapters_dir, name, protocol=setup.protocol)
    return LinearRetriever(index, queries, adapter)


def _load_encoder(setup: RetrieverSetup, name: str | None) -> Retriever:
    from perfrepro.embeddings.encoder import load_encoder
    from perfrepro.index.chroma import ChromaIndex

    root = setup.adapters_dir / str(name)
    if setup.evaluation is None:  # the model keeps the max_seq_length it was saved with
        return EncoderRetriever(ChromaIndex.open(root / "index"),
                                ModelQueries(lambda: load_encoder(path=str(root / "model")), setup.batch_size))
    return EncoderRetriever(*_evaluation_parts(setup.evaluation, root / "index", root / "embeddings", root / "ooc"))


def _load_bm25(setup: RetrieverSetup, name: str | None) -> Retriever:
    from perfrepro.index.bm25 import BM25Index

    evaluation = setup.evaluation
    part = "ooc" if evaluation is not None and evaluation.out_of_corpus else "index"
    return BM25Retriever(BM25Index.load(setup.adapters_dir / str(name) / part), show_progress=evaluation is not None)


def _load_hybrid(setup: RetrieverSetup, name: str | None) -> Retriever:
    meta = read_json(setup.adapters_dir / str(name) / "retriever.json")
    check_hybrid_components(setup.adapters_dir, meta)
    return HybridRetriever(_load(setup, meta["dense"]), _load(setup, "bm25"), int(meta["rrf_k"]), int(meta["depth"]))


_LOADERS: dict[str, Callable[[RetrieverSetup, str | None], Retriever]] = {
    "linear": _load_linear, "encoder": _load_encoder, "bm25": _load_bm25, "hybrid": _load_hybrid,
}


# ---- what is on disk, and what trained it ----------------------------------------------------------

@dataclass(frozen=True)
class Training:
    """What trained a retriever, in the report's words."""

    data: str | None
    n_train: int | None = 0
    n_triplets: int | None = None
    trained: bool = False  # a trained kind: the report warns when it saw too few pairs

    def as_dict(self) -> dict[str, Any]:
        out = {"data": self.data, "n_train": self.n_train}
        return {**out, "n_triplets": self.n_triplets} if self.trained else out


@dataclass(frozen=True)
class RetrieverEntry:
    name: str | None  # what load_retriever takes; None: the base model
    display: str  # e.g. "adapter_5_negatives [study protocol]"
    protocol: str | None  # the training protocol; None: the base model, trained on nothing
    training: Training


def display_name(variant: str, protocol: str) -> str:
    return f"{variant} [study protocol]" if protocol == "study" else variant


def _built_training(adapters_dir: Path, name: str, kind: str) -> Training:
    meta = read_json(adapters_dir / name / "retriever.json")
    if kind == "encoder":
        return Training(meta.get("data"), meta.get("n_train"), meta.get("n_triplets"), trained=True)
    if kind == "hybrid":
        return Training(f"RRF (k={meta['rrf_k']}) of bm25 and {meta['dense']}")
    return Training(meta.get("data"), meta.get("n_train", 0))


def list_retrievers(adapters_dir: str | Path, variants: Sequence[str], protocols: Sequence[str]
                    ) -> tuple[list[RetrieverEntry], list[str]]:
    """Every retriever under `adapters_dir`, in report order: the base model; the linear variants
    (`variants` order, then any others found, sorted) under each of `protocols`; then the built
    retrievers by kind (encoder, bm25, hybrid). Also a note for each variant not trained under a
    protocol."""
    from perfrepro.embeddings.adapter import adapter_stem

    root = Path(adapters_dir)
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    linear = [v for v in found if retriever_kind(root, v) == "linear"]
    ordered = [v for v in variants if v in linear] + [v for v in linear if v not in variants]
    entries = [RetrieverEntry(None, BASE_DISPLAY, None, Training("no training"))]
    notes = []
    for protocol in protocols:
        for variant in ordered:
            stem = adapter_stem(root, variant, protocol)
            if not Path(f"{stem}.json").exists():
                notes.append(f"{display_name(variant, protocol)}: not trained ({stem}.json missing)")
                continue
            log = read_json(f"{stem}.json").get("log", {})
            training = Training(log.get("data", "?"), log.get("n_train", 0), log.get("n_triplets", 0), trained=True)
            entries.append(RetrieverEntry(variant, display_name(variant, protocol), protocol, training))
    for kind in BUILT_KINDS:
        for name in (n for n in found if retriever_kind(root, n) == kind):
            entries.append(RetrieverEntry(name, name, "heldout", _built_training(root, name, kind)))
    return entries, notes


# ---- the hybrid's record of its components --------------------------------------------------------

def directory_digest(directory: str | Path) -> str:
    """md5 over the relative paths and bytes of every file under `directory` (sorted)."""
    digest = hashlib.md5()
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def check_hybrid_components(adapters_dir: str | Path, meta: dict) -> None:
    """Fail when the BM25 or dense retriever changed since the hybrid stage recorded them."""
    for component, recorded in meta.get("components", {}).items():
        actual = directory_digest(Path(adapters_dir) / component)
        if actual != recorded:
            raise FileNotFoundError(
                f"{Path(adapters_dir) / 'hybrid'}: component {component} changed since it was recorded; "
                f"run `dvc repro build_hybrid`"
            )
