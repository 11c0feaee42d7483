"""The status of a finished run, decided from its facts alone (a pure function)."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from perfrepro.execution.sandbox.limits import Limits

# every status a run record can have: the sandbox gives ok | timeout | memory | disk | crash, the
# test harness refines ok into ok | wrong_answer, and a completion without code is no_code
STATUSES = ("ok", "wrong_answer", "timeout", "memory", "disk", "crash", "no_code")


@dataclass(frozen=True)
class RunFacts:
    """What is known about a finished run, all a status is decided from."""

    exit_code: int | None
    signal: int | None
    killed_for: str | None  # "timeout", or why the sandbox killed it (an output cap), or None
    oom_killed: bool  # the memory cgroup killed a process of the run
    disk_full: bool  # the run dir's budget was used up (bytes or files)
    stderr_tail: str


def exit_signal(code: int | None, wrapped: bool) -> int | None:
    """The signal that ended the program: a negative return code, or (under a wrapper: `unshare`
    and the keeper report a signal death as 128 + signal) a code between 129 and 159."""
    if code is not None and code < 0:
        return -code
    return code - 128 if wrapped and code and 128 < code < 160 else None


def classify(facts: RunFacts, limits: Limits) -> tuple[str, str | None]:
    """(status, error) of a finished run under `limits`: ok | timeout | memory | disk | crash. The
    first cause in this order wins: the sandbox's own kill, CPU time, memory, disk, file size, the
    exit code."""
    recent_stderr = facts.stderr_tail[-2000:]
    if facts.killed_for == "timeout":
        return "timeout", f"killed after the {limits.timeout_s:g} s wall timeout"
    if facts.killed_for:
        return "crash", facts.killed_for
    if facts.signal == signal.SIGXCPU:
        return "timeout", f"CPU time limit of {limits.cpu_seconds} s exceeded"
    if facts.oom_killed or any(word in recent_stderr for word in ("MemoryError", "std::bad_alloc")):
        return "memory", f"memory limit of {limits.memory_mb} MB exceeded"
    if facts.disk_full or "No space left on device" in recent_stderr:
        return "disk", f"disk budget of {limits.disk_mb} MB exhausted (ENOSPC)"
    if facts.signal == signal.SIGXFSZ:
        return "crash", f"file size limit of {limits.file_mb} MB exceeded"
    if facts.exit_code != 0:
        return "crash", f"killed by signal {facts.signal}" if facts.signal else f"exit code {facts.exit_code}"
    return "ok", None
