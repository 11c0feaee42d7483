"""Run an untrusted program and always come back with a typed result, or refuse to run it.

Each run gets: its own session and process group, a fresh working directory, rlimits (CPU
seconds, address space, processes, file size, open files), a wall timeout that kills the whole
group, an environment built from scratch (the equivalent of ``env -i``: an allowlist plus a fixed
``PYTHONHASHSEED``; no API keys, tokens or secrets), capped stdout/stderr, death with the process
that started it, and one of these isolation levels (detected once per process by probes that
check each level's guarantees, logged once):

- ``full`` (root): ``unshare --net --pid --mount`` with its own /proc (no network, no signals or
  /proc view outside its PID namespace), a size-capped tmpfs on /tmp as the run's working dir
  (the cwd is always ``/tmp``; the run's files are copied in, and it is gone with the namespace),
  every other mount read-only, then ``setpriv`` to ``nobody`` (so RLIMIT_NPROC applies); plus a
  memory + pids cgroup for the whole tree when the cgroup files are writable.
- ``userns`` (not root, user namespaces allowed): the same namespaces and read-only mounts inside
  a user namespace; the program is ``nobody`` inside and this user outside.
- ``uid`` (root, no usable unshare): only the privilege drop to ``nobody``; no namespaces.
- ``none``: no namespaces and no privilege drop.

The sandbox fails closed: at ``uid`` or ``none`` it refuses to run (``SandboxUnavailable``, whose
message says what is missing and how to enable it) unless the user opts in with
``PERFREPRO_ALLOW_UNISOLATED=1``, and at ``none`` as root it refuses even then.

The program's status here is one of ok | timeout | memory | disk | crash; callers that know what
a correct answer is (the test harness) refine "ok" into ok | wrong_answer.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import math
import os
import pwd
import resource
import select
import shutil
import stat
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

STATUSES = ("ok", "wrong_answer", "timeout", "memory", "disk", "crash", "no_code")

FIXED_HASH_SEED = "0"
_SANDBOX_USER = "nobody"
# Under namespaces the run's working dir is mounted on /tmp: the same paths on every run.
FIXED_CWD = "/tmp"


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


# ---------------------------------------------------------------------------------------------
# isolation detection (once per process) and the policy that refuses to run without it

ALLOW_UNISOLATED_ENV = "PERFREPRO_ALLOW_UNISOLATED"
SAFE_LEVELS = ("full", "userns")


class SandboxUnavailable(BaseException):
    """The sandbox refuses to run untrusted code here; the message says what is missing.

    A BaseException, like KeyboardInterrupt: code that records "any Exception" as a failed
    program must never turn a refusal into a row of failures and go on.
    """


@dataclass(frozen=True)
class Isolation:
    name: str  # full | userns | uid | none
    prefix: tuple[str, ...]  # argv put before the program's argv (before the keeper's settings)
    uid: int | None  # uid that owns the run's files (the program's uid outside), None = ours
    gid: int | None
    network_isolated: bool
    pid_namespace: bool
    runs_as_root: bool  # the program's uid on the host is 0
    note: str
    missing: tuple[str, ...] = ()  # why no stronger level was chosen, each with how to enable it
    inner: tuple[str, ...] = ()  # with a keeper: argv between its settings and the program's argv

    @property
    def safe(self) -> bool:
        return self.name in SAFE_LEVELS

    @property
    def keeper(self) -> bool:
        """The run goes through `_KEEPER_SCRIPT`: a tmpfs run dir, the disk budget enforced."""
        return _KEEPER_NAME in self.prefix

    def argv(self, program: Sequence[str], settings: Sequence[str] = ()) -> list[str]:
        """The whole command of one run; `settings` are the keeper's (see `keeper_settings`)."""
        return [*self.prefix, *(settings if self.keeper else ()), *self.inner, *program]


# The namespace's init (PID 1), as root of the namespaces, started in the run's host dir: mounts
# a tmpfs of the run's budget on /tmp and copies the run's files (its `work` dir) into it, by name
# (so the program lists its dir in the same order on every machine), then deletes the host dir at
# once (a stage killed now can't leave it behind). The cwd is /tmp on every run, and the program
# writes to memory capped by the kernel, never to the host's disk. It makes every other mount read-only
# (a bind remount changes only that mount's flags, so the program can write nothing but its
# tmpfs whoever it runs as; /proc is the PID namespace's own), then runs the program. Once it
# has exited it kills whatever the program left in the namespace, says so on its `done` pipe
# and waits on its `release` pipe while the parent reads the collected files and the tmpfs's
# fill level through /proc/<pid>/root; with "-" for both it exits at once (the probe). It exits
# with the program's status. (dash: the program's environment is the one a plain `exec` gives.)
_KEEPER_NAME = "sandbox-keeper"
_KEEPER_SCRIPT = r"""
set -e
size_kb=$1 inodes=$2 done_fd=$3 release_fd=$4
shift 4
mount -t tmpfs -o "size=${size_kb}k,nr_inodes=$inodes,mode=0700" perfrepro-run /tmp
tar -C work -cf - --sort=name --numeric-owner . | tar -xpf - --numeric-owner -C /tmp
run_dir=${PWD##*/}
cd -P .. && rm -rf -- "$run_dir"
cd /tmp
unset OLDPWD
awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
  case "$mp" in
    /tmp|/proc|/proc/*|/sys|/sys/*|/dev|/dev/pts|/dev/mqueue) ;;
    *) mount -o remount,bind,ro "$mp" 2>/dev/null || true ;;
  esac
done
set +e
"$@"
code=$?
kill -KILL -1 2>/dev/null
if [ "$done_fd" != - ]; then
  echo done > "/proc/self/fd/$done_fd"
  read -r _ < "/proc/self/fd/$release_fd"
fi
exit $code
"""

# A harmless probe: what uid it runs as, its PID namespace, how many network interfaces it sees,
# whether it can write its run dir (and what filesystem that is) but not a shared directory.
_PROBE_SCRIPT = r"""
echo "uid=$(id -u)"
echo "pidns=$(readlink /proc/self/ns/pid)"
echo "interfaces=$(tail -n +3 /proc/net/dev | wc -l)"
touch ok && echo "workdir=writable"
echo "runfs=$(stat -f -c %T .)"
if (: > /var/tmp/.perfrepro-probe-$$) 2>/dev/null; then
  rm -f /var/tmp/.perfrepro-probe-$$; echo "shared=writable"
else
  echo "shared=readonly"
fi
"""
_PROBE_DISK_KB = 1024


def _keeper_prefix() -> tuple[str, ...]:
    return ("/bin/sh", "-c", _KEEPER_SCRIPT, _KEEPER_NAME)


def keeper_settings(size_kb: int, inodes: int, done_fd: int | str = "-", release_fd: int | str = "-") -> list[str]:
    """The keeper's argv: tmpfs size (KiB) and inode count, its done and release pipes ("-": none)."""
    return [str(size_kb), str(inodes), str(done_fd), str(release_fd)]


def _probe(iso: Isolation) -> tuple[dict[str, str], str]:
    """Run the probe at `iso`: its key=value report (empty when it failed) and stderr."""
    root = tempfile.mkdtemp(prefix="perfrepro-probe-")
    try:
        os.chmod(root, 0o755)
        os.mkdir(workdir := os.path.join(root, "work"))
        os.chmod(workdir, 0o777)
        done = subprocess.run(
            iso.argv(["/bin/sh", "-c", _PROBE_SCRIPT], keeper_settings(_PROBE_DISK_KB, 64)),
            cwd=root if iso.keeper else workdir,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        report = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        if done.returncode != 0 or report.get("workdir") != "writable":
            return {}, (done.stderr.strip() or f"exit code {done.returncode}")[-500:]
        return report, done.stderr.strip()[-500:]
    except (OSError, subprocess.SubprocessError) as exc:
        return {}, str(exc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _namespaced(report: dict[str, str], uid: int) -> bool:
    """The probe ran as `uid` in a PID namespace of its own, with loopback only, writing only its
    tmpfs run dir."""
    return (report.get("uid") == str(uid) and report.get("pidns", "") not in ("", os.readlink("/proc/self/ns/pid"))
            and report.get("interfaces") == "1" and report.get("workdir") == "writable"
            and report.get("runfs") == "tmpfs" and report.get("shared") == "readonly")


_NAMESPACES = ("--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount",
               "--propagation", "private")
_HOW_TO_OPT_IN = (f"to run trusted code without isolation anyway, set {ALLOW_UNISOLATED_ENV}=1 "
                  "(never as root)")


def detect_isolation() -> Isolation:
    """The strongest isolation this machine allows, each level chosen only when its probe shows
    its guarantees hold. Reads PATH for unshare and setpriv (uncached: see `isolation()`)."""
    # real paths: a PATH entry under /tmp would be hidden by the run dir mounted there
    unshare, setpriv = (os.path.realpath(found) if (found := shutil.which(tool)) else None
                        for tool in ("unshare", "setpriv"))
    user = pwd.getpwnam(_SANDBOX_USER)
    missing: list[str] = []
    if os.geteuid() == 0:
        # --pdeathsig after the drop: changing uid clears the parent-death signal that makes the
        # program die with its wrapper (and the wrapper with the pipeline)
        drop = (setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--pdeathsig", "SIGKILL", "--") if setpriv else None
        if not setpriv:
            missing.append("setpriv not found on PATH (apt-get install util-linux)")
        if not unshare:
            missing.append("unshare not found on PATH (apt-get install util-linux)")
        if unshare and drop:
            full = Isolation("full", (unshare, *_NAMESPACES, *_keeper_prefix()), user.pw_uid, user.pw_gid,
                             True, True, False, "network, PID and mount namespaces, a tmpfs run dir, "
                             "read-only mounts; runs as nobody", inner=drop)
            report, err = _probe(full)
            if _namespaced(report, user.pw_uid):
                return full
            missing.append(f"unshare not permitted or incomplete (probe: {report or err}); a container "
                           "needs CAP_SYS_ADMIN, e.g. docker run --privileged or --cap-add SYS_ADMIN")
        if drop:
            dropped = Isolation("uid", drop, user.pw_uid, user.pw_gid, False, False, False,
                                "no namespaces: runs as nobody, network and disk NOT isolated", tuple(missing))
            report, err = _probe(dropped)
            if report.get("uid") == str(user.pw_uid):
                return dropped
            missing.append(f"setpriv could not drop to {_SANDBOX_USER} (probe: {report or err})")
        return Isolation("none", (), None, None, False, False, True,
                         "no namespaces and no privilege drop: would run as root", tuple(missing))
    if unshare:
        # a user namespace (mapped root, for the mounts), then a nested one in which the program
        # runs as nobody; on the host it is this (non-root) user
        become_nobody = (unshare, "--user", f"--map-user={user.pw_uid}", f"--map-group={user.pw_gid}",
                         *((setpriv, "--pdeathsig", "SIGKILL", "--") if setpriv else ()))
        userns = Isolation("userns", (unshare, "--user", "--map-root-user", *_NAMESPACES, *_keeper_prefix()),
                           None, None, True, True, False, "user, network, PID and mount namespaces, a "
                           "tmpfs run dir, read-only mounts; nobody inside, this user outside", inner=become_nobody)
        report, err = _probe(userns)
        if _namespaced(report, user.pw_uid):
            return userns
        missing.append(
            f"user namespaces not permitted (probe: {report or err}); enable them with "
            "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04), "
            "`sysctl -w kernel.unprivileged_userns_clone=1` (older Debian), or run as root")
    else:
        missing.append("unshare not found on PATH (apt-get install util-linux)")
    return Isolation("none", (), None, None, False, False, False,
                     "no namespaces: runs as this user, network and disk NOT isolated", tuple(missing))


@functools.cache
def isolation() -> Isolation:
    """`detect_isolation()`, once per process, logged once."""
    chosen = detect_isolation()
    (log.info if chosen.safe else log.warning)("sandbox isolation: %s (%s)", chosen.name, chosen.note)
    return chosen


def unisolated_allowed() -> bool:
    return os.environ.get(ALLOW_UNISOLATED_ENV, "").strip().lower() in ("1", "true", "yes")


def refusal(iso: Isolation, allow_unisolated: bool) -> str | None:
    """Why the sandbox refuses to run untrusted code at level `iso`, or None when it may run."""
    if iso.safe:
        return None
    why = "; ".join(iso.missing) or iso.note
    if iso.runs_as_root:
        return (f"sandbox refuses to run untrusted code: isolation '{iso.name}' would run it as "
                f"root, even with {ALLOW_UNISOLATED_ENV}=1 ({why})")
    if not allow_unisolated:
        return (f"sandbox refuses to run untrusted code: no namespace isolation here (level "
                f"'{iso.name}': {iso.note}). Missing: {why}. Fix that, or {_HOW_TO_OPT_IN}")
    return None


def require_isolation() -> Isolation:
    """The isolation runs will use; raises SandboxUnavailable (with what to fix) when the sandbox
    would run untrusted code without namespaces and the user has not opted in, or as root."""
    iso = isolation()
    reason = refusal(iso, unisolated_allowed())
    if reason:
        raise SandboxUnavailable(reason)
    if not iso.safe:
        log.warning("sandbox: running WITHOUT isolation (%s=1): %s", ALLOW_UNISOLATED_ENV, iso.note)
    return iso


# ---------------------------------------------------------------------------------------------
# cgroups: one memory + pids group per run when this process may create them


class _Cgroup:
    """A per-run cgroup (v1 memory/pids or v2 unified); silently absent when not writable."""

    def __init__(self, memory_mb: int, processes: int):
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


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


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


# ---------------------------------------------------------------------------------------------
# environment


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


# ---------------------------------------------------------------------------------------------
# the run


class _CappedReader(threading.Thread):
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


def _result_fd_trampoline() -> tuple[str, ...]:
    """argv prefix that moves the result pipe to fd RESULT_FD before the program starts.

    The pipe's number here depends on how many files this process holds (a Dask worker holds
    many sockets); a program under valgrind sees the number (in its env, in its fd table) and its
    instruction count moved with it, so every program gets the same fd and the same env value."""
    script = (f'fd="${RESULT_FD_ENV}"; [ "$fd" = {RESULT_FD} ] || eval "exec {RESULT_FD}>&$fd $fd>&-"; '
              f'export {RESULT_FD_ENV}={RESULT_FD}; exec "$@"')
    return ("/bin/bash", "-c", script, "result-fd")  # bash: dash takes only one-digit fds


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _preexec(limits: Limits, cpu_s: int, cgroup_procs: list[str]) -> Callable[[], None]:
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


RUN_DIR_INODES = 4096  # files and directories a program may create in its run dir
_FULL_MARGIN = 64 << 10  # a run dir with less free space than this (bytes) is full
COLLECT_CAP = 64 << 20  # the largest file `collect` reads back
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _write_run_dir(root: Path, files: Mapping[str, str | bytes], executables: Sequence[str],
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


def _plain_names(collect: Sequence[str]) -> None:
    for name in collect:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"sandbox collect: {name!r} is not a plain file name")


def _read_regular_file(path: str) -> bytes | None:
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


def _collect(directory: str, names: Sequence[str]) -> dict[str, bytes]:
    found = {name: _read_regular_file(os.path.join(directory, name)) for name in names}
    return {name: data for name, data in found.items() if data is not None}


def _full(directory: str) -> bool:
    """The filesystem of `directory` (the run's tmpfs) has no room left: bytes or inodes."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < _FULL_MARGIN or info.f_favail == 0


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


def classify(facts: RunFacts, limits: Limits, cpu_s: int) -> tuple[str, str | None]:
    """(status, error) of a finished run: ok | timeout | memory | disk | crash."""
    recent_stderr = facts.stderr_tail[-2000:]
    if facts.killed_for == "timeout":
        return "timeout", f"killed after the {limits.timeout_s:g} s wall timeout"
    if facts.killed_for:
        return "crash", facts.killed_for
    if facts.signal == signal.SIGXCPU:
        return "timeout", f"CPU time limit of {cpu_s} s exceeded"
    if facts.oom_killed or any(word in recent_stderr for word in ("MemoryError", "std::bad_alloc")):
        return "memory", f"memory limit of {limits.memory_mb} MB exceeded"
    if facts.disk_full or "No space left on device" in recent_stderr:
        return "disk", f"disk budget of {limits.disk_mb} MB exhausted (ENOSPC)"
    if facts.signal == signal.SIGXFSZ:
        return "crash", f"file size limit of {limits.file_mb} MB exceeded"
    if facts.exit_code != 0:
        return "crash", f"killed by signal {facts.signal}" if facts.signal else f"exit code {facts.exit_code}"
    return "ok", None


class _Pipes:
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


class _Process:
    """A spawned run: the process, how to kill all of it, and the keeper's done/release pipes."""

    def __init__(self, proc: subprocess.Popen, iso: Isolation, done: int | None, release: int | None):
        self.proc, self.iso, self.done, self.release = proc, iso, done, release
        self.killed_for: list[str] = []

    def kill(self, reason: str) -> None:
        if not self.killed_for:
            self.killed_for.append(reason)
        if "--fork" in self.iso.prefix:
            # kill the PID namespace's init (the whole namespace dies with it) and let the
            # wrapper reap it: killing the wrapper first would leave the program a zombie
            for child in _children(self.proc.pid):
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

    def wait_done(self, timeout_s: float) -> bool:
        """Wait until the program has ended (for the keeper: said so, or died); False at timeout."""
        if self.done is None:
            try:
                self.proc.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        ready, _, _ = select.select([self.done], [], [], timeout_s)
        return bool(ready)

    def keeper_done(self) -> bool:
        """The keeper said the program has ended (and is waiting for its release)."""
        try:
            return self.done is not None and os.read(self.done, 16) != b""
        except OSError:
            return False

    def run_dir(self) -> str | None:
        """The keeper's tmpfs as this process sees it (the namespace is alive while it waits)."""
        init = _children(self.proc.pid)
        return f"/proc/{init[0]}/root{FIXED_CWD}" if init else None


def _spawn(command: list[str], cwd: Path, env: Mapping[str, str], pass_fds: Sequence[int],
           limits: Limits, cpu_s: int, cgroup: _Cgroup) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, pass_fds=tuple(pass_fds), start_new_session=True,
        preexec_fn=_preexec(limits, cpu_s, cgroup.join_paths()),
    )


def _feed(pipe, data: bytes) -> threading.Thread:
    """Write `data` to the program's stdin, then close it, in a thread: a program that never
    reads its input must not block the wait that enforces its timeout."""
    def write() -> None:
        try:
            if data:
                pipe.write(data)
            pipe.close()
        except OSError:
            pass  # the program exited or closed stdin early; its status tells the rest

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


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
    """Run `argv` in a fresh temp working dir under the limits, and return what happened.

    `files` are written into the working dir first (name -> content), those named in `executables`
    with the execute bit (a compiled program run as ``./name``); `collect` names files (plain
    names) the program (or a tool such as valgrind) leaves there, read back into `result.files`
    (regular files of at most 64 MB). With `channel`, the program gets a pipe whose write end is
    fd 3, the number in ``$PERFREPRO_RESULT_FD``; what it writes comes back as `result.channel`
    (1 MB cap). `monitor(pid, stopped)` runs in a thread from the spawn on (pid = the spawned
    process, which may be a wrapper of the program: see `isolation()`), and should return once
    `stopped` is set. Never raises for anything the program does; raises OSError only if the run
    cannot start. Leaves no process and no directory behind, whatever happens (Ctrl-C included).
    """
    iso = require_isolation()
    _plain_names(collect)
    cpu_s = limits.cpu_s if limits.cpu_s is not None else math.ceil(limits.timeout_s) + 1
    root = Path(tempfile.mkdtemp(prefix="perfrepro-sbx-"))
    pipes = _Pipes()
    cgroup: _Cgroup | None = None
    try:
        os.chmod(root, 0o711)
        workdir, size_kb, inodes = _write_run_dir(root, files or {}, executables, iso, limits)
        full_env = base_env(env, home=FIXED_CWD if iso.safe else str(workdir))
        program, channel_r = list(argv), None
        if channel:
            channel_r, channel_w = pipes.open(child_writes=True)
            full_env[RESULT_FD_ENV] = str(channel_w)
            program = [*_result_fd_trampoline(), *program]
        done = release = None
        settings: list[str] = []
        if iso.keeper:
            done, done_w = pipes.open(child_writes=True)
            release, release_r = pipes.open(child_writes=False)
            settings = keeper_settings(size_kb, inodes, done_w, release_r)
        cgroup = _Cgroup(limits.memory_mb + limits.disk_mb + 256, limits.processes + 8)
        started = time.perf_counter()
        spawned = _Process(_spawn(iso.argv(program, settings), root if iso.keeper else workdir, full_env, pipes.theirs, limits, cpu_s, cgroup),
                           iso, done, release)
        pipes.spawned()
        proc = spawned.proc
        readers = [
            _CappedReader(os.dup(proc.stdout.fileno()), limits.output_bytes, limits.tail_bytes,
                          lambda: spawned.kill("stdout exceeded the output cap")),
            _CappedReader(os.dup(proc.stderr.fileno()), limits.output_bytes, limits.tail_bytes,
                          lambda: spawned.kill("stderr exceeded the output cap")),
        ]
        proc.stdout.close()
        proc.stderr.close()
        if channel_r is not None:
            pipes.hand_over(channel_r)
            readers.append(_CappedReader(channel_r, 1 << 20, 1 << 20, None, keep_all=True))
        for reader in readers:
            reader.start()
        stopped = threading.Event()
        watchers = [_feed(proc.stdin, stdin)]
        if monitor is not None:
            watchers.append(threading.Thread(target=monitor, args=(proc.pid, stopped), daemon=True))
            watchers[-1].start()
        try:
            finished = spawned.wait_done(limits.timeout_s)
            if not finished:
                spawned.kill("timeout")
            collected, disk_full = {}, False
            if finished and spawned.keeper_done() and (run_dir := spawned.run_dir()):
                collected, disk_full = _collect(run_dir, collect), _full(run_dir)
            if release is not None:
                pipes.release(release)  # the keeper exits with the program's status
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                spawned.kill("the sandbox did not exit after the program")
                proc.wait()
        except BaseException:  # Ctrl-C or a signal turned into an exception: the run dies with us
            spawned.kill("interrupted")
            stopped.set()
            raise
        wall_s = time.perf_counter() - started
        stopped.set()
        try:  # leftovers (daemonized children without namespaces) never outlive the run
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        oom = cgroup.oom_killed()
        for thread in (*readers, *watchers):
            thread.join(timeout=5)
        if not iso.keeper:
            collected = _collect(str(workdir), collect)
    finally:
        pipes.close()
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(root, ignore_errors=True)

    code = proc.returncode
    sig = exit_signal(code, wrapped=bool(iso.prefix))
    stderr_text = readers[1].text()
    status, error = classify(RunFacts(code, sig, spawned.killed_for[0] if spawned.killed_for else None,
                                      oom, disk_full, stderr_text), limits, cpu_s)
    return SandboxResult(
        status=status,
        exit_code=code,
        signal=sig,
        stdout_tail=readers[0].text(),
        stderr_tail=stderr_text,
        wall_s=wall_s,
        error=error,
        channel=bytes(readers[2].data) if channel_r is not None else b"",
        files=collected,
        stdout_bytes=readers[0].total,
        stderr_bytes=readers[1].total,
        isolation=iso.name,
    )


# ---------------------------------------------------------------------------------------------
# the interpreter programs run under


@functools.cache
def sandbox_python() -> str:
    """The real (not shim, not venv-symlink) Python binary the sandbox user can execute.

    Prefers the interpreter running the pipeline (realpath of sys.executable). When the sandbox
    user can't reach it (a pyenv build under /root, say), takes a system python of the same
    major.minor, and logs the choice.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable)]
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        path = Path(directory, f"python{version}")
        if path.exists():
            candidates.append(os.path.realpath(path))
    seen: list[str] = []
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.append(candidate)
        # the same binary must see the same installation as the sandbox user as it does as us
        # (a binary whose libpython/stdlib are unreadable may start with the system's instead)
        probe = "import sys; print(sys.version, sys.prefix, sys.version_info[:2])"
        try:
            native = subprocess.run([candidate, "-s", "-c", probe], capture_output=True, text=True,
                                    timeout=20, env={"PATH": "/usr/bin:/bin"}).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        result = run([candidate, "-s", "-c", probe], limits=Limits(timeout_s=20))
        if result.ok and result.stdout_tail == native and f"({version.replace('.', ', ')})" in native:
            if candidate != candidates[0]:
                log.info("sandbox python: %s (the sandbox user can't run %s)", candidate, candidates[0])
            return candidate
    raise RuntimeError(
        f"no Python {version} the sandbox user can run (tried {', '.join(seen)}); "
        "install one under /usr/bin or make the interpreter readable by 'nobody'"
    )


# What sandboxed Python may import beyond the standard library: LeetCode's Python environment,
# whose task preludes import sortedcontainers. The packages are copied into each run's working dir
# rather than reached in the venv: a checkout under /tmp would be hidden by the /tmp mount, and
# every run then has the same sys.path wherever the project lives (the deterministic backend
# counts the interpreter's path handling too).
SANDBOX_PACKAGES = ("sortedcontainers",)
SANDBOX_LIBRARY = "pylib"  # relative: Python resolves it against the run's working dir


@functools.lru_cache(maxsize=None)
def _package_files() -> tuple[tuple[str, bytes], ...]:
    files = []
    for package in SANDBOX_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"sandboxed programs need the package {package!r} (pip install {package})")
        root = Path(next(iter(spec.submodule_search_locations)))
        files += [(f"{SANDBOX_LIBRARY}/{package}/{path.relative_to(root).as_posix()}", path.read_bytes())
                  for path in sorted(root.rglob("*.py"))]
    return tuple(files)


def python_files() -> dict[str, bytes]:
    """Files to put in a sandboxed Python run's working dir: the `SANDBOX_PACKAGES`."""
    return dict(_package_files())


def python_env() -> dict[str, str]:
    """Env for sandboxed Python: the `python_files` packages on its path."""
    return {"PYTHONPATH": SANDBOX_LIBRARY}


def python_argv(interpreter: str | None = None) -> list[str]:
    """argv prefix to run a Python file in the sandbox: no site import, no bytecode writes.

    (-S: packages come from PYTHONPATH, see `python_env`; it also keeps start-up small.)
    """
    return [interpreter or sandbox_python(), "-S", "-B"]
