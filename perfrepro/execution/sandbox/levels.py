"""Isolation levels: which one this machine allows (probed once per process), and the refusal to
run untrusted code without namespaces.

- ``full`` (root): ``unshare --net --pid --mount`` with its own /proc (no network, no signals or
  /proc view outside its PID namespace), a tmpfs of the run's disk budget on /tmp as its working
  dir (the cwd is always ``/tmp``), every other mount read-only, then ``setpriv`` to ``nobody``
  (so RLIMIT_NPROC applies).
- ``userns`` (not root, user namespaces allowed): the same namespaces, tmpfs and read-only mounts
  inside a user namespace; the program is ``nobody`` inside and this user outside.
- ``uid`` (root, no usable unshare): only the privilege drop to ``nobody``; no namespaces.
- ``none``: no namespaces and no privilege drop.

Each level is taken only when a harmless probe run at it shows its guarantees hold. The sandbox
fails closed: at ``uid`` or ``none`` it refuses to run (``SandboxUnavailable``, whose message says
what is missing and how to enable it) unless the user opts in with ``PERFREPRO_ALLOW_UNISOLATED=1``,
and at ``none`` as root it refuses even then.

Standard library only: the isolation tests run this module alone, as users without the project.
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Sequence

log = logging.getLogger(__name__)

_SANDBOX_USER = "nobody"
# Under namespaces the run's working dir is mounted on /tmp: the same paths on every run.
FIXED_CWD = "/tmp"

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
