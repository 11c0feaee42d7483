"""Timing backends: the wall backend's mechanics, determinism, and the stages.

`wall`: what the backend does (loops, RSS samples, statuses, the interleaved repeats, the paired
ratios, ET as the second-fastest repeat) and one contrast far beyond noise (30x the work measures
at least 5x slower). How close two identical programs come under `wall` is a noise figure, never
asserted here: it is benchmarks/calibration.py's (a unit test of it failed CI once at NET 1.55,
see README).
`deterministic`: the canonical against itself is exactly 1.00, and the two (byte-identical)
programs get identical numbers, which is the determinism check.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from perfrepro.config import TimingConfig
from perfrepro.execution.harness import build_program, canonical_program
from perfrepro.metrics.efficiency import efficiency_metrics
from perfrepro.records import Completion, Measurement, Task, read_jsonl, write_jsonl
from perfrepro.timing.base import make_backend
from perfrepro.timing.paired import RatioInterval, task_ratio
from perfrepro.timing.wall import LOOPS_PER_PROCESS, memory_in_window, second_fastest

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "efficiency_tasks.jsonl"


def config(backend: str, repeats: int = 3) -> TimingConfig:
    return TimingConfig(backend=backend, repeats=repeats, min_sample_ms=20.0, timeout_s=20.0,
                        memory_limit_mb=2048, rss_interval_ms=1.0)


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return read_jsonl(FIXTURE, Task)


def test_memory_window_by_hand():
    samples = [(0.0, 1 << 20), (1.0, 3 << 20), (2.0, 3 << 20)]
    peak, integral = memory_in_window(samples, 0.5, 2.0)
    assert peak == pytest.approx(3.0)
    assert integral == pytest.approx(0.5 * (2 + 3) / 2 + 3.0)


def test_make_backend_names_unknown_backends():
    bad = TimingConfig(backend="nope", repeats=1, min_sample_ms=1, timeout_s=1, memory_limit_mb=1, rss_interval_ms=1)
    with pytest.raises(ValueError, match="timing.backend"):
        make_backend(bad)


SUM_OF_SQUARES = Task(
    id="sum-of-squares", statement="", starter_code="", examples="", source="hand-made (tests/test_timing.py)",
    canonical_solution="class Solution:\n    def f(self, n):\n        return sum(i * i for i in range({n}))\n",
    test_code="def check(candidate):\n    assert candidate(0) >= 0\n", entry_point="Solution().f",
)


def sum_of_squares(role: str, n: int, sample: int = 0):
    return build_program(SUM_OF_SQUARES, SUM_OF_SQUARES.canonical_solution.format(n=n), role=role, sample=sample)


def test_wall_mechanics(tasks):
    # what the backend must do, whatever the machine's load: every repeat runs each passing
    # program once, interleaved, times LOOPS_PER_PROCESS loops of at least one call (perf_counter
    # and CPU time), samples RSS inside them and pairs each program with the first; a wrong answer
    # is final and never timed again; ET is the fastest loop per call (perf_counter), of the second-fastest
    # repeat. (How close two identical programs come is a noise figure: benchmarks/calibration.py.)
    raw = []
    backend = make_backend(config("wall"), on_run=lambda p, r, d: raw.append((p.role, p.sample, d)))
    task = next(t for t in tasks if t.id == "stone-removal-game")
    wrong = "class Solution:\n    def canAliceWin(self, n):\n        return 1\n"
    canon, again, bad = backend.measure([canonical_program(task),
                                        build_program(task, task.canonical_solution, role="completion"),
                                        build_program(task, wrong, role="completion", sample=1)])
    assert (canon.status, again.status, bad.status) == ("ok", "ok", "wrong_answer")
    assert bad.execution_time is None and "AssertionError" in bad.error
    assert [(role, sample, d["repeat"]) for role, sample, d in raw] == [
        ("canonical", 0, 0), ("completion", 0, 0), ("completion", 1, 0),
        ("canonical", 0, 1), ("completion", 0, 1), ("canonical", 0, 2), ("completion", 0, 2)]
    timed = [d for role, sample, d in raw if d["status"] == "ok"]
    for d in timed:
        assert d["calls"] >= 1 and len(d["loops_s"]) == len(d["loops_cpu_s"]) == LOOPS_PER_PROCESS
        fastest = d["loops_s"].index(min(d["loops_s"]))  # ET: the fastest loop's time per call
        assert d["execution_time_ms"] == pytest.approx(d["loops_s"][fastest] / d["calls"] * 1000.0)
        assert d["cpu_time_ms"] == pytest.approx(d["loops_cpu_s"][fastest] / d["calls"] * 1000.0)
        assert d["execution_time_ms"] > 0 and d["cpu_time_ms"] > 0
        # RSS was sampled: on a loaded machine a short loop may hold no sample, and then the nearest
        # one stands for it (memory_in_window); with no sample at all the run would be a crash
        assert d["peak_memory_mb"] > 1.0  # an interpreter's RSS
    assert [d["repeat"] for d in timed] == [0, 0, 1, 1, 2, 2]
    for first, second in zip(timed[::2], timed[1::2]):  # one repeat: the pair
        assert "ratio_to_first" not in first
        assert second["ratio_to_first"] == second["execution_time_ms"] / first["execution_time_ms"]
    assert canon.samples == tuple(d["execution_time_ms"] for d in timed[::2])
    assert again.samples == tuple(d["execution_time_ms"] for d in timed[1::2])
    # ET: the second-fastest repeat (of three: the median)
    assert canon.execution_time == sorted(canon.samples)[1] and again.execution_time == sorted(again.samples)[1]
    assert canon.peak_memory_mb == statistics.median(d["peak_memory_mb"] for d in timed[::2])
    ratio = task_ratio(again, canon)
    assert ratio.repeats == 3 and ratio.ratio == again.execution_time / canon.execution_time
    assert ratio.lo <= ratio.hi


def test_wall_sees_a_30x_contrast():
    # 30x the work measures at least 5x slower: far beyond what load or a slow process does to one ratio
    canon, slow = make_backend(config("wall")).measure([sum_of_squares("canonical", 10_000),
                                                        sum_of_squares("completion", 300_000)])
    assert canon.passed and slow.passed
    assert slow.execution_time > 5 * canon.execution_time, (slow.samples, canon.samples)


def test_second_fastest_by_hand():
    assert second_fastest([5.0, 1.0, 3.0, 2.0]) == 2.0  # one lucky repeat can't decide it
    assert second_fastest([9.0, 1.0, 2.0]) == 2.0
    assert second_fastest([2.0, 1.0]) == 1.0 and second_fastest([4.0]) == 4.0  # fewer than three: the fastest


def test_task_ratio_by_hand():
    def wall(role, samples, status="ok"):
        return Measurement("t", role, "wall", status, min(samples), "ms", 1.0, 1.0, samples=samples)

    # every repeat 2x: every resample gives 2
    assert task_ratio(wall("completion", (2.0, 4.0, 6.0)), wall("canonical", (1.0, 2.0, 3.0))) == \
        RatioInterval(2.0, 2.0, 2.0, 3)
    # repeats (1 vs 1) and (3 vs 1): a resample keeps repeat 0 (ratio 1) with 3/4, else gives 3
    assert task_ratio(wall("completion", (1.0, 3.0)), wall("canonical", (1.0, 1.0))) == RatioInterval(1.0, 1.0, 3.0, 2)
    assert task_ratio(wall("completion", (1.0, 3.0)), wall("canonical", (1.0,))) is None
    assert task_ratio(wall("completion", (1.0,)), wall("canonical", (1.0,), status="crash")) is None
    gem5 = dataclasses.replace(wall("completion", (1.0, 3.0)), backend="gem5")  # its samples are per test
    assert task_ratio(gem5, dataclasses.replace(gem5, role="canonical")) is None


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_deterministic_calibration_is_exact_and_repeatable(tasks):
    task = next(t for t in tasks if t.id == "stone-removal-game")
    backend = make_backend(config("deterministic"))
    canon, done = backend.measure([canonical_program(task),
                                   build_program(task, task.canonical_solution, role="completion")])
    assert canon.passed and done.passed
    assert canon.execution_time > 0 and canon.time_unit == "instructions"
    # two runs of the same program: identical to the unit
    assert (canon.execution_time, canon.memory_usage, canon.peak_memory_mb) == \
           (done.execution_time, done.memory_usage, done.peak_memory_mb)
    row = efficiency_metrics([task.id], [canon, done])
    assert row.NET == 1.0 and row.NMU == 1.0 and row.NTMU == 1.0


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_deterministic_gives_a_native_timeout_without_running_valgrind(tasks):
    """A program over timeout_s natively is a timeout from its native run (failed step `native`),
    never run under valgrind, whose limit is 100x longer; a passing one is still counted."""
    task = next(t for t in tasks if t.id == "stone-removal-game")
    slow = "import time\ntime.sleep(3)\n" + task.canonical_solution
    runs = []
    backend = make_backend(dataclasses.replace(config("deterministic"), timeout_s=0.5),
                           on_run=lambda program, repeat, raw: runs.append(raw))
    timed_out, counted = backend.measure([build_program(task, slow, role="completion"), canonical_program(task)])
    assert timed_out.status == "timeout" and runs[0]["failed_step"] == "native"
    assert counted.passed and counted.execution_time > 0 and "instructions_full" in runs[1]


def test_measure_and_report_stages_end_to_end(tmp_path, tasks):
    params = (ROOT / "params.yaml").read_text().replace("repeats: 7 ", "repeats: 1 ")
    (tmp_path / "params.yaml").write_text(params)
    write_jsonl(tmp_path / "tasks.jsonl", tasks[1:])
    slow, wrong = tasks[1], tasks[2]
    write_jsonl(tmp_path / "completions.jsonl", [
        Completion(slow.id, 0, "hand", "ok", slow.canonical_solution, None),
        Completion(wrong.id, 0, "hand", "ok", "class Solution:\n    def canAliceWin(self, n):\n        return 1\n", None),
    ])
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    done = run("stages/measure.py", "--params", str(tmp_path / "params.yaml"), "--tasks", str(tmp_path / "tasks.jsonl"),
               "--completions", str(tmp_path / "completions.jsonl"), "--out", str(tmp_path / "timings"))
    assert done.returncode == 0, done.stderr
    done = run("stages/report.py", "--params", str(tmp_path / "params.yaml"), "--tasks", str(tmp_path / "tasks.jsonl"),
               "--timings", str(tmp_path / "timings"), "--metrics", str(tmp_path / "metrics"))
    assert done.returncode == 0, done.stderr
    content = json.loads((tmp_path / "metrics" / "efficiency.json").read_text())
    metrics = content["efficiency"]
    assert metrics["pass1"] == 50.0 and metrics["status_wrong_answer"] == 1
    assert metrics["NET_lo"] == metrics["NET_hi"] == metrics["NET"]  # one task in the ratios: its value twice
    assert all("." not in key for key in metrics)
    table = (tmp_path / "metrics" / "efficiency.md").read_text()
    assert "| rag3_and_smollm2-135m-instruct" in table.replace("  ", " ")
    ratios = json.loads((tmp_path / "metrics" / "net_ratios.json").read_text())["net_ratios"]
    assert [r["task_id"] for r in ratios if r["NET"] is not None] == [slow.id]
    assert {r["task_id"]: r["status"] for r in ratios} == {slow.id: "ok", wrong.id: "wrong_answer"}
    # the NET plot's data: both rows' per-task ratios, each with its row's NET and interval
    plotted = json.loads((tmp_path / "metrics" / "net_plot.json").read_text())["net_plot"]
    by_row = {r["row"]: r for r in plotted}
    assert set(by_row) == {"rag3_and_smollm2-135m-instruct", "leetcodedataset-response (reference)"}
    main_row = by_row["rag3_and_smollm2-135m-instruct"]
    assert (main_row["row_NET"], main_row["row_NET_lo"], main_row["row_NET_hi"]) == (
        metrics["NET"], metrics["NET_lo"], metrics["NET_hi"])
    assert len(plotted) == 2 * len(ratios)
    raw = [json.loads(line) for line in (tmp_path / "timings" / "raw.jsonl").read_text().splitlines()]
    # the reference row: LeetCodeDataset's recorded responses for these tasks, measured in the same
    # run (final-array's response is empty: no_code, never run; stone-removal-game's has code)
    assert {r["role"] for r in raw} == {"canonical", "completion", "reference"}
    measured = [json.loads(line) for line in (tmp_path / "timings" / "measurements.jsonl").read_text().splitlines()]
    references = {m["task_id"]: m["status"] for m in measured if m["role"] == "reference"}
    assert references[slow.id] == "no_code" and wrong.id in references
    reference = content["efficiency_reference"]
    assert set(reference) == {"NET", "NET_lo", "NET_hi", "NMU", "NTMU", "pass1"}
    assert reference["pass1"] == (50.0 if references[wrong.id] == "ok" else 0.0)
    assert "| leetcodedataset-response (reference)" in table.replace("  ", " ")
    environment = json.loads((tmp_path / "timings" / "environment.json").read_text())
    assert environment["reference"]["source"] == "leetcodedataset-response"
