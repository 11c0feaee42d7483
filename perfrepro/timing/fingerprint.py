"""The environment a measurement depends on, as one string every Measurement carries.

What enters the fingerprint is what can change a backend's numbers:
- `deterministic`: the sandbox interpreter's full version (build and compiler included: instruction
  counts are the interpreter's own), the machine architecture and valgrind's version;
- `wall`: the interpreter's version, the architecture and the CPU model;
- `gem5`: the interpreter's version and the architecture (the simulated CPU is PIE's image);
- every backend: the sandbox's isolation level (what the program could and could not do).
A `deterministic` run whose workers disagree is refused (`check_uniform`): its numbers would not
be comparable, let alone byte-identical to a run on one machine.
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from collections import defaultdict
from typing import Iterable, Mapping

from perfrepro.execution import sandbox

# backend -> the parts of the environment its numbers depend on
PARTS = {
    "wall": ("python", "machine", "cpu", "sandbox"),
    "deterministic": ("python", "machine", "valgrind", "sandbox"),
    "gem5": ("python", "machine", "sandbox"),
}
# backends whose numbers are only comparable when every worker has the same environment
MUST_MATCH = ("deterministic",)
# backends whose numbers suffer from other work on the same machine (parallel workers add noise)
LOAD_SENSITIVE = ("wall",)


@functools.cache
def _interpreter_version() -> str:
    interpreter = sandbox.sandbox_python()
    try:
        done = subprocess.run([interpreter, "-S", "-c", "import sys; print(sys.version)"], capture_output=True,
                              text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        return " ".join(done.stdout.split()) or f"unknown ({interpreter})"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({interpreter}: {exc})"


@functools.cache
def _valgrind_version() -> str:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return "none"
    try:
        return subprocess.run([valgrind, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("model name", "Model", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or "unknown"


_READERS = {"python": _interpreter_version, "machine": platform.machine, "valgrind": _valgrind_version,
            "cpu": _cpu_model, "sandbox": lambda: sandbox.isolation().name}


def environment_fingerprint(backend: str) -> str:
    """``python=3.11.2 (main, ...) [GCC 12.2.0]; machine=x86_64; valgrind=valgrind-3.19.0`` for
    this process's machine; the parts depend on the backend (see PARTS)."""
    return "; ".join(f"{part}={_READERS[part]()}" for part in PARTS.get(backend, ("python", "machine")))


def check_uniform(backend: str, fingerprints: Iterable[tuple[str, str]]) -> None:
    """Refuse a `deterministic` run whose (worker, fingerprint) pairs disagree, naming the odd
    workers (those outside the largest group). Other backends may mix (wall's CPU kind is on
    every Measurement for the reader to see)."""
    if backend not in MUST_MATCH:
        return
    workers: dict[str, set[str]] = defaultdict(set)
    for worker, fingerprint in fingerprints:
        workers[fingerprint].add(worker)
    if len(workers) <= 1:
        return
    ranked = sorted(workers.items(), key=lambda item: (-len(item[1]), item[0]))
    (common, _), odd = ranked[0], ranked[1:]
    details = "; ".join(f"{', '.join(sorted(names))} ran {fingerprint!r}" for fingerprint, names in odd)
    raise RuntimeError(
        f"timing.backend: {backend} needs one environment on every worker, and these differ from the "
        f"others ({common!r}): {details}. Install the same lock file, interpreter and valgrind on them "
        "(see Dockerfile.worker), or leave them out of the cluster"
    )


def workers_sharing_a_machine(hosts: Mapping[str, int]) -> dict[str, int]:
    """The machines that run more than one worker."""
    return {host: count for host, count in hosts.items() if count > 1}
