"""params.yaml validation: the real file loads; unknown, missing and mistyped keys are named."""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Literal

import pytest
import yaml

from perfrepro.config import AdapterConfig, ConfigError, Params, _convert, _type_name, build, load_params, params_errors

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_real_params_file_loads():
    params = load_params(PARAMS)
    assert isinstance(params, Params)
    assert params.data.corpus_source in ("leetcodedataset", "hpc_instruct")
    assert params.data.tasks_source in ("leetcodedataset", "effibench")
    assert 0 < params.data.test_fraction < 1
    assert params.adapters and all(isinstance(a, AdapterConfig) for a in params.adapters.values())
    assert isinstance(params.retrieval.ks, tuple) and all(isinstance(k, int) for k in params.retrieval.ks)
    assert params.llm.cache_dir and params.negatives.llm.model


def test_same_file_same_params():
    assert load_params(PARAMS) == load_params(PARAMS)


def test_wrong_type_names_the_dotted_key(tmp_path, raw):
    name = next(iter(raw["adapters"]))
    raw["adapters"][name]["lr"] = "x"
    with pytest.raises(ConfigError) as info:
        load_params(write(tmp_path, raw))
    assert str(info.value) == f"adapters.{name}.lr: expected float, got 'x'"


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("seed",), "42", "seed: expected int, got '42'"),
        (("seed",), True, "seed: expected int, got True"),
        (("data", "test_fraction"), [0.2], "data.test_fraction: expected float, got [0.2]"),
        (("data", "corpus_source"), "kaggle", "data.corpus_source: expected one of leetcodedataset, hpc_instruct, got 'kaggle'"),
        (("data", "limit_tasks"), "ten", "data.limit_tasks: expected int, got 'ten'"),
        (("retrieval", "ks"), [1, "3"], "retrieval.ks[1]: expected int, got '3'"),
        (("negatives", "llm", "temperature"), "hot", "negatives.llm.temperature: expected float, got 'hot'"),
        (("timing",), [1, 2], "timing: expected a mapping, got [1, 2]"),
        (("timing", "min_sample_ms"), True, "timing.min_sample_ms: expected float, got True"),
        (("llm", "model"), 7, "llm.model: expected str, got 7"),
        (("llm", "base_url"), 8080, "llm.base_url: expected str, got 8080"),
        (("retrievers", "encoder_mnrl", "hard_negatives"), "yes",
         "retrievers.encoder_mnrl.hard_negatives: expected bool, got 'yes'"),
        (("pie", "prompt_style"), "Plain", "pie.prompt_style: expected one of plain, conditioned, got 'Plain'"),
        (("executor", "kind"), None, "executor.kind: expected one of local, dask, slurm, got None"),
        (("adapters",), {}, "adapters: expected a non-empty mapping, got {}"),
        (("adapters",), ["adapter_5"], "adapters: expected a non-empty mapping, got ['adapter_5']"),
        (("self_play", "input_sizes"), 8, "self_play.input_sizes: expected a non-empty list, got 8"),
        (("finetune", "target_modules"), [], "finetune.target_modules: expected a non-empty list, got []"),
        (("finetune", "target_modules"), ["q_proj", 3], "finetune.target_modules[1]: expected str, got 3"),
        (("executor", "slurm", "job_extra_directives"), "--account=abc",
         "executor.slurm.job_extra_directives: expected a non-empty list, got '--account=abc'"),
    ],
)
def test_wrong_types_are_rejected(tmp_path, raw, path, value, message):
    target = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        load_params(write(tmp_path, raw))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "path, key",
    [(("data",), "tets_fraction"), (("llm",), "modle"), ((), "shot"), (("negatives", "llm"), "extra")],
)
def test_unknown_key_is_rejected(tmp_path, raw, path, key):
    target = raw
    for part in path:
        target = target[part]
    target[key] = 1
    with pytest.raises(ConfigError, match=rf"^{'.'.join(path + (key,))}: unknown key(; did you mean \w+\?)? \(expected one of "):
        load_params(write(tmp_path, raw))


def test_a_top_level_typo_is_rejected_with_a_suggestion(tmp_path, raw):
    raw["shotz"] = 2
    with pytest.raises(ConfigError, match=r"^shotz: unknown key; did you mean shots\? \(expected one of seed, data, "):
        load_params(write(tmp_path, raw))


def test_params_errors_lists_every_bad_section(raw):
    assert params_errors(raw) == []
    raw["shotz"] = 2
    raw["llm"]["modle"] = "x"
    raw["timing"]["repeats"] = "five"
    del raw["seed"]
    errors = params_errors(raw)
    assert errors[0].startswith("shotz: unknown key; did you mean shots?")
    assert "seed: missing key" in errors
    assert any(e.startswith("llm.modle: unknown key; did you mean model?") for e in errors)
    assert "timing.repeats: expected int, got 'five'" in errors
    assert len(errors) == 4


def test_params_errors_runs_the_range_checks_once_the_types_are_right(raw):
    raw["shots"] = -1
    assert params_errors(raw) == ["shots: expected >= 0, got -1"]
    assert params_errors([1, 2]) == ["params: expected a mapping, got [1, 2]"]


@pytest.mark.parametrize("path", [("seed",), ("data", "corpus"), ("timing", "repeats"), ("negatives", "llm", "model")])
def test_missing_key_is_rejected(tmp_path, raw, path):
    target = raw
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    with pytest.raises(ConfigError) as info:
        load_params(write(tmp_path, raw))
    assert str(info.value) == f"{'.'.join(path)}: missing key"


def test_missing_adapter_key_names_the_variant(tmp_path, raw):
    name = next(iter(raw["adapters"]))
    del raw["adapters"][name]["epochs"]
    with pytest.raises(ConfigError, match=rf"^adapters\.{name}\.epochs: missing key$"):
        load_params(write(tmp_path, raw))


def test_out_of_range_values_are_named(tmp_path, raw):
    bad = copy.deepcopy(raw)
    bad["data"]["test_fraction"] = 1.5
    with pytest.raises(ConfigError, match=r"^data\.test_fraction: expected 0 < x < 1"):
        load_params(write(tmp_path, bad))
    bad = copy.deepcopy(raw)
    bad["retrieval"]["adapter"] = "no_such_adapter"
    with pytest.raises(ConfigError, match=r"^retrieval\.adapter: 'no_such_adapter' is not a variant"):
        load_params(write(tmp_path, bad))


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_build_fills_defaults_and_converts_numbers():
    section = {
        "epochs": 1, "batch_size": 4, "lr": 1, "warmup_steps": 0, "max_grad_norm": 1.0,
        "margin": 0.5, "loss": "mse", "negatives": "none",
    }
    adapter = build(AdapterConfig, section, "adapters.tiny")
    assert adapter.lr == 1.0 and isinstance(adapter.lr, float)
    assert adapter.temperature == 0.05 and adapter.weight_decay == 0.01


# ---- _convert's branches that no params.yaml field reaches today (mutation survivors, issue #15)


def test_type_names_drop_the_typing_prefix():
    assert _type_name(int) == "int"
    assert _type_name(float | str) == "float | str"
    assert _type_name(tuple[int, ...]) == "tuple[int, ...]"
    assert _type_name(Literal["plain", "conditioned"]) == "Literal['plain', 'conditioned']"


def test_a_union_of_two_types_names_the_key_and_both_types():
    with pytest.raises(ConfigError) as info:
        _convert(float | str, [1], "hybrid.weight")
    assert str(info.value) == "hybrid.weight: expected float | str, got [1]"
    with pytest.raises(ConfigError) as info:
        _convert(float | str, None, "hybrid.weight")
    assert str(info.value) == "hybrid.weight: expected float | str, got None"
    with pytest.raises(ConfigError) as info:  # a typing.Union: no "typing." in the message
        _convert(int | Literal["auto"], "many", "executor.workers")
    message = str(info.value)
    assert message.startswith("executor.workers: expected ") and message.endswith(", got 'many'")
    assert "Literal['auto']" in message and "typing." not in message
    assert isinstance(_convert(float | str, 2, "hybrid.weight"), float)
    assert _convert(float | str, "auto", "hybrid.weight") == "auto"


@pytest.mark.parametrize("hint", [int | None, None | int, typing.Optional[int]])
def test_an_optional_takes_null_its_type_and_names_only_its_type(hint):
    assert _convert(hint, None, "pie.limit_tasks") is None
    assert _convert(hint, 3, "pie.limit_tasks") == 3  # also with None written first
    with pytest.raises(ConfigError) as info:
        _convert(hint, "ten", "pie.limit_tasks")
    assert str(info.value) == "pie.limit_tasks: expected int, got 'ten'"


def test_mappings_and_lists_convert_and_name_the_bad_item():
    assert _convert(dict[str, int], {5: 1, "b": 2}, "sizes") == {"5": 1, "b": 2}  # YAML int keys become names
    with pytest.raises(ConfigError) as info:
        _convert(dict[str, int], {"a": 1, "b": "x"}, "sizes")
    assert str(info.value) == "sizes.b: expected int, got 'x'"
    converted = _convert(tuple[float, ...], [1, 2.5], "ratios")
    assert converted == (1.0, 2.5) and isinstance(converted, tuple) and isinstance(converted[0], float)
    with pytest.raises(ConfigError) as info:
        _convert(tuple[int, ...], (1, 2), "retrieval.ks")  # only YAML lists, not Python tuples
    assert str(info.value) == "retrieval.ks: expected a non-empty list, got (1, 2)"


def test_an_unsupported_hint_is_a_bug_named_by_key_not_a_config_error():
    with pytest.raises(TypeError) as info:
        _convert(set[str], ["a"], "finetune.modules")
    assert str(info.value) == "finetune.modules: unsupported config type set[str]"


# ---- survivors of a full make mutation at 814263a (the build/params_errors loops, load_params' default)

ADAPTER = {
    "epochs": 1, "batch_size": 4, "lr": 0.1, "warmup_steps": 0, "max_grad_norm": 1.0,
    "margin": 0.5, "loss": "mse", "negatives": "none",
}


def test_an_absent_defaulted_field_does_not_stop_later_fields_from_being_read():
    # temperature (defaulted) is absent, weight_decay after it is given: it must still be read
    adapter = build(AdapterConfig, {**ADAPTER, "weight_decay": 0.5}, "adapters.tiny")
    assert adapter.temperature == 0.05 and adapter.weight_decay == 0.5


def test_params_errors_accepts_absent_top_level_sections_that_have_defaults(raw):
    defaulted = [name for name in ("executor", "finetune", "retrievers", "self_play") if name in raw]
    assert defaulted, "params.yaml no longer holds any defaulted top-level section"
    for name in defaulted:
        if name == "retrievers" and raw["retrieval"]["adapter"] in ("encoder_mnrl", "bm25", "hybrid"):
            continue  # the range check then rightly needs it
        without = {key: value for key, value in raw.items() if key != name}
        assert params_errors(without) == [], name
    without_executor = {key: value for key, value in raw.items() if key != "executor"}
    assert build(Params, without_executor).executor.kind == "local"


def test_unknown_keys_of_mixed_types_are_reported_not_a_type_error(raw):
    errors = params_errors({**raw, 1: "x", "zz": "y"})
    assert [e.split(":")[0] for e in errors] == ["1", "zz"]
    assert all("unknown key" in e for e in errors)
    with pytest.raises(ConfigError, match=r"^adapters\.tiny\.1: unknown key"):
        build(AdapterConfig, {**ADAPTER, 1: "x", "zz": "y"}, "adapters.tiny")


def test_load_params_reads_params_yaml_in_the_working_directory_by_default(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(PARAMS.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_params() == load_params(PARAMS)
