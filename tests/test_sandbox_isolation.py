"""Isolation detection and the fail-closed policy, with the real unshare and setpriv.

Missing tools are simulated with a PATH that lacks them; the non-root cases run the detection as
`nobody` (setpriv), and restricted user namespaces with max_user_namespaces lowered inside a
user namespace of the test's own (it never changes the host's setting). No hostile code runs
here: every program is a harmless probe.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from perfrepro.execution import sandbox
from perfrepro.execution.sandbox import Isolation, SandboxUnavailable, levels

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]
NOBODY = pwd.getpwnam("nobody")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="simulating other users needs root (CI runs as root)")

DETECT = """
import json, levels
iso = levels.detect_isolation()
print(json.dumps({"name": iso.name, "missing": iso.missing,
                  "refused": levels.refusal(iso, False), "refused_opted_in": levels.refusal(iso, True)}))
"""


@pytest.fixture(scope="module")
def standalone_sandbox():
    """The sandbox's isolation levels module alone (it imports only the standard library) in a
    directory nobody can read."""
    directory = Path(tempfile.mkdtemp(prefix="perfrepro-sbxmod-"))
    shutil.copy(ROOT / "perfrepro" / "execution" / "sandbox" / "levels.py", directory / "levels.py")
    os.chmod(directory, 0o755)
    os.chmod(directory / "levels.py", 0o644)
    yield directory
    shutil.rmtree(directory)


def detect(standalone_sandbox: Path, path: str, prefix: tuple[str, ...] = ()) -> dict:
    done = subprocess.run([*prefix, sandbox.sandbox_python(), "-S", "-c", DETECT], cwd=standalone_sandbox,
                          env={"PATH": path, "PYTHONPATH": str(standalone_sandbox)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def tools_dir():
    """Make a PATH entry, readable by nobody, holding only the named tools (links to the real ones)."""
    made = []

    def make(*names: str) -> str:
        directory = Path(tempfile.mkdtemp(prefix="perfrepro-path-"))
        os.chmod(directory, 0o755)
        made.append(directory)
        for name in names:
            (directory / name).symlink_to(shutil.which(name))
        return str(directory)

    yield make
    for directory in made:
        shutil.rmtree(directory)


AS_NOBODY = (shutil.which("setpriv"), f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups")


@needs_root
def test_root_with_unshare_and_setpriv_gets_full_isolation(standalone_sandbox, tools_dir):
    found = detect(standalone_sandbox, tools_dir("unshare", "setpriv"))
    assert found["name"] == "full" and found["refused"] is None


@needs_root
def test_root_without_unshare_drops_to_nobody_but_refuses_without_opt_in(standalone_sandbox, tools_dir):
    found = detect(standalone_sandbox, tools_dir("setpriv"))
    assert found["name"] == "uid"
    assert "unshare not found" in found["refused"] and sandbox.ALLOW_UNISOLATED_ENV in found["refused"]
    assert found["refused_opted_in"] is None  # opted in, it runs: as nobody


@needs_root
def test_root_without_setpriv_is_refused_even_when_opted_in(standalone_sandbox, tools_dir):
    found = detect(standalone_sandbox, tools_dir("unshare"))
    assert found["name"] == "none"
    assert "setpriv not found" in found["refused_opted_in"] and "root" in found["refused_opted_in"]


@needs_root
def test_non_root_user_gets_user_namespaces(standalone_sandbox, tools_dir):
    found = detect(standalone_sandbox, tools_dir("unshare", "setpriv"), AS_NOBODY)
    assert found["name"] == "userns" and found["refused"] is None


@needs_root
def test_non_root_user_without_unshare_is_refused_unless_opted_in(standalone_sandbox, tools_dir):
    found = detect(standalone_sandbox, tools_dir(), AS_NOBODY)
    assert found["name"] == "none"
    assert "unshare not found" in found["refused"]
    assert found["refused_opted_in"] is None  # not root: the opt-in runs it as this user


@needs_root
def test_non_root_user_with_restricted_user_namespaces_is_refused(standalone_sandbox, tools_dir):
    path = tools_dir("unshare", "setpriv")
    # inside a user namespace of our own, allow exactly one more level (the one that makes the
    # detection run as nobody), so the detection's own unshare --user is refused by the kernel
    unshare = shutil.which("unshare")
    restrict = (unshare, "--user", "--map-root-user", "/bin/sh", "-c",
                'echo 1 > /proc/sys/user/max_user_namespaces && exec "$@"', "restrict",
                unshare, "--user", f"--map-user={NOBODY.pw_uid}", f"--map-group={NOBODY.pw_gid}")
    found = detect(standalone_sandbox, path, (*AS_NOBODY, *restrict))
    assert found["name"] == "none"
    assert "user namespaces not permitted" in found["refused"] and "sysctl" in found["refused"]


def test_run_refuses_without_isolation_and_names_the_fix(monkeypatch):
    unisolated = Isolation("uid", (), None, None, False, False, False, "no namespaces",
                           ("unshare not found on PATH (apt-get install util-linux)",))
    monkeypatch.setattr(levels, "isolation", lambda: unisolated)
    monkeypatch.delenv(sandbox.ALLOW_UNISOLATED_ENV, raising=False)
    with pytest.raises(SandboxUnavailable, match="apt-get install util-linux"):
        sandbox.run(["/bin/true"])
    as_root = Isolation("none", (), None, None, False, False, True, "would run as root", ("setpriv not found",))
    monkeypatch.setattr(levels, "isolation", lambda: as_root)
    monkeypatch.setenv(sandbox.ALLOW_UNISOLATED_ENV, "1")
    with pytest.raises(SandboxUnavailable, match="root"):
        sandbox.run(["/bin/true"])


def test_a_refusal_is_not_swallowed_as_a_failed_program():
    # code that records any Exception as a failed run must not turn a refusal into a row of
    # failures and go on
    try:
        raise SandboxUnavailable("no isolation")
    except Exception:  # noqa: BLE001 - the point of the test
        pytest.fail("SandboxUnavailable was caught by `except Exception`")
    except SandboxUnavailable:
        pass


@pytest.mark.parametrize("stage", ["measure", "measure_pie"])
def test_a_stage_without_isolation_exits_at_once_with_the_message(stage, tmp_path):
    # a PATH without unshare and setpriv: as root that is `none`, refused even when opted in
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    paths = ["--tasks", tmp_path / "tasks", "--completions", tmp_path / "completions.jsonl", "--out", tmp_path / "out",
             *(["--enamel-samples", tmp_path / "samples"] if stage == "measure_pie" else [])]
    done = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *map(str, paths)], cwd=ROOT,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "sandbox refuses to run untrusted code" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("backend_name", ["wall", "deterministic"])
def test_timing_backends_refuse_too(monkeypatch, backend_name):
    # valgrind runs inside the same sandbox: no isolation, no count
    from perfrepro.config import TimingConfig
    from perfrepro.execution import harness
    from perfrepro.records import Task, read_jsonl
    from perfrepro.timing.base import make_backend

    task = next(iter(read_jsonl(Path(__file__).parent / "fixtures" / "efficiency_tasks.jsonl", Task)))
    unisolated = Isolation("uid", (), None, None, False, False, False, "no namespaces", ("unshare not permitted",))
    monkeypatch.setattr(levels, "isolation", lambda: unisolated)
    monkeypatch.delenv(sandbox.ALLOW_UNISOLATED_ENV, raising=False)
    backend = make_backend(TimingConfig(backend_name, 1, 1.0, 20.0, 1024, 1.0))
    with pytest.raises(SandboxUnavailable, match="unshare not permitted"):
        backend.measure([harness.canonical_program(task)])
