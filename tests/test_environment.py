"""The environment fingerprint and the check that llama.cpp is the portable build."""

from __future__ import annotations

import hashlib
import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from perfrepro.environment import (
    PORTABLE_CMAKE_ARGS,
    PORTABLE_ISA,
    LlamaBuild,
    LlamaBuildError,
    check_llama_build,
    fingerprint,
    parse_system_info,
)

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (pip install -e '.[local]')")

# What llama_print_system_info() says for the portable build, and for one built with -march=native
# on a Sapphire Rapids CPU (the build whose first completion segfaults).
PORTABLE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
NATIVE_SAPPHIRE_RAPIDS = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
                          "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
                          "AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")


def test_the_makefile_builds_llama_cpp_with_the_portable_flags_the_reinstall_hint_names():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    line = next(l for l in makefile.splitlines() if l.startswith("export CMAKE_ARGS :="))
    assert line.split(":=", 1)[1].split() == PORTABLE_CMAKE_ARGS.split()


def build_of(text: str) -> LlamaBuild:
    return LlamaBuild(system_info=text, features=parse_system_info(text))


def test_parse_system_info_keeps_the_features_that_are_on():
    assert parse_system_info("CPU : AVX = 1 | AVX2 = 1 | AVX512 = 0 | OPENMP = 1 |") == {"AVX", "AVX2", "OPENMP"}


def test_the_portable_line_passes_and_a_native_build_is_refused_with_the_reinstall_command():
    assert check_llama_build(build_of(PORTABLE)).isa == PORTABLE_ISA
    with pytest.raises(LlamaBuildError) as refused:
        check_llama_build(build_of(NATIVE_SAPPHIRE_RAPIDS))
    message = str(refused.value)
    assert "AMX is built in" in message and "AVX512 is built in" in message and "AVX_VNNI" in message
    assert "pip cache remove llama_cpp_python" in message and "-DGGML_NATIVE=OFF" in message


def test_a_build_without_avx2_is_not_the_portable_build_either():
    with pytest.raises(LlamaBuildError, match="lacks: AVX2, FMA"):
        check_llama_build(build_of("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | F16C = 1 | BMI2 = 1 | OPENMP = 1 |"))


@needs_llama
def test_the_installed_llama_cpp_is_the_portable_build():
    """No AMX, no AVX512, nothing native-only: exactly the portable instruction sets, AVX2 included."""
    build = check_llama_build()
    assert "AVX2" in build.features
    assert not [f for f in build.features if f.startswith(("AMX", "AVX512")) or "VNNI" in f], build.system_info
    assert build.isa == PORTABLE_ISA


@needs_llama
def test_the_install_step_check_exits_zero_on_the_installed_build():
    done = subprocess.run([sys.executable, "-m", "perfrepro.environment", "check-llama"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "portable build" in done.stdout and "AVX2 = 1" in done.stdout


def test_fingerprint_hashes_the_lock_file_and_names_python_and_llama(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("torch==2.13.0+cpu \\\n    --hash=sha256:00\n")
    found = fingerprint(lock)
    assert found["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    assert found["python"] == platform.python_version()
    assert set(found) == {"lock_sha256", "python", "llama_cpp"}
    if importlib.util.find_spec("llama_cpp") is not None:
        assert found["llama_cpp"].startswith("0.3.36 ") and "AVX2" in found["llama_cpp"].split()
    lock.write_text("torch==2.13.0+cpu\n")
    assert fingerprint(lock)["lock_sha256"] != found["lock_sha256"]
