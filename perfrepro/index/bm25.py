"""Lexical search over solutions with BM25 (the `bm25s` library), tokenised for code.

Identifiers are split on snake_case and camelCase (`maxSubArray` -> max, sub, array; `max_sub`
-> max, sub) and the whole identifier is kept too, all lower-cased; English stop words are
dropped so a statement's prose does not swamp its few content words. Ranking scores every
document and breaks ties by document id, so a query always gives the same list.

On disk (a directory): `ids.json` (ids, settings) and `documents.jsonl` (the texts); loading
re-indexes them, which takes about a second for 2,000 solutions and is the same index bit for bit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from perfrepro.index.exact import Hit
from perfrepro.io import read_json, write_json, write_text
from perfrepro.vectors import rank_order

_WORD = re.compile(r"[A-Za-z0-9_]+")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
STOP_WORDS = frozenset(
    "a an and are as at be by for from has have if in into is it its of on or such that the their then "
    "there these they this to was will with you your we our can each which return given".split()
)


def code_tokens(text: str) -> list[str]:
    """Lower-case tokens: every identifier, its snake_case and camelCase parts, numbers; no stop words."""
    tokens: list[str] = []
    for word in _WORD.findall(text):
        parts = [p for chunk in word.split("_") if chunk for p in _PART.findall(chunk)]
        whole = word.strip("_").lower()
        if len(parts) > 1 and whole:
            tokens.append(whole)
        tokens.extend(p.lower() for p in parts)
    return [t for t in tokens if t not in STOP_WORDS]


class BM25Index:
    """BM25 over `documents` (k1, b and the variant `method` as bm25s defines them)."""

    def __init__(self, ids: Sequence[str], documents: Sequence[str], k1: float = 1.5, b: float = 0.75,
                 method: str = "lucene", show_progress: bool = False):
        import bm25s

        if len(ids) != len(documents):
            raise ValueError(f"BM25Index: {len(ids)} ids but {len(documents)} documents")
        if len(set(ids)) != len(ids):
            raise ValueError("BM25Index: document ids must be unique")
        self.ids, self.documents = list(ids), list(documents)
        self.settings = {"k1": float(k1), "b": float(b), "method": method}
        self.model = bm25s.BM25(k1=k1, b=b, method=method)
        self.model.index([code_tokens(d) for d in self.documents], show_progress=show_progress)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, text: str) -> np.ndarray:
        return np.asarray(self.model.get_scores(code_tokens(text)), dtype=np.float64)

    def query_texts(self, texts: Sequence[str], k: int, show_progress: bool = False) -> list[list[Hit]]:
        """Top-k per query text as (id, BM25 score, document), score descending, ties by id."""
        results = []
        for text in tqdm(texts, desc="bm25", unit="query", disable=not show_progress, leave=False):
            row = self.scores(text)
            order = rank_order(row[None, :], self.ids)[0, :k]
            results.append([(self.ids[c], float(row[c]), self.documents[c]) for c in order])
        return results

    def get_documents(self, ids: Sequence[str]) -> dict[str, str]:
        """{id: text} for those of `ids` the index holds."""
        wanted = set(ids)
        return {doc_id: text for doc_id, text in zip(self.ids, self.documents) if doc_id in wanted}

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "ids.json", {"ids": self.ids, "settings": self.settings})
        write_text(directory / "documents.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in self.documents))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "BM25Index":
        """Rebuilt from the saved texts and settings (indexing 2,000 solutions takes about a second)."""
        directory = Path(directory)
        if not (directory / "ids.json").exists():
            raise FileNotFoundError(f"BM25 index {directory}: ids.json not found (run the build_bm25 stage)")
        meta = read_json(directory / "ids.json")
        with (directory / "documents.jsonl").open(encoding="utf-8") as lines:
            documents = [json.loads(line) for line in lines if line.strip()]
        return cls(meta["ids"], documents, **meta["settings"])
