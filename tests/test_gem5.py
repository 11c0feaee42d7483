"""gem5 backend without a docker engine: commands, stats parsing, error paths, a fake engine."""

import dataclasses

import pytest

from perfrepro.config import TimingConfig
from perfrepro.execution.compile import cpp_program
from perfrepro.timing import gem5
from perfrepro.timing.base import make_backend

STATS = """
---------- Begin Simulation Statistics ----------
final_tick                                  512345000                       # Number of ticks from beginning of simulation (Tick)
sim_freq                                 1000000000000                       # The number of ticks per simulated second ((Tick/Second))
sim_insts                                      123456                       # Number of instructions simulated (Count)
sim_seconds                                  0.000512                       # Number of seconds simulated (Second)
sim_ticks                                   512345000                       # Number of ticks simulated (Tick)
system.cpu.numCycles                          1700000                       # Number of cpu cycles simulated (Cycle)
---------- End Simulation Statistics   ----------

---------- Begin Simulation Statistics ----------
sim_seconds                                  9.999999                       # a later dump is ignored
---------- End Simulation Statistics   ----------
"""

CONFIG = TimingConfig(backend="gem5", repeats=1, min_sample_ms=50.0, timeout_s=5.0, memory_limit_mb=512, rss_interval_ms=1.0)


def test_parse_stats_first_dump_precise():
    stats = gem5.parse_stats(STATS)
    assert stats.sim_seconds == 0.000512 and stats.sim_insts == 123456
    assert stats.precise_seconds == pytest.approx(512345000 / 1e12)
    with pytest.raises(ValueError, match="no sim_seconds"):
        gem5.parse_stats("---------- Begin Simulation Statistics ----------\nfoo 1\n")


def test_commands():
    assert gem5.compile_in_container_command("-O3") == ["g++", "-std=c++17", "-O3", "main.cpp", "-o", "main.bin"]
    command = gem5.gem5_command("./main.bin", "input.0.txt", "m5out.0")
    assert command[0].endswith("gem5.opt") and command[1] == "--outdir=m5out.0"
    assert command[2].endswith("run-se.py") and command[3] == "Verbatim" and command[-2:] == ["--input", "input.0.txt"]
    assert gem5.native_run_command("./main.bin", "in put.txt", 2)[-1] == "timeout 2 ./main.bin < 'in put.txt'"


def test_no_engine_error_is_clear(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(gem5.Gem5Unavailable, match=r"needs a running docker engine \(docker.from_env\(\) failed: .*use wall or deterministic"):
        make_backend(CONFIG)


def test_unsupported_arch():
    with pytest.raises(gem5.Gem5Unavailable, match="gem5_arch"):
        gem5.Gem5Backend(dataclasses.replace(CONFIG, gem5_arch="ARM-neoverse"), client=object())


def test_missing_image_error(monkeypatch):
    import docker

    class Images:
        def get(self, name):
            raise docker.errors.ImageNotFound(f"no such image: {name}")

    class Client:
        images = Images()

        def ping(self):
            return True

    monkeypatch.setattr(docker, "from_env", lambda: Client())
    with pytest.raises(gem5.Gem5Unavailable, match=r"docker pull alexshypula/gem5-skylake:api"):
        gem5.connect("alexshypula/gem5-skylake:api")


class FakeContainer:
    """Answers exec_run like the image would: compile ok, native outputs, gem5 stats."""

    def __init__(self, native_output=b"3\n"):
        self.native_output = native_output
        self.removed = False

    def put_archive(self, path, data):
        return True

    def exec_run(self, command, workdir=None, demux=False):
        if command[0] == "g++":
            return 0, b""
        if command[0] == "sh":
            return 0, self.native_output
        if command[0] == "cat":
            return 0, STATS.encode()
        return 0, b"gem5 ok"

    def remove(self, force=False):
        self.removed = True


class FakeClient:
    def __init__(self, container):
        self.containers = self
        self.container = container

    def run(self, image, **kwargs):
        return self.container


def test_measure_sums_sim_seconds_with_fake_engine():
    container = FakeContainer()
    backend = gem5.Gem5Backend(CONFIG, client=FakeClient(container))
    program = cpp_program("p1", "generated", "int main(){}", [("1 2\n", "3\n"), ("1 2\n", "3\n")])
    (m,) = backend.measure([program])
    assert m.status == "ok" and m.time_unit == "sim_seconds" and container.removed
    assert m.execution_time == pytest.approx(2 * 512345000 / 1e12)
    wrong = gem5.Gem5Backend(CONFIG, client=FakeClient(FakeContainer(b"4\n"))).measure([program])[0]
    assert wrong.status == "wrong_answer"
    from perfrepro.records import Program

    python = gem5.Gem5Backend(CONFIG, client=FakeClient(FakeContainer())).measure([Program("t", "slow", "x=1")])[0]
    assert python.status == "crash" and "compiled programs only" in python.error
