"""C++ programs: compile once (cached by source hash), wrap for the Python driver, time under wall."""

import pytest

from perfrepro.config import TimingConfig
from perfrepro.execution.compile import (
    CompileError,
    as_python_program,
    compile_command,
    compile_cpp,
    cpp_program,
    outputs_match,
    parse_cpp_program,
    prepare_programs,
)
from perfrepro.timing.base import make_backend

ADD = "#include <cstdio>\nint main(){long a,b; if(scanf(\"%ld %ld\",&a,&b)!=2) return 1; printf(\"%ld\\n\", a+b);}\n"
TESTS = [("1 2\n", "3\n"), ("40 2\n", "42")]


def test_compile_command_and_bundle():
    assert compile_command("a.cpp", "a.bin") == ["g++", "-std=c++17", "-O3", "a.cpp", "-o", "a.bin"]
    program = cpp_program("t", "slow", ADD, TESTS)
    assert program.language == "cpp" and parse_cpp_program(program).tests == tuple(TESTS)
    assert outputs_match("3 0.5\n", "3 0.5000001") and not outputs_match("3", "4") and not outputs_match("3", "3 3")


def test_compile_cached_and_errors(tmp_path):
    first = compile_cpp(ADD, cache_dir=tmp_path)
    mtime = first.stat().st_mtime_ns
    assert compile_cpp(ADD, cache_dir=tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert compile_cpp(ADD, "-O0", cache_dir=tmp_path) != first
    with pytest.raises(CompileError, match="g\\+\\+ failed"):
        compile_cpp("int main( {", cache_dir=tmp_path)
    _, errors = prepare_programs([cpp_program("t", "slow", "nope", TESTS)], cache_dir=tmp_path)
    assert 0 in errors


def test_wrapped_program_runs_and_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ok = as_python_program(cpp_program("t", "slow", ADD, TESTS), cache_dir=tmp_path / "cache")
    namespace = {}
    exec(compile(ok.source, "<wrapped>", "exec"), namespace)
    namespace["run_tests"]()
    bad = as_python_program(cpp_program("t", "slow", ADD, [("1 2\n", "4\n")]), cache_dir=tmp_path / "cache")
    namespace = {}
    exec(compile(bad.source, "<wrapped>", "exec"), namespace)
    with pytest.raises(AssertionError):
        namespace["run_tests"]()


def test_wall_backend_times_cpp():
    config = TimingConfig(backend="wall", repeats=1, min_sample_ms=5.0, timeout_s=20.0, memory_limit_mb=1024, rss_interval_ms=1.0)
    good, wrong, broken = make_backend(config).measure([
        cpp_program("t", "slow", ADD, TESTS),
        cpp_program("t", "generated", ADD, [("1 1\n", "3\n")]),
        cpp_program("t", "generated", "int main( {", TESTS, sample=1),
    ])
    assert good.status == "ok" and good.execution_time > 0
    assert wrong.status == "wrong_answer"
    assert broken.status == "crash" and "g++" in broken.error
