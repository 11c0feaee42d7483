"""`run()`: one untrusted program, start to end, and its typed result."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from perfrepro.execution.sandbox.levels import FIXED_CWD, Isolation, keeper_settings, require_isolation
from perfrepro.execution.sandbox.limits import Limits, RunCgroup
from perfrepro.execution.sandbox.process import RESULT_FD_ENV, Pipes, Spawned, base_env, result_fd_trampoline
from perfrepro.execution.sandbox.rundir import check_collect_names, collect_files, make_run_root, write_run_dir
from perfrepro.execution.sandbox.status import RunFacts, classify, exit_signal


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one run. `wall_s` is the wall time of the whole run in seconds."""

    status: str  # ok | timeout | memory | disk | crash (see STATUSES; the harness adds wrong_answer)
    exit_code: int | None
    signal: int | None
    stdout_tail: str
    stderr_tail: str
    wall_s: float
    error: str | None = None
    channel: bytes = b""  # what the program wrote to its result pipe ($PERFREPRO_RESULT_FD)
    files: Mapping[str, bytes] = field(default_factory=dict)  # `collect`ed files, read back
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    isolation: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run(
    argv: Sequence[str],
    *,
    stdin: bytes = b"",
    limits: Limits = Limits(),
    env: Mapping[str, str] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    executables: Sequence[str] = (),
    collect: Sequence[str] = (),
    channel: bool = False,
    monitor: Callable[[int, threading.Event], None] | None = None,
) -> SandboxResult:
    """Run `argv` in a fresh working dir under the limits, and return what happened.

    `files` are written into the working dir first (name -> content), those named in `executables`
    with the execute bit (a compiled program run as ``./name``); `collect` names files (plain
    names) the program (or a tool such as valgrind) leaves there, read back into `result.files`
    (regular files of at most 64 MB). With `channel`, the program gets a pipe whose write end is
    fd 3, the number in ``$PERFREPRO_RESULT_FD``; what it writes comes back as `result.channel`
    (1 MB cap). `monitor(pid, stopped)` runs in a thread from the spawn on (pid = the spawned
    process, which may be a wrapper of the program: see `levels`), and should return once
    `stopped` is set. Never raises for anything the program does; raises OSError only if the run
    cannot start. Leaves no process and no directory behind, whatever happens (Ctrl-C included).
    """
    iso = require_isolation()
    check_collect_names(collect)
    root = make_run_root()
    pipes, cgroup = Pipes(), None
    try:
        root.chmod(0o711)
        workdir, size_kb, inodes = write_run_dir(root, files or {}, executables, iso, limits)
        command, full_env, ends = _command(iso, argv, env, workdir, pipes, channel, size_kb, inodes)
        cgroup = RunCgroup(limits)
        started = time.perf_counter()
        spawned = Spawned(command, root if iso.keeper else workdir, full_env, iso, limits, cgroup, pipes, ends)
        spawned.feed(stdin, monitor)
        collected, disk_full = spawned.wait(limits.timeout_s, collect)
        wall_s = time.perf_counter() - started
        spawned.finish()
        oom = cgroup.oom_killed()
        if not iso.keeper:
            collected = collect_files(str(workdir), collect)
    finally:
        pipes.close()
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(root, ignore_errors=True)
    return _result(spawned, iso, limits, wall_s, collected, oom, disk_full)


def _command(iso: Isolation, argv: Sequence[str], env: Mapping[str, str] | None, workdir: Path, pipes: Pipes,
             channel: bool, size_kb: int, inodes: int) -> tuple[list[str], dict[str, str], dict[str, int]]:
    """The run's whole command and environment, and our ends of its pipes: `channel` (the result
    pipe, moved to fd 3 by a trampoline), the keeper's `done` and `release`."""
    full_env = base_env(env, home=FIXED_CWD if iso.safe else str(workdir))
    program, ends, settings = list(argv), {}, []
    if channel:
        ends["channel"], child_end = pipes.open(child_writes=True)
        full_env[RESULT_FD_ENV] = str(child_end)
        program = [*result_fd_trampoline(), *program]
    if iso.keeper:
        ends["done"], done = pipes.open(child_writes=True)
        ends["release"], release = pipes.open(child_writes=False)
        settings = keeper_settings(size_kb, inodes, done, release)
    return iso.argv(program, settings), full_env, ends


def _result(spawned: Spawned, iso: Isolation, limits: Limits, wall_s: float, collected: dict[str, bytes],
            oom_killed: bool, disk_full: bool) -> SandboxResult:
    code = spawned.proc.returncode
    facts = RunFacts(code, exit_signal(code, wrapped=bool(iso.prefix)), next(iter(spawned.killed_for), None),
                     oom_killed, disk_full, spawned.stderr.text())
    status, error = classify(facts, limits)
    return SandboxResult(
        status=status, exit_code=facts.exit_code, signal=facts.signal, stdout_tail=spawned.stdout.text(),
        stderr_tail=facts.stderr_tail, wall_s=wall_s, error=error,
        channel=bytes(spawned.channel.data) if spawned.channel is not None else b"", files=collected,
        stdout_bytes=spawned.stdout.total, stderr_bytes=spawned.stderr.total, isolation=iso.name,
    )
