"""The run's directory on the host (its name, the files it starts with), and reading what the
program left in it: the collected files, and whether it used up its disk budget."""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import tempfile
import uuid
from pathlib import Path
from typing import Mapping, Sequence

from perfrepro.execution.sandbox.levels import Isolation
from perfrepro.execution.sandbox.limits import Limits

RUN_DIR_INODES = 4096  # files and directories a program may create in its run dir
_FULL_MARGIN = 64 << 10  # a run dir with less free space than this (bytes) is full
COLLECT_CAP = 64 << 20  # the largest file `collect` reads back
_PAGE = os.sysconf("SC_PAGE_SIZE")
# A run dir is named perfrepro-sbx-<owner>-<random>. A process that starts workers (a Dask
# LocalCluster) gives them an owner of its own in this variable, and once they are gone removes
# the run dirs a killed worker left (a SIGKILLed process runs no `finally`).
RUN_DIR_OWNER_ENV = "PERFREPRO_RUN_DIR_OWNER"
_ROOT_PREFIX = "perfrepro-sbx-"


def new_owner() -> str:
    return uuid.uuid4().hex[:8]


@functools.cache
def _own_owner() -> str:
    return new_owner()


def run_dir_owner() -> str:
    """The owner in this process's run dir names: `$PERFREPRO_RUN_DIR_OWNER` when it is one, else this
    process's own (every name has the same length, so a path seen by an unisolated run is too)."""
    given = os.environ.get(RUN_DIR_OWNER_ENV, "")
    return given if re.fullmatch(r"[0-9a-f]{8}", given) else _own_owner()


def make_run_root() -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{_ROOT_PREFIX}{run_dir_owner()}-"))


def remove_run_roots(owner: str) -> list[str]:
    """Remove the run dirs `owner`'s processes left in the temp dir; call it only once they are gone."""
    if not re.fullmatch(r"[0-9a-f]{8}", owner):
        raise ValueError(f"run dir owner {owner!r} is not 8 hex digits")
    left = sorted(Path(tempfile.gettempdir()).glob(f"{_ROOT_PREFIX}{owner}-*"))
    for root in left:
        shutil.rmtree(root, ignore_errors=True)
    return [root.name for root in left]


def write_run_dir(root: Path, files: Mapping[str, str | bytes], executables: Sequence[str],
                  iso: Isolation, limits: Limits) -> tuple[Path, int, int]:
    """The run's working dir with `files` in it, and the size (KiB) and inode count of the tmpfs
    the keeper copies it into: the run's own files plus `limits.disk_mb` and RUN_DIR_INODES."""
    workdir = root / "work"
    workdir.mkdir()
    for name, content in files.items():
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
    for name in executables:
        (workdir / name).chmod(0o700)
    if iso.uid is not None:
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, iso.uid, iso.gid)
    os.chmod(workdir, 0o700)
    entries = list(workdir.rglob("*"))
    pages = sum(-(-path.stat().st_size // _PAGE) for path in entries if path.is_file())
    return workdir, (limits.disk_mb << 10) + pages * _PAGE // 1024, RUN_DIR_INODES + len(entries) + 1


def check_collect_names(collect: Sequence[str]) -> None:
    for name in collect:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"sandbox collect: {name!r} is not a plain file name")


def read_regular_file(path: str) -> bytes | None:
    """The content of `path` when it is a regular file of at most COLLECT_CAP bytes (never
    following a symlink, never blocking on a FIFO the program made), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > COLLECT_CAP:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def collect_files(directory: str, names: Sequence[str]) -> dict[str, bytes]:
    found = {name: read_regular_file(os.path.join(directory, name)) for name in names}
    return {name: data for name, data in found.items() if data is not None}


def is_full(directory: str) -> bool:
    """The filesystem of `directory` (the run's tmpfs) has no room left: bytes or inodes."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < _FULL_MARGIN or info.f_favail == 0
