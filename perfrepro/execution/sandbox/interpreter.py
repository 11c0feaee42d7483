"""The interpreter sandboxed Python programs run under, and what they may import."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

from perfrepro.execution.sandbox.limits import Limits
from perfrepro.execution.sandbox.runner import run

log = logging.getLogger(__name__)


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
