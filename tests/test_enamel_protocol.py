"""pie.protocol enamel: the Hodges-Lehmann estimate, ENAMEL's eff on hand-computed numbers, ENAMEL's
seeded inputs, the per-level records, the config's validation, and one task through the real sandbox."""

import copy
import random

import pytest
import yaml

from perfrepro.config import ConfigError, EnamelConfig, build, load_params, Params
from perfrepro.metrics.enamel import enamel_row, enamel_scores, hodges_lehmann, pass_at_k, program_score
from perfrepro.metrics.optimization import enamel_task_eff, level_key
from perfrepro.optimization.enamel_inputs import (
    enamel_test_seed,
    generate_enamel_inputs,
    miller_rabin,
    rand_parens,
    rand_primality,
    task_index,
)
from perfrepro.optimization.enamel_driver import CaseRun, EnamelSettings
from perfrepro.optimization.enamel_protocol import Candidate, level_measurements, measure_enamel_task, task_timeout_ms
from perfrepro.records import Measurement, OptTask

from test_optimization_inputs import balanced

# ---- Hodges-Lehmann: the median of the Walsh averages (x_a + x_b) / 2, a <= b ----


def test_hodges_lehmann_on_hand_computed_numbers():
    assert hodges_lehmann([5.0]) == 5.0
    assert hodges_lehmann([1.0, 2.0, 3.0]) == 2.0  # averages 1, 1.5, 2, 2, 2.5, 3
    # averages 1, 1.5, 2, 5.5, 6, 10: median (2 + 5.5) / 2; the mean would be 4.33, the median 2
    assert hodges_lehmann([1.0, 2.0, 10.0]) == 3.75
    # one outlier among four: averages 1 1.5 2 2 2.5 3 50.5 51 51.5 100 -> (2.5 + 3) / 2
    assert hodges_lehmann([3.0, 1.0, 100.0, 2.0]) == 2.75
    with pytest.raises(ValueError):
        hodges_lehmann([])


# ---- eff: e_j = max(0, T - t_j) / (T - ref_j), T = 2 x max_j ref_j, weights 0, 3, 3, 4 ----

REF = {0: 0.1, 1: 1.0, 2: 2.0, 3: 4.0}  # ms; T = 8 ms


def levels(statuses_times: dict) -> dict[int, Measurement]:
    return {level: Measurement(level_key("T/1", level), "slow", "enamel", status, time if status == "ok" else None,
                               "ms", None, None) for level, (status, time) in statuses_times.items()}


def test_eff_formula_uses_one_timeout_per_task():
    # e1 = (8-1)/(8-1) = 1, e2 = (8-3)/(8-2) = 5/6, e3 = max(0, 8-8)/(8-4) = 0 -> (3 + 2.5 + 0) / 10
    assert enamel_task_eff({1: 1.0, 2: 3.0, 3: 8.0}, REF, True) == pytest.approx(0.55)
    # faster than the reference everywhere scores above 1: e = (8 - 0.5 t)/(8 - t) per level
    assert enamel_task_eff({1: 0.5, 2: 1.0, 3: 2.0}, REF, True) == pytest.approx((3 * 7.5 / 7 + 3 * 7 / 6 + 4 * 6 / 4) / 10)


def test_program_score_timeout_wrong_answer_and_level_zero():
    ok = levels({0: ("ok", 0.2), 1: ("ok", 2.0), 2: ("ok", 4.0), 3: ("ok", 4.0)})
    assert program_score(ok, REF) == pytest.approx((True, (3 * 6 / 7 + 3 * 4 / 6 + 4 * 1.0) / 10))
    # a timeout on level 3 scores 0 there and keeps the program correct (pass@1 counts it)
    timed_out = levels({0: ("ok", 0.2), 1: ("ok", 2.0), 2: ("ok", 4.0), 3: ("timeout", None)})
    passed, eff = program_score(timed_out, REF)
    assert passed and eff == pytest.approx((3 * 6 / 7 + 3 * 4 / 6) / 10)
    # out of memory on level 2: levels 2 and 3 score 0
    assert program_score(levels({0: ("ok", 0.2), 1: ("ok", 1.0), 2: ("memory", None), 3: ("memory", None)}), REF) \
        == pytest.approx((True, 0.3))
    # a wrong answer anywhere, a crash, or a level 0 that did not pass: 0 and not passed
    assert program_score(levels({0: ("ok", 0.2), 1: ("ok", 1.0), 2: ("wrong_answer", None), 3: ("wrong_answer", None)}), REF) == (False, 0.0)
    assert program_score(levels({0: ("crash", None), 1: ("crash", None)}), REF) == (False, 0.0)
    assert program_score(levels({0: ("timeout", None), 1: ("timeout", None)}), REF) == (False, 0.0)


def test_pass_at_k_and_rows_over_tasks():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)
    measurements = []
    for task, times in (("T/1", {1: 1.0, 2: 3.0, 3: 8.0}), ("T/2", {1: 1.0, 2: 2.0, 3: 4.0})):
        for role, values in (("reference", REF), ("slow", {0: 0.1, **times})):
            measurements += [Measurement(level_key(task, lv), role, "enamel", "ok", t, "ms", None, None) for lv, t in values.items()]
    scores = enamel_scores(measurements)
    assert list(scores) == ["slow"] and [s.task_id for s in scores["slow"]] == ["T/1", "T/2"]
    assert scores["slow"][0].timeout_ms == 8.0
    row = enamel_row("slow", scores["slow"])
    assert row.tasks == 2 and row.pass_rate == 1.0 and row.eff == pytest.approx((0.55 + 1.0) / 2)
    assert row.eff_lo <= row.eff <= row.eff_hi


# ---- the per-level records a program's test runs give ----


def test_level_measurements_take_the_largest_test_estimate_and_stop_after_a_timeout():
    runs = [CaseRun(0, 0, "ok", (0.001,)), CaseRun(1, 0, "ok", (0.001, 0.002, 0.003)), CaseRun(1, 1, "ok", (0.004, 0.004, 0.004, 0.1)),
            CaseRun(2, 0, "timeout", (), "over the time limit")]
    by_level = {int(m.task_id[-1]): m for m in level_measurements("T/1", "slow", 0, (0, 1, 2, 3), runs)}
    assert by_level[0].execution_time == pytest.approx(1.0)
    assert by_level[1].samples == pytest.approx((2.0, 4.0)) and by_level[1].execution_time == pytest.approx(4.0)
    assert [by_level[lv].status for lv in (2, 3)] == ["timeout", "timeout"]
    assert "not run: level 2 stopped" in by_level[3].error
    assert task_timeout_ms(list(by_level.values())[:2], EnamelSettings(level_weights=(0, 1.0, 1.0, 1.0))) == pytest.approx(8.0)


# ---- ENAMEL's seeded inputs ----

TASK = OptTask(
    id="HumanEval/7",
    statement="def double(n: int) -> int:\n    \"\"\"Twice n.\"\"\"\n",
    slow_program="def double(n):\n    total = 0\n    for _ in range(n):\n        total += 2\n    return total\n",
    reference_program="def double(n):\n    return 2 * n\n",
    input_generator="def generate_input(size, lid, cid):\n    return size + random.randint(0, 3),\n",
    levels=(2, 50, 200, 100000),
    checker="def __check(input, answer, output):\n    return type(output) == type(answer) and output == answer\n",
    source="test",
    entry_point="double",
)


def test_enamel_inputs_are_drawn_after_enamels_seed():
    inputs = generate_enamel_inputs(TASK, seed=998244353, tests_per_level=(2, 1, 1, 1))
    assert [(t["level"], t["cid"]) for t in inputs.tests] == [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0)]
    offsets = [0, 0, 2, 3, 4]  # tests of the lower levels
    for test, offset in zip(inputs.tests, offsets):
        seed = 998244353 ^ 7 ^ (offset + test["cid"])
        assert enamel_test_seed(998244353, 7, offset, test["cid"]) == seed
        assert test["args"] == (test["size"] + random.Random(seed).randint(0, 3),)
        assert test["answer"] == 2 * test["args"][0]
    assert task_index("HumanEval/163") == 163
    with pytest.raises(ValueError):
        task_index("Mbpp/3")


def test_enamel_helpers():
    random.seed(3)
    for size in (1, 2, 7, 40):
        text = rand_parens(size)
        assert balanced(text) and len(text) == size + size % 2
        assert not balanced(rand_parens(size + 4, valid=False))
    groups = rand_parens(12, sep=None)
    assert isinstance(groups, list) and all(balanced(g) for g in groups) and len("".join(groups)) == 12
    assert [n for n in range(2, 40) if miller_rabin(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]
    assert [rand_primality(100, 0, cid) for cid in range(4)] == [30031, 561, 2, 125]
    assert miller_rabin(rand_primality(10**6, 1, 3))  # cid % 3 == 0: a prime


# ---- config ----


def raw_params():
    with open("params.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_shipped_params_hold_enamels_defaults():
    params = load_params("params.yaml")
    assert params.pie.protocol == "perfrepro"
    assert params.pie.enamel == EnamelConfig()
    assert params.pie.enamel.tests_per_level == (8, 4, 4, 4) and params.pie.enamel.level_weights == (0.0, 3.0, 3.0, 4.0)


@pytest.mark.parametrize("change, message", [
    ({"protocol": "enaml"}, "pie.protocol: expected one of perfrepro, enamel"),
    ({"enamel": {"level_weights": [0, 3, 3]}}, "pie.enamel.level_weights: expected 4 weights"),
    ({"enamel": {"level_weights": [0, 0, 0, 0]}}, "pie.enamel.level_weights: expected weights >= 0 with a positive sum"),
    ({"enamel": {"timeout_factor": 1.0}}, "pie.enamel.timeout_factor: expected > 1"),
    ({"enamel": {"repeats": 0}}, "pie.enamel.repeats: expected >= 1"),
    ({"enamel": {"tests_per_level": [8, 0, 4, 4]}}, "pie.enamel.tests_per_level: every count must be >= 1"),
    ({"enamel": {"sample_sets": ["humanevalplus-canonical.json"]}}, "pie.enamel.sample_sets: expected file names"),
    ({"enamel": {"sample_sets": ["slow"]}}, "pie.enamel.sample_sets: slow, reference and generated"),
    ({"enamel": {"repeat": 6}}, "pie.enamel.repeat: unknown key; did you mean repeats?"),
])
def test_enamel_config_errors_name_the_key(tmp_path, change, message):
    raw = raw_params()
    for key, value in change.items():
        if key == "enamel":
            raw["pie"]["enamel"].update(value)
        else:
            raw["pie"][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        load_params(path)


def test_params_without_the_new_keys_still_load():
    raw = raw_params()
    del raw["pie"]["protocol"], raw["pie"]["enamel"]
    params = build(Params, raw)
    assert params.pie.protocol == "perfrepro" and params.pie.enamel == EnamelConfig()


# ---- one task through the real sandbox ----


def test_one_task_through_the_sandbox():
    inputs = generate_enamel_inputs(TASK, seed=1, tests_per_level=(2, 1, 1, 1))
    settings = EnamelSettings(repeats=3, tolerance_s=0.02, reference_timeout_s=60.0)
    loop_forever = "def double(n):\n    while n > 1000:\n        pass\n    return 2 * n\n"
    candidates = [
        Candidate("slow", 0, TASK.slow_program),
        Candidate("generated", 0, "def double(n):\n    return n + n\n"),
        Candidate("generated", 1, "def double(n):\n    return 2 * n if n < 100 else 0\n"),  # wrong on level 2
        Candidate("generated", 2, loop_forever),  # over the limit on level 3 only
        Candidate("generated", 3, "def double(n):\n    print(n)\n    return 2 * n\n"),  # print is None, as in ENAMEL
        Candidate("generated", 4, None, "no program"),
    ]
    measurements = measure_enamel_task(settings, (TASK, copy.deepcopy(inputs), candidates))
    status = {(m.role, m.sample, int(m.task_id[-1])): m.status for m in measurements}
    assert [status[("reference", 0, lv)] for lv in range(4)] == ["ok"] * 4
    assert [status[("generated", 0, lv)] for lv in range(4)] == ["ok"] * 4
    assert [status[("generated", 1, lv)] for lv in range(4)] == ["ok", "ok", "wrong_answer", "wrong_answer"]
    assert [status[("generated", 2, lv)] for lv in range(4)] == ["ok", "ok", "ok", "timeout"]
    assert status[("generated", 3, 0)] == "crash" and status[("generated", 4, 0)] == "no_code"
    reference = [m for m in measurements if m.role == "reference"]
    assert all(len(m.samples) == (2 if i == 0 else 1) for i, m in enumerate(reference))
    scores = enamel_scores(measurements)
    assert scores["generated"][0].passed == (True, False, True, False, False)
    assert scores["generated"][0].effs[1] == scores["generated"][0].effs[3] == 0.0


def test_cpu_clock_does_not_count_time_off_the_cpu():
    """clock cpu (not ENAMEL's): a call that sleeps spends no CPU time, so it neither times out
    nor scores slow; on ENAMEL's wall clock the same call overruns T + tolerance on level 0."""
    inputs = generate_enamel_inputs(TASK, seed=1, tests_per_level=(1, 1, 1, 1))
    sleeper = "def double(n):\n    time.sleep(0.1)\n    return 2 * n\n"  # ENAMEL's namespace holds `time`
    by_clock = {}
    for clock in ("wall", "cpu"):
        settings = EnamelSettings(repeats=2, tolerance_s=0.02, reference_timeout_s=60.0, clock=clock)
        measurements = measure_enamel_task(settings, (TASK, copy.deepcopy(inputs), [Candidate("generated", 0, sleeper)]))
        by_clock[clock] = [m.status for m in measurements if m.role == "generated"]
        # a clock that ticks in jiffies would give the microsecond reference calls 0 (the process's
        # CPU clock does under the sandbox's RLIMIT_CPU)
        assert all(m.execution_time > 0 for m in measurements if m.role == "reference")
    assert by_clock == {"wall": ["timeout"] * 4, "cpu": ["ok"] * 4}


def test_enamel_report_rows_metric_keys_and_another_models_rows():
    from perfrepro.report import enamel_report

    def levels_of(role, times, sample=0):
        return [Measurement(level_key("T/1", lv), role, "enamel", "ok" if t is not None else "wrong_answer", t,
                            "ms", None, None, sample=sample) for lv, t in times.items()]

    wrong = {0: None, 1: None, 2: None, 3: None}
    main = (levels_of("reference", REF) + levels_of("slow", {0: 0.1, 1: 1.0, 2: 3.0, 3: 8.0})
            + levels_of("humanevalplus-canonical", REF) + levels_of("generated", wrong))
    other = levels_of("reference", REF) + levels_of("slow", REF) + levels_of("generated", REF)
    metrics, text = enamel_report(main, [("finetuned", "m+lora", other)], (0, 3, 3, 4), 2.0, 1, "m", "header")
    assert metrics["optimization.enamel.slow.eff_at_1"] == 0.55
    assert metrics["optimization.enamel.humanevalplus-canonical.eff_at_1"] == 1.0
    assert metrics["optimization.enamel.generated.eff_at_1"] == 0.0 and metrics["optimization.enamel.generated.pass_at_1"] == 0.0
    assert metrics["optimization.enamel.finetuned.eff_at_1"] == 1.0
    table = text.split("## Per task")[0]
    order = [table.index(name) for name in ("generated (m)", "finetuned (m+lora)", "HumanEval+ canonical", "HumanEval canonical")]
    assert order == sorted(order)
