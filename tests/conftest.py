"""Every test, and the session as a whole, leaves nothing behind.

An autouse fixture compares what exists before and after each test (and the session), and fails
the test that leaves behind:
- a process of its own tree: one started since, by this pytest process or by such a process (a
  process a longer-lived one started, such as a Dask worker its nanny restarts, belongs to that
  one and is checked when it ends; a process that daemonizes away from the tree is not seen);
- a listening TCP port held by this process or such a process;
- a `perfrepro-*` directory in the temp dir, or Dask's `dask-scratch-space`;
- a changed file in the repository: a new, deleted or rewritten file anywhere in the checkout
  except inside ignored directories (whose own entries are still watched), `__pycache__` and
  `.venv`.

Attribution: the temp dir is private to this session (`tempfile.tempdir` and `$TMPDIR`), and
processes and ports are counted only in this process's tree, so other pytest-xdist workers and
other people's runs on a shared machine are never blamed. Under xdist each worker is its own
session. Repository changes are global to the checkout: a change made by another worker's test
in the same moment is reported too, and says so. What a test left is removed after it is
reported (processes killed, directories deleted), so one leak fails one test, not the rest.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMP_PREFIXES = ("perfrepro-", "dask-scratch-space")
PRIVATE_PREFIX = "pytest-leftovers-"  # + pid: the session's private temp dir
# interpreter-lifetime helpers a library may start once per process; they end with pytest
LIFETIME_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
# paths Python, pytest and pip write while tests run
_OWN_WRITES = ("__pycache__", ".pytest_cache", ".venv")
# how long a leftover may take to go away (a process being reaped, a port closing), in s
_SETTLE_S = float(os.environ.get("PERFREPRO_TEST_SETTLE_S", "3"))
_reported: set[str] = set()  # what a test was already failed for: the session does not repeat it


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (children of any of its threads, recursively)."""
    found: set[int] = set()
    queue = [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    queue.append(child)
    return found


@dataclass(frozen=True)
class Process:
    pid: int
    started: str  # clock ticks after boot: with the pid, names one process even when pids are reused
    parent: int
    command: str


def _process(pid: int) -> Process | None:
    """A live (not zombie) process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else Process(pid, fields[19], int(fields[1]), cmdline)


def _processes() -> dict[tuple[int, str], Process]:
    found = (_process(pid) for pid in _descendants(os.getpid()))
    return {(p.pid, p.started): p for p in found
            if p is not None and not any(helper in p.command for helper in LIFETIME_HELPERS)}


def _sockets(pids: set[int]) -> dict[str, int]:
    """The sockets the processes `pids` hold: inode -> pid."""
    sockets = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                sockets[target[8:-1]] = pid
    return sockets


def _address(hex_address: str) -> str:
    """/proc/net/tcp's address (host byte order, 32-bit words) as text."""
    raw = b"".join(bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, len(hex_address), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _listening_ports(inodes: set[str]) -> set[str]:
    """host:port of those of the sockets `inodes` that listen on TCP. (Reading /proc/net/tcp takes
    ~15 ms however few sockets there are: done only when the tree holds new sockets.)"""
    if not inodes:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                address, port = fields[1].split(":")
                ports.add(f"{_address(address)}:{int(port, 16)}")
    return ports


def _temp_dirs() -> set[str]:
    return {entry.name for entry in os.scandir(tempfile.gettempdir()) if entry.name.startswith(TEMP_PREFIXES)}


def _git(*args: str) -> list[str]:
    done = subprocess.run(["git", "-C", str(ROOT), *args, "-z"], capture_output=True, timeout=60)
    return [entry for entry in done.stdout.decode(errors="replace").split("\0") if entry] if done.returncode == 0 else []


def _own_write(path: str) -> bool:
    return any(part in _OWN_WRITES for part in Path(path).parts)


@functools.cache
def _watched() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(files, directories) of the checkout to watch, as (name in reports, absolute path), listed
    once: the tracked and untracked files, the ignored paths (an ignored directory as itself), and
    every directory holding one of them. (The two `git` calls take 10-30 ms on a loaded machine;
    a stat of each watched path, ~1 ms.)"""
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard")
    listed += [entry[3:] for entry in _git("status", "--porcelain=v1", "--ignored=matching") if entry.startswith("!! ")]
    paths = [ROOT / path.rstrip("/") for path in listed if not _own_write(path)]
    directories = {ROOT} | {parent for path in paths for parent in path.parents if ROOT in parent.parents}
    directories |= {path for path in paths if path.is_dir()}
    return (tuple((str(p.relative_to(ROOT)), str(p)) for p in paths if p not in directories),
            tuple((str(d.relative_to(ROOT)) + "/", str(d)) for d in sorted(directories)))


def _repo_state() -> dict[str, object]:
    """mtime of each watched file (-1: gone) and the entries of each watched directory."""
    files, directories = _watched()
    state: dict[str, object] = {}
    for name, path in files:
        try:
            state[name] = os.lstat(path).st_mtime_ns
        except OSError:
            state[name] = -1
    for name, path in directories:
        try:
            state[name] = frozenset(entry for entry in os.listdir(path) if entry not in _OWN_WRITES)
        except OSError:
            state[name] = frozenset()
    return state


def _changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, frozenset) and isinstance(new, frozenset):
            changed += [f"{key}{name} (new)" for name in sorted(new - old)]
            changed += [f"{key}{name} (deleted)" for name in sorted(old - new)]
        else:
            changed.append(key)
    return changed


@dataclass(frozen=True)
class Snapshot:
    processes: dict[tuple[int, str], Process]
    sockets: dict[str, int]  # inode -> pid of the sockets this process's tree holds
    temp_dirs: set[str]
    repo: dict[str, object]

    @classmethod
    def take(cls) -> "Snapshot":
        processes = _processes()
        return cls(processes, _sockets({os.getpid(), *(pid for pid, _ in processes)}), _temp_dirs(), _repo_state())

    def started_since(self, before: "Snapshot") -> list[Process]:
        """The processes started since `before` by this process or by those of them: a process
        that a longer-lived one (a module fixture's cluster) started, such as a worker its nanny
        restarts, is that one's own and is checked when it ends."""
        new = {key: p for key, p in self.processes.items() if key not in before.processes}
        ours, parents = [], {os.getpid()}
        while grown := [p for key, p in new.items() if p.parent in parents]:
            for p in grown:
                ours.append(new.pop((p.pid, p.started)))
                parents.add(p.pid)
        return sorted(ours, key=lambda p: p.pid)

    def leftovers(self, after: "Snapshot") -> dict[str, list[str]]:
        processes = after.started_since(self)
        holders = {os.getpid(), *(p.pid for p in processes)}
        found = {
            "processes": [f"pid {p.pid}: {p.command[:200]}" for p in processes],
            "listening ports": sorted(_listening_ports({inode for inode, pid in after.sockets.items()
                                                       if inode not in self.sockets and pid in holders})),
            "temp dirs": sorted(after.temp_dirs - self.temp_dirs),
            "changed repository files": _changes(self.repo, after.repo),
        }
        return {what: items for what, items in found.items() if items}


def _check(before: Snapshot, who: str) -> None:
    """Fail `who` with what it left behind (after giving it `_SETTLE_S` to go), then remove it."""
    deadline = time.monotonic() + _SETTLE_S
    while (found := before.leftovers(after := Snapshot.take())) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = {what: new for what, items in found.items() if (new := [i for i in items if i not in _reported])}
    if not found:
        return
    _reported.update(item for items in found.values() for item in items)
    for process in after.started_since(before):
        try:
            os.kill(process.pid, signal.SIGKILL)
        except OSError:
            pass
    for name in after.temp_dirs - before.temp_dirs:
        shutil.rmtree(Path(tempfile.gettempdir(), name), ignore_errors=True)
    note = (" (the checkout is shared by every xdist worker: a change may be another worker's)"
            if "changed repository files" in found and os.environ.get("PYTEST_XDIST_WORKER") else "")
    pytest.fail(f"{who} left behind: " + "; ".join(f"{what}: {items}" for what, items in found.items()) + note,
                pytrace=False)


def _remove_stale_private_dirs() -> None:
    """The private temp dirs of sessions that were killed (no teardown ran): their pid is gone."""
    for entry in os.scandir(tempfile.gettempdir()):
        pid = entry.name[len(PRIVATE_PREFIX):].split("-")[0]
        if entry.name.startswith(PRIVATE_PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(entry.path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _session_leaves_nothing(tmp_path_factory):
    tmp_path_factory.getbasetemp()  # pytest's own tmp_path stays where pytest keeps it
    _remove_stale_private_dirs()
    private = tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-")
    os.chmod(private, 0o711)  # tests that run as nobody reach their own directories in it
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = private  # stages run as subprocesses use it too
    before = Snapshot.take()
    try:
        yield
        _check(before, "the test session")
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(autouse=True)
def _test_leaves_nothing(_session_leaves_nothing, request):
    before = Snapshot.take()
    yield
    _check(before, request.node.nodeid)
