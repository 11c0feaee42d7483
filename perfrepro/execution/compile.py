"""C++ programs: the bundle format, compilation with g++ (cached by source hash), running the
binary on one test in the sandbox (`run_binary_test`, which the deterministic backend wraps in
valgrind), and the Python wrapper that lets the Python-driver backend (wall) time a binary.

A ``language="cpp"`` Program's `source` is a JSON bundle (`cpp_program`): ``code`` (a C++ program
reading stdin and writing stdout, as in PIE/CodeNet) and ``tests`` (``input``/``output`` pairs).
Outputs are compared token by token, numbers within 1e-6 (relative or absolute).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from perfrepro.execution import sandbox
from perfrepro.execution.harness import RunRecord, with_stderr_tail
from perfrepro.records import Program

BINARY_FILE = "program.bin"  # the name a binary gets in the sandbox's working dir
DEFAULT_CACHE = Path(os.environ.get("PERFREPRO_CPP_CACHE", "~/.cache/perfrepro/cpp")).expanduser()
DEFAULT_FLAGS = ("-std=c++17",)


class CompileError(RuntimeError):
    """g++ rejected the program (the message holds the end of its diagnostics)."""


@dataclass(frozen=True)
class CppBundle:
    code: str
    tests: tuple[tuple[str, str], ...]  # (stdin, expected stdout)


def cpp_program(task_id: str, role: str, code: str, tests: Sequence[tuple[str, str]], sample: int = 0) -> Program:
    """A C++ Program: `code` plus its (input, expected output) tests."""
    source = json.dumps({"code": code, "tests": [{"input": i, "output": o} for i, o in tests]}, sort_keys=True)
    return Program(task_id=task_id, role=role, source=source, sample=sample, language="cpp")


def parse_cpp_program(program: Program) -> CppBundle:
    if program.language != "cpp":
        raise ValueError(f"{program.task_id}: expected a cpp program, got language {program.language!r}")
    try:
        data = json.loads(program.source)
        return CppBundle(data["code"], tuple((t["input"], t["output"]) for t in data["tests"]))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{program.task_id}: a cpp Program's source must be a bundle from cpp_program() ({exc})") from None


def compile_command(source: str | Path, output: str | Path, optimization_flag: str = "-O3",
                    extra_flags: Sequence[str] = DEFAULT_FLAGS, compiler: str = "g++") -> list[str]:
    return [compiler, *extra_flags, optimization_flag, str(source), "-o", str(output)]


def source_hash(code: str, optimization_flag: str, extra_flags: Sequence[str] = DEFAULT_FLAGS) -> str:
    return hashlib.sha256(json.dumps([code, optimization_flag, list(extra_flags)]).encode()).hexdigest()


def compile_cpp(code: str, optimization_flag: str = "-O3", cache_dir: str | Path | None = None,
                timeout_s: float = 120.0, extra_flags: Sequence[str] = DEFAULT_FLAGS) -> Path:
    """The binary of `code`, compiled once per (source, flags) and cached; CompileError if g++ fails."""
    if shutil.which("g++") is None:
        raise CompileError("C++ programs need g++ on PATH (apt-get install g++)")
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"{source_hash(code, optimization_flag, extra_flags)}.bin"
    if binary.is_file():
        return binary
    with tempfile.TemporaryDirectory(prefix="perfrepro-cpp-") as tmp:
        src = Path(tmp) / "main.cpp"
        src.write_text(code, encoding="utf-8")
        out = Path(tmp) / "main.bin"
        try:
            done = subprocess.run(compile_command(src, out, optimization_flag, extra_flags),
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise CompileError(f"g++ took more than {timeout_s:g} s") from None
        if done.returncode != 0:
            raise CompileError("g++ failed: " + (done.stderr or "")[-2000:])
        staged = binary.with_suffix(f".{os.getpid()}.tmp")  # copy: /tmp may be another filesystem
        shutil.copy2(out, staged)
        os.replace(staged, binary)
    return binary


EMPTY_PROGRAM = "int main() { return 0; }\n"


def needed_libraries(binary: str | Path) -> tuple[str, ...]:
    """The shared libraries `binary` loads at start-up: its ELF NEEDED entries, in order."""
    if shutil.which("readelf") is None:
        raise CompileError("C++ start-up baselines need readelf on PATH (apt-get install binutils)")
    done = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"readelf -d {binary} failed: {done.stderr[-500:]}")
    return tuple(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", done.stdout))


def startup_program(binary: str | Path, optimization_flag: str = "-O3", cache_dir: str | Path | None = None) -> Path:
    """An empty program linked against the same shared libraries as `binary`, with the same flags:
    what `binary` costs before its own code runs (loader, libc and libstdc++ initialisation)."""
    # exactly the binary's libraries: --as-needed again after them, or the empty program would also
    # load the ones g++ appends by default (libstdc++, libm) that a C-only binary dropped
    link = ("-Wl,--no-as-needed", *(f"-l:{library}" for library in needed_libraries(binary)), "-Wl,--as-needed")
    return compile_cpp(EMPTY_PROGRAM, optimization_flag, cache_dir, extra_flags=(*DEFAULT_FLAGS, *link))


def outputs_match(expected: str, actual: str, tolerance: float = 1e-6) -> bool:
    """Token-wise equality; tokens that both parse as numbers may differ by `tolerance`."""
    a, b = expected.split(), actual.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if abs(fx - fy) > tolerance * max(1.0, abs(fx)):
            return False
    return True


def run_binary_test(binary: bytes, stdin: str, expected: str, limits: sandbox.Limits,
                    wrapper: Sequence[str] = (), collect: Sequence[str] = ()) -> tuple[RunRecord, sandbox.SandboxResult]:
    """Run the compiled `binary` on one test in the sandbox, under `wrapper` (e.g. valgrind and its
    flags) when given: the verdict (ok | wrong_answer | timeout | memory | disk | crash) and the raw result.

    The whole stdout is kept for the check (up to `limits.output_bytes`; more is a crash)."""
    result = sandbox.run(
        [*wrapper, f"./{BINARY_FILE}"],
        stdin=stdin.encode(),
        limits=replace(limits, tail_bytes=limits.output_bytes),
        files={BINARY_FILE: binary},
        executables=(BINARY_FILE,),
        collect=collect,
    )
    if result.status != "ok":
        return RunRecord(result.status, with_stderr_tail(result.error, result)), result
    if not outputs_match(expected, result.stdout_tail):
        return RunRecord("wrong_answer", f"wrong answer: expected {expected[:80]!r}, got {result.stdout_tail[:80]!r}"), result
    return RunRecord("ok", None), result


_WRAPPER = '''\
# perfrepro: a compiled C++ program wrapped for the Python driver; run_tests() runs the binary on
# every test (process start-up included, as PIE's hardware timing does) and checks the output.
import base64 as _b64, os as _os, subprocess as _sp, zlib as _zlib
_BINARY = _os.path.abspath("program.bin")
with open(_BINARY, "wb") as _f:
    _f.write(_zlib.decompress(_b64.b64decode({binary!r})))
_os.chmod(_BINARY, 0o700)
_TESTS = {tests!r}


def _match(expected, actual, tolerance=1e-6):
    a, b = expected.split(), actual.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x != y:
            try:
                if abs(float(x) - float(y)) > tolerance * max(1.0, abs(float(x))):
                    return False
            except ValueError:
                return False
    return True


def run_tests():
    for number, (stdin, expected) in enumerate(_TESTS):
        done = _sp.run([_BINARY], input=stdin.encode(), stdout=_sp.PIPE, stderr=_sp.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError("the binary exited " + str(done.returncode) + " on test " + str(number))
        if not _match(expected, done.stdout.decode(errors="replace")):
            raise AssertionError("wrong answer on test " + str(number))
'''


def as_python_program(program: Program, optimization_flag: str = "-O3", cache_dir: str | Path | None = None) -> Program:
    """A Python Program whose run_tests() runs the compiled binary; Python programs pass through.

    Raises CompileError when the code does not compile (the backends record it as a crash)."""
    if program.language == "python":
        return program
    bundle = parse_cpp_program(program)
    binary = compile_cpp(bundle.code, optimization_flag, cache_dir)
    packed = base64.b64encode(__import__("zlib").compress(binary.read_bytes(), 6)).decode("ascii")
    source = _WRAPPER.format(binary=packed, tests=[list(t) for t in bundle.tests])
    return Program(task_id=program.task_id, role=program.role, source=source, sample=program.sample, language="python")


def prepare_programs(programs: Sequence[Program], optimization_flag: str = "-O3",
                     cache_dir: str | Path | None = None) -> tuple[list[Program], dict[int, str]]:
    """`programs` with every C++ one wrapped for the Python driver (`as_python_program`), and the
    indices of those that did not compile, with g++'s message (the backend records a crash)."""
    prepared, errors = [], {}
    for index, program in enumerate(programs):
        try:
            prepared.append(as_python_program(program, optimization_flag, cache_dir))
        except (CompileError, ValueError) as exc:
            errors[index] = str(exc)
            prepared.append(program)
    return prepared, errors
