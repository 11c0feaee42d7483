"""Run an untrusted program and always come back with a typed result, or refuse to run it.

Each run gets: its own session and process group, a fresh working directory, rlimits (CPU
seconds, address space, processes, file size, open files), a total disk budget, a wall timeout
that kills the whole group, an environment built from scratch (the equivalent of ``env -i``: an
allowlist plus a fixed ``PYTHONHASHSEED``; no API keys, tokens or secrets), capped
stdout/stderr, death with the process that started it, and the strongest isolation level the
machine allows, or no run at all.

The rooms, each with one job (imports go down this list only):
- `levels`: the isolation levels, their probes, the refusal to run without namespaces;
- `limits`: `Limits`, the rlimits and the run's cgroup;
- `status`: a finished run's status from its facts (a pure function);
- `rundir`: the run's files on the host, and what the program left in its run dir;
- `process`: one spawned run (its pipes, output readers, stdin, kill and wait);
- `runner`: `run()` itself;
- `interpreter`: the Python that sandboxed programs run under, and what they may import.

This package's namespace holds the public names of all of them, so callers write
``sandbox.run(...)``, ``sandbox.Limits(...)``, ``sandbox.python_argv()``.
"""

from perfrepro.execution.sandbox.interpreter import (
    SANDBOX_LIBRARY,
    SANDBOX_PACKAGES,
    python_argv,
    python_env,
    python_files,
    sandbox_python,
)
from perfrepro.execution.sandbox.levels import (
    ALLOW_UNISOLATED_ENV,
    FIXED_CWD,
    SAFE_LEVELS,
    Isolation,
    SandboxUnavailable,
    detect_isolation,
    isolation,
    keeper_settings,
    refusal,
    require_isolation,
    unisolated_allowed,
)
from perfrepro.execution.sandbox.limits import Limits
from perfrepro.execution.sandbox.process import FIXED_HASH_SEED, RESULT_FD, RESULT_FD_ENV, base_env
from perfrepro.execution.sandbox.rundir import (
    COLLECT_CAP,
    RUN_DIR_INODES,
    RUN_DIR_OWNER_ENV,
    new_owner,
    remove_run_roots,
    run_dir_owner,
)
from perfrepro.execution.sandbox.runner import SandboxResult, run
from perfrepro.execution.sandbox.status import STATUSES, RunFacts, classify, exit_signal

__all__ = [
    "ALLOW_UNISOLATED_ENV", "COLLECT_CAP", "FIXED_CWD", "FIXED_HASH_SEED", "RESULT_FD", "RESULT_FD_ENV",
    "RUN_DIR_INODES", "RUN_DIR_OWNER_ENV", "SAFE_LEVELS", "SANDBOX_LIBRARY", "SANDBOX_PACKAGES", "STATUSES",
    "Isolation", "Limits", "RunFacts", "SandboxResult", "SandboxUnavailable", "base_env", "classify",
    "detect_isolation", "exit_signal", "isolation", "keeper_settings", "new_owner", "python_argv",
    "python_env", "python_files", "refusal", "remove_run_roots", "require_isolation", "run", "run_dir_owner",
    "sandbox_python", "unisolated_allowed",
]
