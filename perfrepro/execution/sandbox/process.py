"""One spawned run: the process and its pipes, the threads that feed its stdin and read its
output, its environment, and how to wait for it, kill all of it and read what it left."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
from pathlib import Path
from typing import Callable, Mapping, Sequence

from perfrepro.execution.sandbox.levels import FIXED_CWD, Isolation
from perfrepro.execution.sandbox.limits import Limits, RunCgroup, preexec
from perfrepro.execution.sandbox.rundir import collect_files, is_full

FIXED_HASH_SEED = "0"


def base_env(extra: Mapping[str, str] | None = None, home: str = "/tmp") -> dict[str, str]:
    """The whole environment of a sandboxed program: an allowlist, never the caller's env."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": FIXED_HASH_SEED,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    for key, value in (extra or {}).items():
        upper = key.upper()
        if any(word in upper for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")):
            raise ValueError(f"sandbox env: refusing to pass {key!r} to untrusted code")
        env[key] = value
    return env


class CappedReader(threading.Thread):
    """Drain a pipe, keeping the byte count and the last `tail` bytes; call `on_overflow` once."""

    def __init__(self, fd: int, cap: int, tail: int, on_overflow: Callable[[], None] | None,
                 keep_all: bool = False):
        super().__init__(daemon=True)
        self.fd, self.cap, self.tail, self.on_overflow, self.keep_all = fd, cap, tail, on_overflow, keep_all
        self.data = bytearray()
        self.total = 0
        self.overflowed = False

    def run(self) -> None:
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.total += len(chunk)
                if self.keep_all:
                    if self.total <= self.cap:
                        self.data += chunk
                else:
                    self.data += chunk
                    if len(self.data) > 2 * self.tail:
                        del self.data[: len(self.data) - self.tail]
                if self.total > self.cap and not self.overflowed:
                    self.overflowed = True
                    if self.on_overflow:
                        self.on_overflow()
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def text(self) -> str:
        return bytes(self.data[-self.tail:]).decode("utf-8", errors="replace")


RESULT_FD_ENV = "PERFREPRO_RESULT_FD"
RESULT_FD = 3  # the result pipe's number in every program, whatever number it has here


def result_fd_trampoline() -> tuple[str, ...]:
    """argv prefix that moves the result pipe to fd RESULT_FD before the program starts.

    The pipe's number here depends on how many files this process holds (a Dask worker holds
    many sockets); a program under valgrind sees the number (in its env, in its fd table) and its
    instruction count moved with it, so every program gets the same fd and the same env value."""
    script = (f'fd="${RESULT_FD_ENV}"; [ "$fd" = {RESULT_FD} ] || eval "exec {RESULT_FD}>&$fd $fd>&-"; '
              f'export {RESULT_FD_ENV}={RESULT_FD}; exec "$@"')
    return ("/bin/bash", "-c", script, "result-fd")  # bash: dash takes only one-digit fds


class Pipes:
    """The run's extra pipes: each one's child end is passed to the run and closed here after the
    spawn; every end is closed by `close`, whatever happened."""

    def __init__(self) -> None:
        self.ours: list[int] = []
        self.theirs: list[int] = []

    def open(self, child_writes: bool) -> tuple[int, int]:
        """(our end, the child's end)."""
        read, write = os.pipe()
        ours, theirs = (read, write) if child_writes else (write, read)
        self.ours.append(ours)
        self.theirs.append(theirs)
        return ours, theirs

    def spawned(self) -> None:
        for fd in self.theirs:
            os.close(fd)
        self.theirs.clear()

    def hand_over(self, fd: int) -> None:
        """`fd` is closed by someone else from now on."""
        self.ours.remove(fd)

    def release(self, fd: int) -> None:
        if fd in self.ours:
            self.ours.remove(fd)
            os.close(fd)

    def close(self) -> None:
        self.spawned()
        for fd in list(self.ours):
            self.release(fd)


class Spawned:
    """A started run: the process (under namespaces, a wrapper of the program whose child is the
    keeper), the threads that feed its stdin and read its stdout, stderr and result pipe, and
    how to end it. `pipes` holds the run's extra pipes: `channel` (the result pipe, read here),
    and with a keeper its `done` pipe (it writes when the program has ended) and `release` pipe
    (closed here once its tmpfs has been read)."""

    def __init__(self, command: list[str], cwd: Path, env: Mapping[str, str], iso: Isolation, limits: Limits,
                 cgroup: RunCgroup, pipes: Pipes, ends: dict[str, int]):
        self.iso, self.pipes, self.ends = iso, pipes, ends
        self.killed_for: list[str] = []
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=tuple(pipes.theirs), start_new_session=True,
            preexec_fn=preexec(limits, cgroup.join_paths()),
        )
        pipes.spawned()
        self.stdout, self.stderr = (
            CappedReader(os.dup(stream.fileno()), limits.output_bytes, limits.tail_bytes,
                         lambda name=name: self.kill(f"{name} exceeded the output cap"))
            for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)))
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.channel = None
        if "channel" in ends:
            pipes.hand_over(ends["channel"])  # the reader closes it
            self.channel = CappedReader(ends["channel"], 1 << 20, 1 << 20, None, keep_all=True)
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = [r for r in (self.stdout, self.stderr, self.channel) if r]
        for thread in self.threads:
            thread.start()

    def feed(self, data: bytes, monitor: Callable[[int, threading.Event], None] | None) -> None:
        """Write `data` to the program's stdin from a thread (a program that never reads it must
        not block the wait that enforces its timeout), and start `monitor(pid, stopped)`."""
        def write() -> None:
            try:
                if data:
                    self.proc.stdin.write(data)
                self.proc.stdin.close()
            except OSError:
                pass  # the program exited or closed stdin early; its status tells the rest

        started = [threading.Thread(target=write, daemon=True)]
        if monitor is not None:
            started.append(threading.Thread(target=monitor, args=(self.proc.pid, self.stopped), daemon=True))
        for thread in started:
            thread.start()
        self.threads += started

    def kill(self, reason: str) -> None:
        if not self.killed_for:
            self.killed_for.append(reason)
        if "--fork" in self.iso.prefix:
            # kill the PID namespace's init (the whole namespace dies with it) and let the
            # wrapper reap it: killing the wrapper first would leave the program a zombie
            for child in children(self.proc.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=2)
                return
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def wait(self, timeout_s: float, collect: Sequence[str]) -> tuple[dict[str, bytes], bool]:
        """Wait for the program, at most `timeout_s`, then for its wrapper: what the keeper's tmpfs
        held (the `collect`ed files, and whether it was full). Ctrl-C or a signal turned into an
        exception kills the run first."""
        try:
            ended = self._ended(timeout_s)
            if not ended:
                self.kill("timeout")
            found: tuple[dict[str, bytes], bool] = ({}, False)
            if ended and self._keeper_said_done() and (run_dir := self._keeper_run_dir()):
                found = collect_files(run_dir, collect), is_full(run_dir)
            if "release" in self.ends:
                self.pipes.release(self.ends["release"])  # the keeper exits with the program's status
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill("the sandbox did not exit after the program")
                self.proc.wait()
            return found
        except BaseException:
            self.kill("interrupted")
            self.stopped.set()
            raise

    def finish(self) -> None:
        """Stop the monitor, kill what may be left (daemonized children without namespaces) and
        wait for the threads."""
        self.stopped.set()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for thread in self.threads:
            thread.join(timeout=5)

    def _ended(self, timeout_s: float) -> bool:
        """The program has ended (for a keeper: it said so, or died); False at the timeout."""
        if "done" not in self.ends:
            try:
                self.proc.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        ready, _, _ = select.select([self.ends["done"]], [], [], timeout_s)
        return bool(ready)

    def _keeper_said_done(self) -> bool:
        try:
            return os.read(self.ends["done"], 16) != b""
        except OSError:
            return False

    def _keeper_run_dir(self) -> str | None:
        """The keeper's tmpfs as this process sees it (the namespace lives while the keeper waits)."""
        init = children(self.proc.pid)
        return f"/proc/{init[0]}/root{FIXED_CWD}" if init else None


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []
