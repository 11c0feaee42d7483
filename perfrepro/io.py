"""Small atomic file helpers shared by the library and the stages."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextlib.contextmanager
def atomic_outputs(*outs: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """All-or-nothing outputs for one stage: ``with atomic_outputs(a, b) as (tmp_a, tmp_b): ...``.

    Yields, for each output, a path that does not exist yet, with the output's own name, inside a
    hidden folder beside it (same filesystem, so the final rename is cheap). The stage writes a
    file or a whole directory there. When the block ends normally, every output is replaced by
    what was written (an old file or directory of that name is removed); when it raises, what was
    written is deleted and the outputs are left as they were. So a stage that fails leaves no
    half-written outputs for DVC to refuse to overwrite (`dvc checkout` then needs no --force).
    An output the block did not write is left as it was.
    """
    finals = [Path(out) for out in outs]
    holders: list[Path] = []
    try:
        for final in finals:
            final.parent.mkdir(parents=True, exist_ok=True)
            holders.append(Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial")))
        yield tuple(holder / final.name for holder, final in zip(holders, finals))
        for holder, final in zip(holders, finals):
            written = holder / final.name
            if not (written.exists() or written.is_symlink()):
                continue
            if final.is_dir() and not final.is_symlink():
                final.rename(holder / ".replaced")  # a directory cannot be replaced in one rename
            elif (final.exists() or final.is_symlink()) and written.is_dir():
                final.unlink()
            os.replace(written, final)
    finally:
        for holder in holders:
            shutil.rmtree(holder, ignore_errors=True)
