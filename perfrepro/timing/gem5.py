"""gem5 backend: PIE's simulated Skylake through the docker SDK, for compiled (C++) programs.

Per program (a ``language="cpp"`` bundle, see perfrepro.execution.compile): compile it inside the
simulator image with ``g++ <timing.gem5_optimization_flag>`` (so the binary matches the simulated
machine's toolchain), check its answers natively in the container (a wrong answer or a crash stops
there, as PIE's ``exit_early_on_fail`` does), then run gem5 once per test and sum the simulated
seconds (``sim_ticks / sim_freq`` from each run's stats.txt, the precise form of ``sim_seconds``).
The simulation is deterministic, so timing.repeats is not used.

Nothing here runs without a docker engine and the image: construction fails with an error that
names what is missing and how to get it. The default pipeline never selects this backend.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from dataclasses import dataclass
from typing import Any, Sequence

from perfrepro.config import TimingConfig
from perfrepro.records import Measurement, Program
from perfrepro.timing.base import RunCallback, failed

TIME_UNIT = "sim_seconds"
SUPPORTED_ARCHS = ("X86-skylake",)
# Inside PIE's image (alexshypula/gem5-skylake:api): gem5 and darchr's Skylake configuration.
GEM5_BINARY = "/home/gem5/build/X86/gem5.opt"
GEM5_SCRIPT = "/home/gem5-skylake-config/gem5-configs/run-se.py"
CPU_TYPE = "Verbatim"  # PIE's choice among the Skylake configurations
WORKDIR = "/home/working_dir"


class Gem5Unavailable(RuntimeError):
    """No docker engine, no image, or an unsupported setting; the message says what to do."""


@dataclass(frozen=True)
class Gem5Stats:
    sim_seconds: float
    sim_ticks: int | None
    sim_freq: int | None
    sim_insts: int | None

    @property
    def precise_seconds(self) -> float:
        if self.sim_ticks is not None and self.sim_freq:
            return self.sim_ticks / self.sim_freq
        return self.sim_seconds


def parse_stats(text: str) -> Gem5Stats:
    """The first statistics dump of a gem5 ``stats.txt`` (``name value # description`` lines)."""
    values: dict[str, str] = {}
    started = False
    for line in text.splitlines():
        if "Begin Simulation Statistics" in line:
            if started:
                break
            started = True
            continue
        if "End Simulation Statistics" in line:
            break
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("sim_seconds", "sim_ticks", "sim_freq", "sim_insts", "simInsts"):
            values.setdefault(parts[0], parts[1])
    if "sim_seconds" not in values:
        raise ValueError("gem5 stats.txt has no sim_seconds line")

    def integer(name: str) -> int | None:
        return int(values[name]) if name in values else None

    return Gem5Stats(
        sim_seconds=float(values["sim_seconds"]),
        sim_ticks=integer("sim_ticks"),
        sim_freq=integer("sim_freq"),
        sim_insts=integer("sim_insts") if "sim_insts" in values else integer("simInsts"),
    )


def compile_in_container_command(optimization_flag: str, source: str = "main.cpp", binary: str = "main.bin") -> list[str]:
    return ["g++", "-std=c++17", optimization_flag, source, "-o", binary]


def gem5_command(binary: str, input_file: str, outdir: str, cpu_type: str = CPU_TYPE,
                 gem5_binary: str = GEM5_BINARY, script: str = GEM5_SCRIPT) -> list[str]:
    """gem5 in syscall-emulation mode on the Skylake configuration, stdin from `input_file`."""
    return [gem5_binary, f"--outdir={outdir}", script, cpu_type, binary, "--input", input_file]


def native_run_command(binary: str, input_file: str, timeout_s: float) -> list[str]:
    return ["sh", "-c", f"timeout {timeout_s:g} {shlex.quote(binary)} < {shlex.quote(input_file)}"]


def connect(image: str):
    """A docker client with `image` present; Gem5Unavailable saying what is missing otherwise."""
    try:
        import docker
    except ImportError:
        raise Gem5Unavailable(
            "timing.backend: gem5 needs the docker SDK (pip install docker); use wall or deterministic here"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, connection refused, missing socket
        raise Gem5Unavailable(
            f"timing.backend: gem5 needs a running docker engine (docker.from_env() failed: {exc}); "
            "use wall or deterministic here"
        ) from None
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise Gem5Unavailable(
            f"timing.backend: gem5 needs the simulator image {image!r}, which the docker engine does not have; "
            f"get it with `docker pull {image}` (or set timing.gem5_image)"
        ) from None
    except docker.errors.APIError as exc:
        raise Gem5Unavailable(f"timing.backend: gem5 could not query the docker engine for {image!r} ({exc})") from None
    return client


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Gem5Backend:
    name = "gem5"

    def __init__(self, config: TimingConfig, on_run: RunCallback | None = None, client: Any = None):
        if config.gem5_arch not in SUPPORTED_ARCHS:
            raise Gem5Unavailable(
                f"timing.gem5_arch: {config.gem5_arch!r} is not simulated by PIE's image (supported: {', '.join(SUPPORTED_ARCHS)})"
            )
        self.config = config
        self.on_run = on_run
        self.client = client if client is not None else connect(config.gem5_image)

    def _exec(self, container, command: list[str], where: str) -> tuple[int, str]:
        code, output = container.exec_run(command, workdir=where, demux=False)
        return code, (output or b"").decode("utf-8", errors="replace")

    def measure_one(self, program: Program) -> Measurement:
        from perfrepro.execution.compile import outputs_match, parse_cpp_program

        if program.language != "cpp":
            return failed(program, self.name, "crash", TIME_UNIT, "gem5 times compiled programs only (language cpp)")
        bundle = parse_cpp_program(program)
        files = {"main.cpp": bundle.code}
        for number, (stdin, _) in enumerate(bundle.tests):
            files[f"input.{number}.txt"] = stdin
        container = self.client.containers.run(self.config.gem5_image, command=["sleep", "infinity"], detach=True,
                                               network_disabled=True, working_dir=WORKDIR)
        try:
            container.put_archive(WORKDIR, _tar(files))
            code, output = self._exec(container, compile_in_container_command(self.config.gem5_optimization_flag), WORKDIR)
            if code != 0:
                return failed(program, self.name, "crash", TIME_UNIT, "compilation failed: " + output[-1000:])
            for number, (_, expected) in enumerate(bundle.tests):  # natively first: cheap, and PIE skips gem5 on a fail
                code, output = self._exec(container, native_run_command("./main.bin", f"input.{number}.txt", self.config.timeout_s), WORKDIR)
                if code == 124:
                    return failed(program, self.name, "timeout", TIME_UNIT, f"test {number} timed out natively")
                if code != 0:
                    return failed(program, self.name, "crash", TIME_UNIT, f"test {number} exited {code}")
                if not outputs_match(expected, output):
                    return failed(program, self.name, "wrong_answer", TIME_UNIT, f"wrong answer on test {number}")
            per_test = []
            for number in range(len(bundle.tests)):
                outdir = f"m5out.{number}"
                code, output = self._exec(container, gem5_command("./main.bin", f"input.{number}.txt", outdir), WORKDIR)
                if code != 0:
                    return failed(program, self.name, "crash", TIME_UNIT, f"gem5 failed on test {number}: {output[-500:]}")
                _, stats_text = self._exec(container, ["cat", f"{outdir}/stats.txt"], WORKDIR)
                stats = parse_stats(stats_text)
                per_test.append(stats.precise_seconds)
                if self.on_run:
                    self.on_run(program, number, {"test": number, "sim_seconds": stats.precise_seconds, "sim_insts": stats.sim_insts})
        finally:
            container.remove(force=True)
        return Measurement(task_id=program.task_id, role=program.role, backend=self.name, status="ok",
                           execution_time=sum(per_test), time_unit=TIME_UNIT, peak_memory_mb=None, memory_usage=None,
                           sample=program.sample, samples=tuple(per_test))

    def measure(self, programs: Sequence[Program]) -> list[Measurement]:
        return [self.measure_one(program) for program in programs]
