"""The embedding cache written once by the `embed` stage and read by every adapter variant.

A directory holding:
  problems.npy        (n, 384) float32, L2-normalised statement embeddings (the queries)
  solutions.npy       (n, 384) float32, L2-normalised performant-solution embeddings (the documents)
  slow_solutions.npy  (m, 384) float32, embeddings of the LLM-made slow variants (m may be 0)
  ids.json            corpus ids in row order, their split (train/test), the slow variants' ids, model
  documents.jsonl     one {"id", "solution", "split", "source", "language"} per row, for the index
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from perfrepro.io import read_json, write_json, write_text

SPLITS = ("train", "test")


@dataclass
class EmbeddingSet:
    ids: list[str]
    splits: list[str]
    problems: np.ndarray
    solutions: np.ndarray
    slow_ids: list[str]
    slow_solutions: np.ndarray
    documents: list[dict[str, Any]]
    model: str = "all-MiniLM-L6-v2"

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.splits) == n == len(self.problems) == len(self.solutions) == len(self.documents)):
            raise ValueError(
                f"EmbeddingSet: {n} ids, {len(self.splits)} splits, {len(self.problems)} problems, "
                f"{len(self.solutions)} solutions, {len(self.documents)} documents"
            )
        if len(set(self.ids)) != n:
            raise ValueError("EmbeddingSet: corpus ids must be unique")
        bad = sorted(set(self.splits) - set(SPLITS))
        if bad:
            raise ValueError(f"EmbeddingSet: unknown split {bad[0]!r} (expected train or test)")
        if len(self.slow_ids) != len(self.slow_solutions):
            raise ValueError(f"EmbeddingSet: {len(self.slow_ids)} slow ids but {len(self.slow_solutions)} slow embeddings")
        unknown = sorted(set(self.slow_ids) - set(self.ids))
        if unknown:
            raise ValueError(f"EmbeddingSet: slow variant for unknown corpus id {unknown[0]!r}")

    # ---- selections -------------------------------------------------------------------------
    def rows(self, split: str) -> np.ndarray:
        """Row indices of `split`: 'train', 'test' or 'all'."""
        if split == "all":
            return np.arange(len(self.ids))
        if split not in SPLITS:
            raise ValueError(f"split: expected train, test or all, got {split!r}")
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)

    def training_rows(self, protocol: str) -> np.ndarray:
        """heldout: the train split only; study: every row, test rows included (the study's leakage)."""
        if protocol == "heldout":
            return self.rows("train")
        if protocol == "study":
            return self.rows("all")
        raise ValueError(f"retrieval.protocol: expected heldout or study, got {protocol!r}")

    def slow_by_row(self) -> dict[int, int]:
        """Corpus row -> row in slow_solutions, for the pairs that have a slow variant."""
        position = {cid: i for i, cid in enumerate(self.ids)}
        return {position[cid]: j for j, cid in enumerate(self.slow_ids)}

    # ---- disk -------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "problems.npy", np.asarray(self.problems, dtype=np.float32))
        np.save(directory / "solutions.npy", np.asarray(self.solutions, dtype=np.float32))
        slow = np.asarray(self.slow_solutions, dtype=np.float32).reshape(len(self.slow_ids), self.problems.shape[1])
        np.save(directory / "slow_solutions.npy", slow)
        write_json(directory / "ids.json", {
            "model": self.model, "ids": self.ids, "splits": self.splits, "slow_ids": self.slow_ids,
            "dim": int(self.problems.shape[1]),
        })
        write_text(directory / "documents.jsonl", "".join(
            json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n" for doc in self.documents
        ))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "EmbeddingSet":
        directory = Path(directory)
        meta_path = directory / "ids.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"embedding cache {directory}: ids.json not found (run the embed stage)")
        meta = read_json(meta_path)
        documents = []
        with (directory / "documents.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    documents.append(json.loads(line))
        return cls(
            ids=list(meta["ids"]),
            splits=list(meta["splits"]),
            problems=np.load(directory / "problems.npy"),
            solutions=np.load(directory / "solutions.npy"),
            slow_ids=list(meta["slow_ids"]),
            slow_solutions=np.load(directory / "slow_solutions.npy"),
            documents=documents,
            model=meta.get("model", "all-MiniLM-L6-v2"),
        )


def build_embedding_set(
    model,
    pairs: Sequence[Any],
    splits: Sequence[str],
    slow_variants: dict[str, str],
    batch_size: int = 64,
    show_progress: bool = True,
) -> EmbeddingSet:
    """Encode corpus problems, solutions and slow variants once (CorpusPair-like `pairs`)."""
    from perfrepro.embeddings.encoder import MODEL_NAME, encode_texts

    ids = [p.id for p in pairs]
    slow_ids = [cid for cid in ids if slow_variants.get(cid)]
    problems = encode_texts(model, [p.problem for p in pairs], batch_size, show_progress)
    solutions = encode_texts(model, [p.solution for p in pairs], batch_size, show_progress)
    slow = encode_texts(model, [slow_variants[cid] for cid in slow_ids], batch_size, show_progress)
    documents = [
        {"id": p.id, "solution": p.solution, "split": s, "source": p.source, "language": p.language}
        for p, s in zip(pairs, splits)
    ]
    return EmbeddingSet(list(ids), list(splits), problems, solutions, slow_ids, slow, documents, MODEL_NAME)
