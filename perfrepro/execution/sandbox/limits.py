"""What one run may use: its limits, the rlimits every process of it gets, and a memory + pids
cgroup for the whole tree where this process may create one."""

from __future__ import annotations

import ctypes
import functools
import math
import os
import resource
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Sizes in MB unless named bytes."""

    timeout_s: float = 20.0  # wall clock; the whole process group is killed after it
    cpu_s: int | None = None  # RLIMIT_CPU; None = ceil(timeout_s) + 1
    memory_mb: int = 2048  # RLIMIT_AS per process, and the memory cgroup of the whole tree
    processes: int = 32  # RLIMIT_NPROC (per uid) and the pids cgroup
    file_mb: int = 64  # RLIMIT_FSIZE: the largest file the program may write
    disk_mb: int = 256  # all the program may write in its run dir (a tmpfs: counts as memory)
    open_files: int = 128  # RLIMIT_NOFILE
    output_bytes: int = 4 << 20  # stdout and stderr each; more kills the run (status crash)
    tail_bytes: int = 8192  # how much of the end of stdout/stderr the result keeps

    @property
    def cpu_seconds(self) -> int:
        """RLIMIT_CPU of the run: `cpu_s`, or the wall timeout rounded up plus a second."""
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


class RunCgroup:
    """A per-run cgroup (v1 memory/pids or v2 unified); silently absent when not writable. Its
    memory limit holds the program's memory, its tmpfs run dir (whose pages are memory too, but
    not in any address space) and 256 MB for the sandbox's own processes."""

    def __init__(self, limits: Limits):
        memory_mb, processes = limits.memory_mb + limits.disk_mb + 256, limits.processes + 8
        self.dirs: list[Path] = []
        name = f"perfrepro-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for controller, base in _cgroup_bases().items():
            _remove_stale_cgroups(base)
            path = base / name
            try:
                path.mkdir()
            except OSError:
                continue
            self.dirs.append(path)
            try:
                if controller == "memory":
                    (path / "memory.limit_in_bytes").write_text(str(memory_mb << 20))
                elif controller == "pids":
                    (path / "pids.max").write_text(str(processes))
                else:  # v2
                    (path / "memory.max").write_text(str(memory_mb << 20))
                    (path / "pids.max").write_text(str(processes))
            except OSError:
                pass  # the group still lets us find and kill every process of the run

    def join_paths(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        for d in self.dirs:
            for name in ("memory.oom_control", "memory.events"):
                try:
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
                except OSError:
                    continue
        return False

    def kill_all(self) -> None:
        for _ in range(50):
            pids = set()
            for d in self.dirs:
                try:
                    pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
                except OSError:
                    continue
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.01)


@functools.cache
def _remove_stale_cgroups(base: Path) -> None:
    """Once per process: remove the empty run cgroups of processes that are gone (a stage killed
    by SIGKILL or an unhandled SIGTERM leaves its run's group behind; rmdir refuses a busy one)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "perfrepro" and parts[1].isdigit() and not os.path.exists(f"/proc/{parts[1]}"):
            try:
                os.rmdir(base / name)
            except OSError:
                pass


@functools.cache
def _cgroup_bases() -> dict[str, Path]:
    bases: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return bases
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller in ("memory", "pids"):
                base = Path("/sys/fs/cgroup") / controller / path.lstrip("/")
                if base.is_dir():
                    bases[controller] = base
        if controllers == "" and not bases:
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            if (base / "cgroup.controllers").exists():
                bases["unified"] = base
    return bases


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def preexec(limits: Limits, cgroup_procs: list[str]) -> Callable[[], None]:
    """What the spawned process does before exec: die with us, join the run's cgroup, take the rlimits."""
    cpu_s = limits.cpu_seconds

    def setup() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        # die with the pipeline: a killed stage (SIGTERM, SIGKILL) takes its runs with it; with
        # namespaces the wrapper's --kill-child then ends the whole PID namespace
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for procs in cgroup_procs:
            try:
                with open(procs, "w") as handle:
                    handle.write(str(os.getpid()))
            except OSError:
                pass
        memory = limits.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb << 20, limits.file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return setup
