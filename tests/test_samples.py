"""The samples backend (evalplus samples JSONL), its importers, the samples rows' metrics (eff@k and
Best@k by hand) and the paired comparison of two rows, on tiny files and the real sandbox."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from perfrepro.config import ConfigError, SamplesConfig, SampleSetConfig, build, load_params, params_errors
from perfrepro.generation.backends import BackendError, open_backend
from perfrepro.generation.generate import generate_completions
from perfrepro.generation.samples import (
    SamplesError, enamel_samples, evalperf_samples, open_samples, programs_by_task, read_samples, sample_completions,
    samples_opener, select_tasks,
)
from perfrepro.metrics import optimization as opt
from perfrepro.metrics.uncertainty import bootstrap_interval, paired_comparison
from perfrepro.optimization.optimize import optimize_tasks
from perfrepro.records import OptTask, Task
from perfrepro.report import ExperimentResult, optimization_paired_rows, per_task_speedups, study_tables

from test_optimization_inputs import TASK

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
OTHER = dataclasses.replace(TASK, id="Toy/2", entry_point="total")
TRACK = [TASK, OTHER]
TOTAL_BODY = "    return sum(xs)\n"


def write_lines(path: Path, *lines) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# ---- reading: both formats, file order, the errors --------------------------------------------


def test_solution_and_completion_lines_become_programs_in_file_order(tmp_path):
    path = write_lines(tmp_path / "m.jsonl",
                       {"task_id": "Toy/1", "solution": "def total(xs):\n    return 1\n"},
                       {"task_id": "Toy/1", "completion": TOTAL_BODY},
                       "",  # blank lines are skipped
                       {"task_id": "Toy/1", "solution": "S", "completion": "C"})  # evalplus: solution wins
    samples = read_samples(path, {t.id for t in TRACK})
    assert [s.line for s in samples] == [1, 2, 4]
    programs = programs_by_task(samples, TRACK)
    assert programs == {"Toy/1": ["def total(xs):\n    return 1\n", TASK.statement + TOTAL_BODY, "S"], "Toy/2": []}
    efficiency = Task(id="t", statement="x", starter_code="class Solution:\n", canonical_solution="", test_code="",
                      entry_point="Solution().f", examples="", source="test", imports="import math\n")
    done = programs_by_task(read_samples(write_lines(tmp_path / "e.jsonl", {"task_id": "t", "completion": "C"}), {"t"}),
                            [efficiency])
    assert done == {"t": ["import math\nC"]}  # LeetCodeDataset's prompt (its imports) + the completion


@pytest.mark.parametrize("line, message", [
    ('{"task_id": "Toy/1", "solution": ', r"m\.jsonl, line 2: not valid JSON"),
    ('["Toy/1", "def total(xs): pass"]', r"m\.jsonl, line 2: expected a JSON object, got list"),
    ('{"solution": "x"}', r"m\.jsonl, line 2: field 'task_id' is missing"),
    ('{"task_id": "Toy/1"}', r"m\.jsonl, line 2: Toy/1 has neither 'solution' .* nor 'completion'"),
    ('{"task_id": "Toy/1", "solution": ["a", "b"]}', r"m\.jsonl, line 2: field 'solution' of Toy/1 is not a string"),
])
def test_a_malformed_line_names_the_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "m.jsonl", {"task_id": "Toy/1", "solution": "x"}, line)
    with pytest.raises(SamplesError, match=message):
        read_samples(path, {"Toy/1"})


def test_an_unknown_task_id_names_the_file_line_and_id(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", {"task_id": "Toy/1", "solution": "x"}, {"task_id": "Mbpp/3", "solution": "y"})
    with pytest.raises(SamplesError, match=r"m\.jsonl, line 2: task id 'Mbpp/3' is not a task of the optimization track"):
        read_samples(path, {"Toy/1"}, "optimization track")


def test_a_task_without_samples_is_no_code_and_a_folder_holds_one_file_per_model(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    write_lines(folder / "m.jsonl", {"task_id": "Toy/1", "solution": "A"}, {"task_id": "Toy/1", "solution": "B"})
    backend = open_samples(folder, "m", "tiny samples", TRACK, TRACK, "track")
    completions = sample_completions(backend, TRACK, samples=3)
    assert [(c.task_id, c.sample, c.status, c.code) for c in completions] == [
        ("Toy/1", 0, "ok", "A"), ("Toy/2", 0, "no_code", None), ("Toy/1", 1, "ok", "B"), ("Toy/2", 1, "no_code", None),
        ("Toy/1", 2, "no_code", None), ("Toy/2", 2, "no_code", None)]
    assert {c.model for c in completions} == {"m (tiny samples)"}
    with pytest.raises(SamplesError, match=r"no file gone\.jsonl for model 'gone' .*found: m\.jsonl"):
        open_samples(folder, "gone", "x", TRACK, TRACK, "track")
    with pytest.raises(SamplesError, match="not found"):
        open_samples(tmp_path / "nothing.jsonl", "m", "x", TRACK, TRACK, "track")


def test_select_tasks_keeps_the_order_and_names_an_unknown_id():
    assert [t.id for t in select_tasks(TRACK, ["Toy/2", "Toy/1"], None, "x")] == ["Toy/2", "Toy/1"]
    assert [t.id for t in select_tasks(TRACK, ["Toy/2", "Toy/1"], 1, "x")] == ["Toy/2"]
    with pytest.raises(SamplesError, match=r"samples.tasks: HumanEval/2 not among the 2 tasks in opt_tasks.jsonl"):
        select_tasks(TRACK, ["HumanEval/2"], None, "opt_tasks.jsonl")


# ---- the backend through both tracks' factories ------------------------------------------------


def samples_config(path: Path) -> SamplesConfig:
    return SamplesConfig(models={}, tasks=("Toy/1",), backend=SampleSetConfig(file=str(path), source="tiny samples"))


def samples_config_opener(path: Path, tasks):
    return samples_opener(samples_config(path), lambda: tasks, tasks, "efficiency track")


def test_llm_backend_samples_serves_the_optimize_step_sample_by_sample(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", {"task_id": "Toy/1", "solution": "A"}, {"task_id": "Toy/2", "solution": "C"},
                       {"task_id": "Toy/1", "completion": TOTAL_BODY})
    llm = dataclasses.replace(PARAMS.llm, backend="samples", model="m")
    opener = samples_opener(samples_config(path), lambda: TRACK, TRACK, "optimization track")
    completions = optimize_tasks(TRACK, {}, llm, lambda llm: open_backend(llm, samples=opener), samples=2)
    assert [(c.task_id, c.sample, c.status, c.code) for c in completions] == [
        ("Toy/1", 0, "ok", "A"), ("Toy/2", 0, "ok", "C"), ("Toy/1", 1, "ok", TASK.statement + TOTAL_BODY),
        ("Toy/2", 1, "no_code", None)]
    # the efficiency step takes sample 0 of each task; shots > 0 would claim retrieved examples the samples never saw
    leetcode = [Task(id=f"Toy/{i}", statement="x", starter_code="", canonical_solution="", test_code="",
                     entry_point="Solution().f", examples="", source="test") for i in (1, 2)]
    with open_backend(llm, samples=samples_config_opener(path, leetcode)) as backend:
        assert [(c.code, c.status) for c in generate_completions(leetcode, backend)] == [("A", "ok"), ("C", "ok")]
    with pytest.raises(BackendError, match="only works with shots: 0"):
        with open_backend(llm, shots=3, samples=opener):
            pass
    with pytest.raises(BackendError, match="serves the efficiency and optimization tracks only"):
        with open_backend(llm):
            pass


def test_params_of_the_samples_section_are_checked():
    raw = {**__import__("yaml").safe_load((REPO / "params.yaml").read_text())}
    assert params_errors(raw) == []
    bad = json.loads(json.dumps(raw))
    bad["samples"]["models"]["gpt-3.5-turbo"] = {"file": "x.jsonl", "source": "s"}
    assert any("samples.models.gpt-3.5-turbo: a model name may not hold a dot" in e for e in params_errors(bad))
    bad = json.loads(json.dumps(raw))
    bad["samples"]["samples_per_task"] = 4
    assert params_errors(bad) == ["samples.samples_per_task: expected >= samples.k (5), got 4"]
    bad = json.loads(json.dumps(raw))
    bad["llm"].update(backend="samples", model="gpt-4o-mini-2024-07-18")
    assert params_errors(bad) == []
    del bad["samples"]["backend"]
    assert params_errors(bad) == ["samples.backend: missing; llm.backend: samples reads its file (or <folder>/<llm.model>.jsonl)"]
    bad = json.loads(json.dumps(raw))
    bad["negatives"]["llm"]["backend"] = "samples"
    assert "negatives.llm.backend: samples serves llm" in params_errors(bad)[0]
    with pytest.raises(ConfigError, match="samples.k: expected int"):
        build(SamplesConfig, {"models": {"m": {"file": "f", "source": "s"}}, "tasks": ["a"], "k": "5"}, "samples")


# ---- importers: a tiny brief file and ENAMEL's list per task, through the console script -------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfrepro", *args], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


def test_evalperf_brief_file_round_trip(tmp_path):
    brief = {"config": {"n_samples": 100}, "summary": {"pass@1": 50.0}, "eval": {
        "HumanEval/0": {"pass@1": 90.0, "profiled": [{"solution": "P0", "matching_cluster_idx": 2},
                                                     {"solution": "P1", "matching_cluster_idx": 1}]},
        "Mbpp/3": {"pass@1": 80.0, "profiled": [{"solution": "M0", "matching_cluster_idx": 0}]},
        "HumanEval/26": {"pass@1": 0.0, "profiled": []}}}
    source = tmp_path / "m_evalperf_results.brief.json"
    source.write_text(json.dumps(brief))
    out = tmp_path / "out" / "m.jsonl"
    done = run_cli("samples", "import", "evalperf", str(source), "-o", str(out), "--task-prefix", "HumanEval/")
    assert done.returncode == 0, done.stderr
    assert "2 samples of 1 tasks" in done.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"task_id": "HumanEval/0", "solution": "P0"}, {"task_id": "HumanEval/0", "solution": "P1"}]
    samples = read_samples(out, {"HumanEval/0", "HumanEval/26"})
    assert [(s.task_id, s.solution) for s in samples] == [("HumanEval/0", "P0"), ("HumanEval/0", "P1")]
    assert evalperf_samples(source)[-1] == ("Mbpp/3", "M0")  # without a prefix every task is kept
    brief["eval"]["Mbpp/3"]["profiled"][0] = {"matching_cluster_idx": 0}
    source.write_text(json.dumps(brief))
    failed = run_cli("samples", "import", "evalperf", str(source), "-o", str(out))
    assert failed.returncode == 1 and "eval['Mbpp/3'].profiled[0]: field 'solution' is missing" in failed.stderr


def test_enamel_samples_json_round_trip(tmp_path):
    source = tmp_path / "model.json"
    source.write_text(json.dumps([["A0", "A1"], [], ["C0"]]))
    assert enamel_samples(source) == [("HumanEval/0", "A0"), ("HumanEval/0", "A1"), ("HumanEval/2", "C0")]
    out = tmp_path / "model.jsonl"
    assert run_cli("samples", "import", "enamel", str(source), "-o", str(out)).returncode == 0
    samples = read_samples(out, {f"HumanEval/{i}" for i in range(3)})
    assert [(s.task_id, s.solution, s.line) for s in samples] == [("HumanEval/0", "A0", 1), ("HumanEval/0", "A1", 2),
                                                                   ("HumanEval/2", "C0", 3)]
    source.write_text(json.dumps([["A0"], "B0"]))
    with pytest.raises(SamplesError, match=r"entry 1 \(HumanEval/1\): expected a list of programs"):
        enamel_samples(source)


def test_the_shipped_evalperf_samples_read_against_enamel():
    from perfrepro.datasets import load_opt_tasks

    track = {t.id for t in load_opt_tasks(REPO / "data/raw/enamel", include_excluded=True)}
    counts = {}
    for model, entry in PARAMS.samples.models.items():
        samples = read_samples(REPO / entry.file, track)
        counts[model] = (len(samples), len({s.task_id for s in samples}))
    assert counts == {"gpt-4o-mini-2024-07-18": (573, 29), "gpt-4o-2024-08-06": (580, 29),
                      "Meta-Llama-3-8B-Instruct": (341, 18)}
    scored = {t.id for t in load_opt_tasks(REPO / "data/raw/enamel")}
    assert set(PARAMS.samples.tasks) <= scored and len(PARAMS.samples.tasks) == 29


# ---- the samples rows: eff@5 and Best@5 by hand ------------------------------------------------


def outcome(task_id: str, speedups, correct, effs) -> opt.TaskOutcome:
    return opt.TaskOutcome(task_id, (1,), tuple(speedups), tuple(correct), tuple(effs), 2.0, True, 1.0, 0.0, True)


def test_eff_at_5_and_best_at_5_from_six_samples_by_hand():
    # one task, n = 6 samples, k = 5. Sorted ascending, E[max of 5 of 6] = (x_(5) C(4,4) + x_(6) C(5,4)) / C(6,5)
    #   = (x_(5) + 5 x_(6)) / 6.
    # speedups 1, 1, 1.05, 2, 3, 4 (the 1.05 one is wrong): Best@5 = (3 + 5 * 4) / 6 = 23/6;
    # effs 0, 0, 0, 0.2, 0.5, 0.9: eff@5 = (0.5 + 5 * 0.9) / 6 = 5/6;
    # opt indicators 0, 0, 0, 1, 1, 1 -> 1 (any 5 of 6 holds one); correct 1,1,0,1,1,1 -> 1.
    # @1: the means: speedup 12.05/6, eff 1.6/6, %Opt 50, %Correct 5/6.
    one = outcome("T/1", [1.0, 1.0, 1.05, 2.0, 3.0, 4.0], [True, True, False, True, True, True],
                  [0.0, 0.0, 0.0, 0.2, 0.5, 0.9])
    # a second task whose samples are all equal: every estimator gives that value
    two = outcome("T/2", [1.5] * 6, [True] * 6, [0.4] * 6)
    first, best = opt.samples_rows([one, two], k=5, label="m (EvalPerf samples, correct only)", key="samples.m")
    assert best.label == "m (EvalPerf samples, correct only) Best@5" and best.k == 5 and first.k == 1
    assert best.speedup == pytest.approx((23 / 6 + 1.5) / 2)
    assert best.eff == pytest.approx((5 / 6 + 0.4) / 2)
    assert best.pct_opt == pytest.approx(100.0) and best.pct_correct == pytest.approx(100.0)
    assert first.speedup == pytest.approx((12.05 / 6 + 1.5) / 2) and first.eff == pytest.approx((1.6 / 6 + 0.4) / 2)
    assert first.pct_opt == pytest.approx((50.0 + 100.0) / 2) and first.pct_correct == pytest.approx((500 / 6 + 100) / 2)
    assert dict(first.per_task) == pytest.approx({"T/1": 12.05 / 6, "T/2": 1.5})
    assert (first.speedup_lo, first.speedup_hi) == bootstrap_interval([12.05 / 6, 1.5], seed=0)
    metrics = opt.optimization_metrics([first, best], excluded=0)
    assert metrics["optimization.samples.m.best_at_5.eff_at_5"] == round((5 / 6 + 0.4) / 2, 4)
    assert metrics["optimization.samples.m.tasks"] == 2
    with pytest.raises(ValueError, match="k=5, n=4"):
        opt.samples_rows([outcome("T/3", [1.0] * 4, [True] * 4, [0.0] * 4)], k=5, label="m", key="samples.m")


# ---- the paired comparison on hand-made numbers ------------------------------------------------


def test_paired_comparison_of_two_rows_by_hand():
    a = {f"t{i}": 1.0 for i in range(8)}
    b = {"t0": 2.0, "t1": 4.0, "t2": 0.5, "t3": 8.0, "t4": 3.0, "t5": 1.0, "t6": 1.0, "t7": 16.0, "only_b": 9.0}
    done = paired_comparison(a, b)
    # 8 shared tasks; t5, t6 at ratio 1 are left out of the test (zeros). The other six log2 ratios are
    # 1, 2, -1, 3, log2 3, 4: |values| 1, 2, 1, 3, 1.58, 4 hold a tie (1, 1) -> mid-ranks 1.5, 1.5, 3, 4, 5, 6;
    # the negative one has rank 1.5, so T- = 1.5. Of the 2^6 = 64 sign patterns, T- <= 1.5 in 3 (none, only
    # the first 1.5, only the second), so two-sided p = 2 * 3 / 64.
    assert done.n == 8 and done.zeros == 2 and done.median_ratio == 2.5
    assert done.wilcoxon_p == pytest.approx(6 / 64)
    assert done.method.startswith("exact (sign flips") and done.note == ""
    assert (done.median_lo, done.median_hi) == bootstrap_interval([2.0, 4.0, 0.5, 8.0, 3.0, 1.0, 1.0, 16.0],
                                                                  statistic=__import__("numpy").median, seed=0)
    few = paired_comparison({"x": 1.0, "y": 1.0, "z": 1.0}, {"x": 2.0, "y": 3.0, "z": 1.0})
    # two tasks differ (no tie): exact p = 2 * 1/4 = 0.5, and no data could make it small
    assert few.zeros == 1 and few.wilcoxon_p == pytest.approx(0.5) and few.method == "exact"
    assert few.note == "only 2 item(s) differ: p >= 0.5 whatever the data"
    none = paired_comparison({"x": 1.0}, {"x": 1.0})
    assert none.wilcoxon_p == 1.0 and none.zeros == 1 and none.note == "no item differs"
    empty = paired_comparison({"x": 1.0}, {"y": 2.0})
    assert empty.n == 0 and math.isnan(empty.wilcoxon_p) and math.isnan(empty.median_lo)


def pie_experiment(name: str, rows: dict[str, dict[str, float]], timing: str = "wall") -> ExperimentResult:
    content = {"rows": [{"key": key, "name": key, "speedups": speedups} for key, speedups in rows.items()]}
    return ExperimentResult(name, name, {"timing": {"backend": timing}}, {"metrics/optimization.json": {}},
                            per_task={"metrics/optimization_tasks.json": content})


def test_perfrepro_table_pairs_model_rows_within_and_across_experiments():
    flat = {f"t{i}": 1.0 for i in range(3)}
    first = pie_experiment("e1", {"generated": flat, "gpt (samples)": {"t0": 2.0, "t1": 3.0, "t2": 1.0},
                                  "llama (samples)": {"t0": 1.0, "t1": 1.5, "t2": 1.0}})
    # a second experiment: the same generated row (merged) and a faster gpt row (a pair across experiments)
    second = pie_experiment("e2", {"generated": flat, "gpt (samples)": {"t0": 4.0, "t1": 6.0, "t2": 1.0}})
    pairs = {(a, b): c for a, b, c in optimization_paired_rows([first, second])}
    assert set(pairs) == {
        ("generated", "gpt (samples) [e1]"), ("generated", "llama (samples)"), ("generated", "gpt (samples) [e2]"),
        ("gpt (samples) [e1]", "llama (samples)"), ("gpt (samples) [e1]", "gpt (samples) [e2]"),
        ("gpt (samples) [e2]", "llama (samples)")}
    across = pairs[("gpt (samples) [e1]", "gpt (samples) [e2]")]
    assert across.n == 3 and across.median_ratio == 2.0 and across.zeros == 1
    within = pairs[("gpt (samples) [e1]", "llama (samples)")]
    assert within.median_ratio == 0.5 and within.n == 3
    # another timing backend is never paired with wall-clock rows
    other = pie_experiment("e3", {"gpt (samples)": {"t0": 9.0}}, timing="deterministic")
    assert all("[timing: deterministic]" not in a + b for a, b, _ in optimization_paired_rows([first, other]))
    first.metrics["metrics/optimization.json"].update({"optimization.generated.speedup": 1.0})
    text = study_tables([first], "optimization")
    assert "median speedup ratio B/A" in text
    assert any("gpt (samples)" in line and "llama (samples)" in line and "0.500" in line for line in text.splitlines())


def test_report_per_task_file_holds_the_at_1_rows_but_the_slow_one():
    one = outcome("T/1", [2.0, 4.0], [True, True], [0.5, 0.9])
    rows = opt.summarize([one], samples=2) + opt.samples_rows([one], k=2, label="m (s)", key="samples.m")
    content = per_task_speedups(rows, "smollm2")
    assert [(r["key"], r["name"]) for r in content["rows"]] == [
        ("generated", "generated (smollm2)"), ("reference", "human reference (ENAMEL, ceiling)"),
        ("samples.m", "m (s)")]
    assert content["rows"][2]["speedups"] == {"T/1": 3.0}


# ---- one samples row through the real sandbox -------------------------------------------------


def test_a_samples_file_measured_in_the_sandbox_gives_its_row(tmp_path):
    from perfrepro.config import TimingConfig
    from perfrepro.optimization.inputs import generate_task_inputs
    from perfrepro.optimization.level_timing import correctness_limits, measure_tasks
    from perfrepro.timing.base import make_backend

    path = write_lines(tmp_path / "m.jsonl", {"task_id": "Toy/1", "completion": TOTAL_BODY},
                       {"task_id": "Toy/1", "solution": "def total(xs):\n    return sum(xs) + 1\n"})  # wrong
    backend = open_samples(path, "m", "tiny samples", TRACK, [TASK], "track")
    completions = sample_completions(backend, [TASK], samples=3)  # the third is missing: no_code
    config = TimingConfig(backend="wall", repeats=1, min_sample_ms=2.0, timeout_s=20.0, memory_limit_mb=1024,
                          rss_interval_ms=1.0)
    inputs = generate_task_inputs(TASK, seed=7, tests_per_level=1)
    measurements = measure_tasks([TASK], lambda _: inputs, completions, make_backend(config), correctness_limits(config),
                                 levels=(1,))
    outcomes, _ = opt.task_outcomes(measurements, samples=3)
    assert outcomes[0].correct == (True, False, False)
    first, best = opt.samples_rows(outcomes, k=2, label=backend.model_label, key="samples.m")
    assert first.pct_correct == pytest.approx(100 / 3) and best.pct_correct == pytest.approx(100 * 2 / 3)
    assert first.label == "m (tiny samples)"


# ---- the stage: a real subprocess, the shipped ENAMEL files as the track ----------------------


def test_samples_completions_stage_reads_params_and_stops_on_a_bad_id(tmp_path):
    import yaml

    from perfrepro.datasets import load_opt_tasks
    from perfrepro.records import Completion, read_jsonl, write_jsonl

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["samples"].update(samples_per_task=2, k=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    tasks = [t for t in load_opt_tasks(REPO / "data/raw/enamel") if t.id in ("HumanEval/4", "HumanEval/26")]
    write_jsonl(tmp_path / "tasks" / "tasks.jsonl", tasks)
    samples = write_lines(tmp_path / "m.jsonl", {"task_id": "HumanEval/4", "solution": "A"},
                          {"task_id": "HumanEval/2", "solution": "not scored by ENAMEL, still one of its tasks"},
                          {"task_id": "HumanEval/4", "completion": "    return 0.0\n"}, {"task_id": "HumanEval/4", "solution": "C"})

    def stage(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "stages" / "samples_completions.py"), "--model", "m", "--samples", str(path),
             "--source", "a test file", "--tasks", "tasks", "--enamel-dir", str(REPO / "data/raw/enamel"),
             "--out", "out/completions.jsonl"],
            cwd=tmp_path, capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})

    done = stage(samples)
    assert done.returncode == 0, done.stderr
    completions = read_jsonl(tmp_path / "out" / "completions.jsonl", Completion)
    four = next(t for t in tasks if t.id == "HumanEval/4")
    assert [(c.task_id, c.sample, c.status, c.code) for c in completions] == [
        ("HumanEval/4", 0, "ok", "A"), ("HumanEval/26", 0, "no_code", None),
        ("HumanEval/4", 1, "ok", four.statement + "    return 0.0\n"), ("HumanEval/26", 1, "no_code", None)]
    assert {c.model for c in completions} == {"m (a test file)"}
    bad = write_lines(tmp_path / "bad.jsonl", {"task_id": "HumanEval/4", "solution": "A"}, {"task_id": "Mbpp/3", "solution": "B"})
    failed = stage(bad)
    assert failed.returncode == 1
    assert f"samples file {bad}, line 2: task id 'Mbpp/3' is not a task of the optimization track" in failed.stderr


@pytest.mark.slow
def test_generate_stage_with_llm_backend_samples_on_the_efficiency_tasks(tmp_path):
    import yaml

    from perfrepro.datasets import load_task_source
    from perfrepro.records import Completion, read_jsonl, write_jsonl

    tasks = load_task_source(PARAMS.data.tasks_source, REPO / PARAMS.data.tasks)[:2]
    write_jsonl(tmp_path / "tasks.jsonl", tasks)
    folder = tmp_path / "samples"
    folder.mkdir()
    write_lines(folder / "my-model.jsonl", {"task_id": tasks[0].id, "solution": tasks[0].canonical_solution})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["shots"] = 0
    params["llm"].update(backend="samples", model="my-model")
    params["data"]["tasks"] = str(REPO / PARAMS.data.tasks)
    params["samples"]["backend"] = {"file": str(folder), "source": "a vLLM batch job"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def generate() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "stages" / "generate.py"), "--params", "params.yaml",
                               "--tasks", "tasks.jsonl", "--index", "no-index", "--adapters", "no-adapters",
                               "--out", "out/completions.jsonl"],
                              cwd=tmp_path, capture_output=True, text=True,
                              env={**__import__("os").environ, "PYTHONPATH": str(REPO)})

    done = generate()
    assert done.returncode == 0, done.stderr
    completions = read_jsonl(tmp_path / "out" / "completions.jsonl", Completion)
    assert [(c.task_id, c.status, c.code) for c in completions] == [
        (tasks[0].id, "ok", tasks[0].canonical_solution), (tasks[1].id, "no_code", None)]
    assert {c.model for c in completions} == {"my-model (a vLLM batch job)"}
    write_lines(folder / "my-model.jsonl", {"task_id": "two-sum-but-not-here", "solution": "x"})
    failed = generate()
    assert failed.returncode == 1 and "my-model.jsonl, line 1: task id 'two-sum-but-not-here' is not a task of the " \
                                       "efficiency track" in failed.stderr


def test_row_names_say_the_model_and_where_its_code_came_from():
    from perfrepro.report import experiment_name, optimization_experiment_rows

    assert experiment_name(0, "m", "samples", "a vLLM batch job") == "m (a vLLM batch job)"
    params = {"llm": {"model": "m", "backend": "samples"}, "pie": {"shots": 2, "prompt_style": "plain"},
              "samples": {"backend": {"file": "f", "source": "EvalPerf samples, correct only"},
                          "models": {"gpt": {"file": "g", "source": "EvalPerf samples, correct only"}}}}
    flat = {"optimization.generated.speedup": 1.5, "optimization.samples.gpt.speedup": 2.0,
            "optimization.samples.gpt.best_at_5.speedup": 3.0}
    rows = optimization_experiment_rows([ExperimentResult("w", "w", params, {"metrics/optimization.json": flat})])
    # no "2-shot plain": the samples were not asked by our prompts; the Best@5 row stays in optimization.md
    assert [(name, values["speedup"]) for name, values in rows] == [
        ("generated (m (EvalPerf samples, correct only))", 1.5), ("gpt (EvalPerf samples, correct only)", 2.0)]


def test_report_pie_reads_each_configured_model_run_and_skips_a_missing_one(tmp_path):
    from perfrepro.records import Completion, write_jsonl

    from test_metrics_boundaries import lv

    run = tmp_path / "rows" / "m"
    write_jsonl(run / "completions.jsonl", [Completion("T/1", s, "m (tiny samples)", "ok", "x", "x") for s in range(2)])
    # slow 8 ms; samples 2 ms (speedup 4) and 8 ms (speedup 1): @1 = 2.5, Best@2 = 4
    write_jsonl(run / "timings" / "measurements.jsonl", [lv("T/1", 1, "slow", 8.0), lv("T/1", 1, "reference", 4.0),
                                                          lv("T/1", 1, "generated", 2.0, sample=0),
                                                          lv("T/1", 1, "generated", 8.0, sample=1)])
    first, best = opt.samples_run_rows(tmp_path / "rows", ["absent", "m"], samples=2, k=2)
    assert (first.label, first.key, first.speedup, first.k) == ("m (tiny samples)", "samples.m", 2.5, 1)
    assert (best.label, best.speedup, best.k) == ("m (tiny samples) Best@2", 4.0, 2)
    (only,) = opt.run_rows(tmp_path / "rows", ["m", "finetuned"], samples=1)  # sample 0 only
    assert (only.label, only.speedup) == ("m (m (tiny samples))", 4.0)
