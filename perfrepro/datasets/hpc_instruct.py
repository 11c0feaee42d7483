"""hpc-instruct (hpcgroup/hpc-instruct, MIT) -> CorpusPair.

Two shapes are read:
- the hub dataset (or a local parquet/json/jsonl of it): columns `language`, `problem statement`,
  `solution` (a ```-fenced answer), plus `seed`, `model`, ...; it has no id column, so a row's id is
  `hpc-<row number>` in the full file (stable under the language filter);
- the study's `corpus_data.json`: `id`, `problem`, `solution` (fence already removed),
  `non_optimal_solution` (an LLM-made slow variant -> `slow_solution`), `seed`; no `language`.
The language filter keeps rows whose `language` equals `language` (case-insensitive); rows without
a `language` column are kept and labelled with the requested language.
"""

from __future__ import annotations

import os

from perfrepro.records import CorpusPair

from .base import DatasetError, Row, field, read_source, reject_duplicates, strip_code_fence

SOURCE = "hpc_instruct"
LABEL = "hpc-instruct"
HUB_NAME = "hpcgroup/hpc-instruct"
LOCAL_HINT = (
    "data.corpus: path/to/hpc-instruct.parquet (or .json/.jsonl with columns 'language', "
    "'problem statement', 'solution') with data.corpus_source: hpc_instruct"
)


def _pair(row: Row, language: str) -> CorpusPair | None:
    data = row.data
    if "problem statement" in data:  # the hub's column names
        row_language = field(row, "language", LABEL)
        if row_language.strip().lower() != language.lower():
            return None
        pair_id = str(data["id"]) if data.get("id") is not None else f"hpc-{row.number:06d}"
        return CorpusPair(
            id=pair_id,
            problem=field(row, "problem statement", LABEL).strip(),
            solution=_code(row, "solution"),
            slow_solution=None,
            language=row_language.strip().lower(),
            source=SOURCE,
        )
    if "problem" in data:  # the study's corpus_data.json
        if data.get("language") is not None and field(row, "language", LABEL).strip().lower() != language.lower():
            return None
        pair_id = field(row, "id", LABEL, (int, str))
        slow = data.get("non_optimal_solution")
        return CorpusPair(
            id=str(pair_id),
            problem=field(row, "problem", LABEL).strip(),
            solution=_code(row, "solution"),
            slow_solution=_code(row, "non_optimal_solution") if slow is not None else None,
            language=language.lower(),
            source=SOURCE,
        )
    raise DatasetError(
        f"{LABEL} file {row.where}: field 'problem statement' (hub format) or 'problem' "
        f"(corpus_data.json format) is missing"
    )


def _code(row: Row, name: str) -> str:
    code = strip_code_fence(field(row, name, LABEL))
    if not code.strip():
        raise DatasetError(f"{LABEL} file {row.where}: field {name!r} holds no code")
    return code


def load_corpus(path: str | os.PathLike = HUB_NAME, language: str = "python") -> list[CorpusPair]:
    """Problem statement -> solution pairs in `language`; a local file or `hf://hpcgroup/hpc-instruct`."""
    rows = read_source(path, LABEL, LOCAL_HINT)
    kept = [(pair, row) for row in rows if (pair := _pair(row, language)) is not None]
    reject_duplicates(((pair.id, row) for pair, row in kept), LABEL)
    if not kept:
        raise DatasetError(f"{LABEL} file {path}: no rows in language {language!r} (an empty source is an error)")
    return [pair for pair, _row in kept]
