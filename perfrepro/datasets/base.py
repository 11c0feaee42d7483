"""Shared reading helpers for the dataset loaders: rows with their position, field checks, the hub.

Every loader reads its source into `Row`s (the 1-based line or row number travels with the data),
so any error can name the file, the position and the field.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

csv.field_size_limit(sys.maxsize)  # ENAMEL keeps whole programs in CSV cells


class DatasetError(ValueError):
    """A source that cannot be mapped to canonical records; the message says where and why."""


@dataclass(frozen=True)
class Row:
    """One source row and where it came from (`unit` is "line" for JSONL, "row" otherwise)."""

    data: dict[str, Any]
    number: int  # 1-based
    origin: str  # file path or hub name
    unit: str = "row"

    @property
    def where(self) -> str:
        return f"{self.origin}, {self.unit} {self.number}"


HUB_PREFIX = "hf://"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w.-]+)?$")


def is_hub_reference(path: str | os.PathLike) -> bool:
    """`hf://owner/name[@split]`, or a bare `owner/name[@split]` that is not a local path."""
    text = str(path)
    if text.startswith(HUB_PREFIX):
        return True
    return (
        not Path(text).exists()
        and bool(_HUB_NAME.match(text))
        and Path(text.split("@")[0]).suffix not in _LOCAL_SUFFIXES
    )


_LOCAL_SUFFIXES = {".json", ".jsonl", ".gz", ".parquet", ".csv"}


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _loads(text: str, where: str, with_line: bool = False) -> Any:
    """`text` as JSON, or a DatasetError naming `where` (and the line in it, `with_line`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}: " if with_line else ""
        raise DatasetError(f"{where}: not valid JSON ({at}{exc.msg})") from None


def read_rows(path: str | os.PathLike, source: str) -> list[Row]:
    """Read a local .jsonl(.gz), .json (a list of objects), .parquet or .csv file into Rows.

    Raises DatasetError when the file is missing, unreadable, holds a non-object row, or is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{source} file {path}: not found")
    name = path.name.lower()
    rows: list[Row] = []
    try:
        if name.endswith((".jsonl", ".jsonl.gz")):
            with _open_text(path) as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    rows.append(Row(_loads(line, f"{source} file {path}, line {number}"), number, str(path), "line"))
        elif name.endswith((".json", ".json.gz")):
            with _open_text(path) as handle:
                data = _loads(handle.read(), f"{source} file {path}", with_line=True)
            if isinstance(data, dict):  # {"train": [...]} or a single record
                lists = [value for value in data.values() if isinstance(value, list)]
                data = lists[0] if len(lists) == 1 else [data]
            if not isinstance(data, list):
                raise DatasetError(f"{source} file {path}: expected a JSON list of objects")
            rows = [Row(item, number, str(path)) for number, item in enumerate(data, start=1)]
        elif name.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            rows = [Row(item, number, str(path)) for number, item in enumerate(table.to_pylist(), start=1)]
        elif name.endswith(".csv"):
            with path.open(encoding="utf-8", newline="") as handle:
                rows = [Row(dict(item), number, str(path)) for number, item in enumerate(csv.DictReader(handle), start=1)]
        else:
            raise DatasetError(
                f"{source} file {path}: unknown format (expected .jsonl, .jsonl.gz, .json, .parquet or .csv)"
            )
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"{source} file {path}: cannot be read ({exc})") from None
    except DatasetError:
        raise
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise DatasetError(f"{source} file {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    for row in rows:
        if not isinstance(row.data, dict):
            raise DatasetError(f"{source} file {row.where}: expected a JSON object, got {type(row.data).__name__}")
    if not rows:
        raise DatasetError(f"{source} file {path}: no rows (an empty source is an error)")
    return rows


def read_hub(reference: str | os.PathLike, source: str, local_hint: str, default_split: str = "train") -> list[Row]:
    """Load `owner/name[@split]` through `datasets.load_dataset`.

    Any failure (no network, offline mode, unknown dataset) becomes a DatasetError that says how
    to pass a local file instead.
    """
    text = str(reference)
    if text.startswith(HUB_PREFIX):
        text = text[len(HUB_PREFIX):]
    name, _, split = text.partition("@")
    split = split or default_split
    try:
        import datasets

        loaded = datasets.load_dataset(name, split=split)
    except Exception as exc:  # ConnectionError offline, FileNotFoundError/DatasetNotFoundError, ...
        raise DatasetError(
            f"{source}: cannot load {name!r} (split {split!r}) from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}). No hub reachable? Pass a local file instead, "
            f"e.g. {local_hint}"
        ) from None
    origin = f"hub {name}@{split}"
    rows = [Row(dict(item), number, origin) for number, item in enumerate(loaded, start=1)]
    if not rows:
        raise DatasetError(f"{source} {origin}: no rows (an empty source is an error)")
    return rows


def read_source(path: str | os.PathLike, source: str, local_hint: str) -> list[Row]:
    """A local file, or the hub when `path` is a hub reference (see is_hub_reference)."""
    if is_hub_reference(path):
        return read_hub(path, source, local_hint)
    return read_rows(path, source)


def field(row: Row, name: str, source: str, kind: type | tuple[type, ...] = str, allow_empty: bool = False) -> Any:
    """`row.data[name]`, checked to exist, to be of `kind` and (for strings) to be non-blank."""
    if name not in row.data or row.data[name] is None:
        raise DatasetError(f"{source} file {row.where}: field {name!r} is missing")
    value = row.data[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DatasetError(
            f"{source} file {row.where}: field {name!r} should be {expected}, got {type(value).__name__}"
        )
    if isinstance(value, str) and not allow_empty and not value.strip():
        raise DatasetError(f"{source} file {row.where}: field {name!r} is empty")
    return value


def reject_duplicates(keyed: Iterable[tuple[str, Row]], source: str) -> None:
    """Raise on the first id seen twice, naming both positions."""
    seen: dict[str, Row] = {}
    for key, row in keyed:
        if key in seen:
            raise DatasetError(
                f"{source} file {row.where}: duplicate id {key!r} (first at {seen[key].unit} {seen[key].number})"
            )
        seen[key] = row


def check_python(code: str, row: Row, name: str, source: str) -> None:
    """Fail on a field whose Python code does not compile (caught here, not deep in a later stage)."""
    try:
        compile(code, f"<{name}>", "exec")
    except SyntaxError as exc:
        raise DatasetError(
            f"{source} file {row.where}: field {name!r} is not valid Python (line {exc.lineno}: {exc.msg})"
        ) from None


_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def strip_code_fence(text: str) -> str:
    """The code inside the first ``` fence of `text`, or `text` itself when it has no fence."""
    match = _FENCE.search(text)
    if match is None:
        return text.strip("\n")
    return match.group(2).strip("\n")


# The prelude LeetCode-style solutions assume: imports plus the ListNode/TreeNode helpers
# (LeetCodeDataset v0.3.1's `prompt`, verbatim, kept as the data it is). EffiBench ships none, so
# its tasks get this one.
LEETCODE_PRELUDE = resources.files(__package__).joinpath("templates", "leetcode_prelude.txt").read_text(
    encoding="utf-8")
