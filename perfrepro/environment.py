"""The environment a result was computed in, and the check that llama.cpp is the portable build.

`fingerprint()` is what every metrics file records under ``run_info``: the short sha256 of the
lock file the environment was installed from, the Python version, and what llama.cpp was built
with. `dvc metrics diff` across two machines then shows when their environments differ.

`check_llama_build()` is the install step's check (``python -m perfrepro.environment
check-llama``, run by the Makefile) and a test's: llama-cpp-python must be the portable build,
whose instruction set is the same on every x86-64 machine. A build tuned to the machine
(``-march=native``) does different float arithmetic on different CPUs, and on a CPU with AMX its
first completion segfaults (llama.cpp issue 20824, ``ggml_backend_amx_mul_mat``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "requirements.lock"

# The flags of the one build (the Makefile exports them; README, "One llama.cpp build everywhere").
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
)
REINSTALL_COMMAND = (
    "pip cache remove llama_cpp_python; "
    f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" '
    "pip install --force-reinstall --no-deps --no-cache-dir llama-cpp-python==0.3.36"
    "  (or: rm .venv/.perfrepro-installed && make install)"
)

# The instruction sets llama.cpp reports for the portable build: exactly these, on every machine.
PORTABLE_ISA = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
# Features that are not instruction sets (code paths built in on every machine alike).
NOT_ISA = frozenset({"LLAMAFILE", "OPENMP", "REPACK"})


class LlamaBuildError(RuntimeError):
    """The installed llama-cpp-python is not the portable build."""


@dataclass(frozen=True)
class LlamaBuild:
    system_info: str       # llama_cpp.llama_print_system_info(), as llama.cpp prints it
    features: frozenset    # every feature reported "= 1"

    @property
    def isa(self) -> frozenset:
        return self.features - NOT_ISA

    def problems(self) -> list[str]:
        """What makes this build differ from the portable one (empty when it is the portable one)."""
        found = []
        extra = sorted(self.isa - PORTABLE_ISA)
        missing = sorted(PORTABLE_ISA - self.isa)
        if any(name.startswith("AMX") for name in extra):
            found.append("AMX is built in (its first completion segfaults on CPUs with AMX)")
        if any(name.startswith("AVX512") for name in extra):
            found.append("AVX512 is built in (a native build: its float arithmetic differs from other machines')")
        if extra:
            found.append(f"instruction sets beyond the portable build's: {', '.join(extra)}")
        if missing:
            found.append(f"instruction sets the portable build has and this one lacks: {', '.join(missing)}")
        return found


def parse_system_info(text: str) -> frozenset:
    """The features a llama.cpp system-info line reports as on, e.g. ``CPU : AVX = 1 | AVX2 = 1 |``."""
    return frozenset(name for name, value in re.findall(r"([A-Z][A-Z0-9_]*) = (\d+)", text) if value != "0")


def llama_build() -> LlamaBuild | None:
    """The installed llama.cpp's build features, or None when llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return None
    text = llama_cpp.llama_print_system_info()
    text = (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)).strip()
    return LlamaBuild(system_info=text, features=parse_system_info(text))


def check_llama_build(build: LlamaBuild | None = None) -> LlamaBuild:
    """The installed build when it is the portable one; otherwise LlamaBuildError saying why and
    how to reinstall it."""
    build = build or llama_build()
    if build is None:
        raise LlamaBuildError("llama-cpp-python is not installed (pip install -e '.[local]', or make install)")
    problems = build.problems()
    if problems:
        raise LlamaBuildError(
            "llama-cpp-python is not the portable build: " + "; ".join(problems)
            + f".\nllama_print_system_info(): {build.system_info}"
            + f"\nReinstall it with the portable flags: {REINSTALL_COMMAND}"
        )
    return build


def find_lock_file(start: str | Path | None = None) -> Path | None:
    """requirements.lock in the working directory (where stages run) or beside this package's
    checkout (an editable install)."""
    for directory in (Path(start or Path.cwd()), Path(__file__).resolve().parent.parent):
        candidate = directory / LOCK_FILE
        if candidate.is_file():
            return candidate
    return None


def llama_summary(build: LlamaBuild | None) -> str:
    """llama-cpp-python's version and its build features, in one short line."""
    if build is None:
        return "not installed"
    try:
        from importlib.metadata import version
        release = version("llama-cpp-python")
    except Exception:  # noqa: BLE001 - a version we can't read is not worth failing a report for
        release = "unknown"
    return f"{release} {' '.join(sorted(build.features))}"


def fingerprint(lock_file: str | Path | None = None) -> dict:
    """Small, flat, JSON-ready: lock_sha256 (first 16 hex digits), python, llama_cpp."""
    path = Path(lock_file) if lock_file else find_lock_file()
    lock_sha = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path and path.is_file() else "no lock file"
    return {
        "lock_sha256": lock_sha,
        "python": platform.python_version(),
        "llama_cpp": llama_summary(llama_build()),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "fingerprint"
    if command == "check-llama":
        try:
            build = check_llama_build()
        except LlamaBuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"llama.cpp is the portable build: {build.system_info}")
        return 0
    if command == "fingerprint":
        print(json.dumps(fingerprint(), indent=2))
        return 0
    print("usage: python -m perfrepro.environment [fingerprint | check-llama]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
