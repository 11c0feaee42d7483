"""Deterministic backend: valgrind instruction counts and heap profile, repeatable to the unit.

Per program, first one native run of the tests under `timing.timeout_s` and the memory limit: a
program that times out, fails or crashes there gets that verdict (failed step `native`) without
any valgrind run, so a timeout costs timeout_s, not SLOWDOWN x timeout_s under valgrind. Then
four sandboxed runs of the same driver under the same fixed environment (the
sandbox builds the env from nothing, i.e. `env -i`, plus PYTHONHASHSEED=0 and PYTHONMALLOC=malloc
so massif sees every allocation; cwd is always /tmp under namespace isolation; the real
interpreter binary, never a shim):
- callgrind, tests run once  -> I_full instructions (and the pass/fail verdict);
- callgrind, set-up only     -> I_base (the interpreter and the harness's set-up, never the
  solution: its module-level code runs inside the timed unit, see perfrepro.execution.harness);
- massif --time-unit=i, tests run once -> heap peak, heap-time integral H_full;
- massif --time-unit=i, set-up only    -> H_base.
ET = I_full - I_base (instructions), MU = H_full - H_base (MB x instructions), TMU = the heap
peak of the full run (MB, heap incl. allocator overhead; no interpreter text/stack as RSS has).
The driver ends both runs with os._exit right after reporting, so no interpreter teardown enters
either count: I_full - I_base is the tests' own instructions. MU is coarser: massif keeps at most
1,000 snapshots of the whole run, so H_full - H_base carries an error of about (heap size x
snapshot spacing); it is exactly repeatable, but for tests much shorter than the snapshot spacing
(~run length / 1000) it is noise around 0 and may even be negative. Known limit, see README.
The same program gives the same numbers run after run, so one repeat is enough (timing.repeats is
not used here).

C++ programs (``language="cpp"``, see perfrepro.execution.compile) are compiled once with g++
(`timing.gem5_optimization_flag`, cached by source hash) and valgrind runs the binary itself, once
per test under each tool, the test's input on stdin, its output checked. The baseline is the
binary's process start-up: an empty program linked against the same shared libraries with the same
flags (loading libstdc++ alone costs ~1.6M instructions, which a C-only baseline would charge to
every test of a program that includes <vector>). ET = sum over tests of (I_test - I_start-up),
MU = sum of (H_test - H_start-up), TMU = the largest heap peak of any test.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

from perfrepro.config import TimingConfig
from perfrepro.execution import harness, sandbox
from perfrepro.execution.compile import CompileError, compile_cpp, parse_cpp_program, run_binary_test, startup_program
from perfrepro.records import Measurement, Program
from perfrepro.timing.base import RunCallback, failed

log = logging.getLogger(__name__)

MB = float(1 << 20)
TIME_UNIT = "instructions"
VALGRIND_OVERHEAD_MB = 4096  # valgrind's own address-space needs on top of the program's limit
SLOWDOWN = 100.0  # timeout_s is for native runs; under valgrind the run may take this much longer
NATIVE = "native"  # the failed step of a program that failed its native run (no valgrind run made)
TOOLS = ("callgrind", "massif")


def valgrind_argv(valgrind: str, tool: str, out_file: str) -> list[str]:
    """valgrind and its flags for one tool run writing its profile to `out_file`."""
    tool_args = {
        "callgrind": ["--tool=callgrind", f"--callgrind-out-file={out_file}"],
        "massif": ["--tool=massif", "--time-unit=i", "--max-snapshots=1000", "--detailed-freq=1000000",
                   f"--massif-out-file={out_file}"],
    }[tool]
    return [valgrind, "--vgdb=no", "--quiet", *tool_args]


def tool_output(record: harness.RunRecord, result: sandbox.SandboxResult, out_file: str) -> tuple[harness.RunRecord, str]:
    """The run's verdict and the profile valgrind left in `out_file`; a passing run without one crashed."""
    text = result.files.get(out_file, b"").decode("utf-8", errors="replace")
    if record.passed and not text:
        record = harness.RunRecord("crash", f"valgrind wrote no {out_file}")
    return record, text


def callgrind_instructions(text: str) -> int:
    """Total instructions (Ir) from a callgrind output file."""
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split(":", 1)[1].split()[0])
    raise ValueError("callgrind output has no summary/totals line")


def massif_profile(text: str) -> tuple[float, float]:
    """(peak heap MB, heap-time integral MB x time unit) from a massif output file (trapezoid)."""
    points: list[tuple[int, int]] = []
    time_value = heap = extra = None
    for line in text.splitlines():
        if line.startswith("snapshot="):
            time_value = heap = extra = None
        elif line.startswith("time="):
            time_value = int(line[5:])
        elif line.startswith("mem_heap_B="):
            heap = int(line[11:])
        elif line.startswith("mem_heap_extra_B="):
            extra = int(line[17:])
            if time_value is not None and heap is not None:
                points.append((time_value, heap + extra))
    if not points:
        raise ValueError("massif output has no snapshots")
    points.sort()
    integral = sum((tb - ta) * (ha + hb) / 2.0 for (ta, ha), (tb, hb) in zip(points, points[1:]))
    return max(h for _, h in points) / MB, integral / MB


class DeterministicBackend:
    name = "deterministic"

    def __init__(self, config: TimingConfig, on_run: RunCallback | None = None):
        self.valgrind = shutil.which("valgrind")
        if self.valgrind is None:
            raise RuntimeError(
                "timing.backend: deterministic needs valgrind (apt-get install valgrind); use wall here"
            )
        self.config = config
        self.on_run = on_run
        self._startups: dict[Path, tuple[int, float]] = {}  # start-up program -> its counts
        self.native_limits = sandbox.Limits(timeout_s=config.timeout_s, memory_mb=config.memory_limit_mb)
        self.limits = sandbox.Limits(
            timeout_s=config.timeout_s * SLOWDOWN,
            memory_mb=config.memory_limit_mb + VALGRIND_OVERHEAD_MB,
        )

    def _run(self, program: Program, tool: str | None, mode: str) -> tuple[harness.RunRecord, str]:
        """One run of the driver in `mode`, under valgrind's `tool`, or natively (`tool` None, the
        native limits) to get a verdict at native cost first."""
        out_file = f"{tool}.out"
        nonce = harness.new_nonce()
        result = sandbox.run(
            [*(valgrind_argv(self.valgrind, tool, out_file) if tool else ()), *sandbox.python_argv(),
             *harness.driver_args(mode)],
            stdin=(nonce + "\n").encode(),
            limits=self.limits if tool else self.native_limits,
            env={**sandbox.python_env(), "PYTHONMALLOC": "malloc"},
            files=harness.driver_files(program),
            collect=[out_file] if tool else [],
            channel=True,
        )
        record = harness.read_record(result, nonce)
        return tool_output(record, result, out_file) if tool else (record, "")

    def _run_binary(self, binary: bytes, stdin: str, expected: str, tool: str) -> tuple[harness.RunRecord, str]:
        out_file = f"{tool}.out"
        record, result = run_binary_test(binary, stdin, expected, self.limits,
                                         wrapper=valgrind_argv(self.valgrind, tool, out_file), collect=[out_file])
        return tool_output(record, result, out_file)

    def _profile_binary(self, binary: bytes, stdin: str, expected: str) -> tuple[harness.RunRecord, str, tuple[int, float, float]]:
        """One test of a binary under callgrind then massif: (verdict, failed tool, (I, peak MB, H))."""
        record, _ = run_binary_test(binary, stdin, expected, self.native_limits)
        if not record.passed:
            return record, NATIVE, (0, 0.0, 0.0)
        texts = {}
        for tool in TOOLS:
            record, texts[tool] = self._run_binary(binary, stdin, expected, tool)
            if not record.passed:
                return record, tool, (0, 0.0, 0.0)
        try:
            return record, "", (callgrind_instructions(texts["callgrind"]), *massif_profile(texts["massif"]))
        except ValueError as exc:
            return harness.RunRecord("crash", f"valgrind output: {exc}"), "parse", (0, 0.0, 0.0)

    def cpp_startup(self, binary: Path) -> tuple[int, float]:
        """(instructions, heap-time integral) of `binary`'s start-up (see `startup_program`)."""
        empty = startup_program(binary, self.config.gem5_optimization_flag)
        if empty not in self._startups:
            record, step, (instructions, _, heap_time) = self._profile_binary(empty.read_bytes(), "", "")
            if not record.passed:
                raise RuntimeError(f"timing.backend: deterministic could not profile the start-up program "
                                   f"{empty} under {step}: {record.error}")
            self._startups[empty] = (instructions, heap_time)
        return self._startups[empty]

    def _give_up(self, program: Program, raw: dict, record: harness.RunRecord, step: str) -> Measurement:
        raw.update(status=record.status, error=record.error, failed_step=step)
        if self.on_run:
            self.on_run(program, 0, raw)
        return failed(program, self.name, record.status, TIME_UNIT, record.error)

    def _done(self, program: Program, raw: dict, instructions: float, peak_mb: float, memory_usage: float) -> Measurement:
        raw.update(status="ok", execution_time=instructions, peak_memory_mb=peak_mb, memory_usage=memory_usage)
        if self.on_run:
            self.on_run(program, 0, raw)
        return Measurement(
            task_id=program.task_id,
            role=program.role,
            backend=self.name,
            status="ok",
            execution_time=instructions,
            time_unit=TIME_UNIT,
            peak_memory_mb=peak_mb,
            memory_usage=memory_usage,
            sample=program.sample,
            samples=(instructions,),
        )

    def python_instructions(self, program: Program) -> tuple[harness.RunRecord, str, tuple[int, int]]:
        """Callgrind alone: (verdict, failed step, (I_full, I_base)); ET is I_full - I_base.

        I_full: the tests run once (one timed unit: the solution's top level, then the tests);
        I_base: the set-up only (the interpreter and the harness, never the solution)."""
        record, _ = self._run(program, None, "once")
        if not record.passed:
            return record, NATIVE, (0, 0)
        texts = {}
        for mode, key in (("once", "callgrind"), ("setup", "callgrind_base")):
            record, texts[key] = self._run(program, "callgrind", mode)
            if not record.passed:  # a failing test, or the set-up alone failing
                return record, key, (0, 0)
        try:
            return record, "", (callgrind_instructions(texts["callgrind"]), callgrind_instructions(texts["callgrind_base"]))
        except ValueError as exc:
            return harness.RunRecord("crash", f"valgrind output: {exc}"), "parse", (0, 0)

    def measure_python(self, program: Program) -> Measurement:
        raw: dict = {}
        record, step, (full, base) = self.python_instructions(program)
        if not record.passed:
            return self._give_up(program, raw, record, step)
        steps = {}
        for tool, mode, key in (("massif", "once", "massif"), ("massif", "setup", "massif_base")):
            record, text = self._run(program, tool, mode)
            if not record.passed:  # an out-of-memory under massif
                return self._give_up(program, raw, record, key)
            steps[key] = text
        try:
            peak_mb, heap_full = massif_profile(steps["massif"])
            _, heap_base = massif_profile(steps["massif_base"])
        except ValueError as exc:
            return self._give_up(program, raw, harness.RunRecord("crash", f"valgrind output: {exc}"), "parse")
        raw.update(instructions_full=full, instructions_base=base, heap_time_full=heap_full, heap_time_base=heap_base)
        return self._done(program, raw, float(full - base), peak_mb, heap_full - heap_base)

    def measure_cpp(self, program: Program) -> Measurement:
        raw: dict = {}
        try:
            bundle = parse_cpp_program(program)
            binary_path = compile_cpp(bundle.code, self.config.gem5_optimization_flag)
        except (CompileError, ValueError) as exc:
            return self._give_up(program, raw, harness.RunRecord("crash", str(exc)), "compile")
        base_instructions, base_heap_time = self.cpp_startup(binary_path)
        binary = binary_path.read_bytes()
        per_test = []
        for number, (stdin, expected) in enumerate(bundle.tests):
            record, step, counts = self._profile_binary(binary, stdin, expected)
            if not record.passed:
                error = f"test {number}: {record.error}"
                return self._give_up(program, raw, harness.RunRecord(record.status, error), f"{step} test {number}")
            per_test.append(counts)
        raw.update(instructions_per_test=[i for i, _, _ in per_test], heap_time_per_test=[h for _, _, h in per_test],
                   instructions_base=base_instructions, heap_time_base=base_heap_time)
        instructions = float(sum(i - base_instructions for i, _, _ in per_test))
        memory_usage = sum(h - base_heap_time for _, _, h in per_test)
        peak_mb = max((peak for _, peak, _ in per_test), default=0.0)
        return self._done(program, raw, instructions, peak_mb, memory_usage)

    def measure_one(self, program: Program) -> Measurement:
        return self.measure_cpp(program) if program.language == "cpp" else self.measure_python(program)

    def measure(self, programs: Sequence[Program]) -> list[Measurement]:
        return [self.measure_one(program) for program in programs]
