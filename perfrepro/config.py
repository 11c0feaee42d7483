"""Typed params: one frozen dataclass per params.yaml section, built by one validating loader.

Unknown keys, missing keys and wrong types are rejected with the dotted key in the message,
e.g. ``adapters.adapter_5_negatives.lr: expected float, got 'x'``. Nothing here knows about DVC;
stages pass the parsed mapping (or a path) in.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A params value that does not fit its section; the message names the dotted key."""


@dataclass(frozen=True)
class DataConfig:
    corpus: str  # retrieval corpus file (LeetCodeDataset v0.2.0-train format)
    corpus_source: Literal["leetcodedataset", "hpc_instruct"]
    tasks: str  # efficiency tasks file (LeetCodeDataset v0.3.1-test, or EffiBench json/jsonl)
    tasks_source: Literal["leetcodedataset", "effibench"]
    enamel_dir: str  # enamel.csv and the samples/*.json programs
    humanevalplus: str  # HumanEvalPlus.jsonl.gz, extra correctness inputs for the PIE track
    pie_pairs: str  # PIE py_reference.jsonl, slow -> fast examples
    test_fraction: float  # share of corpus problems held out for retrieval evaluation
    limit_tasks: int | None  # deterministic subset of efficiency tasks; null = all
    language: str = "python"  # corpus language filter (hpc-instruct holds several)


@dataclass(frozen=True)
class EmbedConfig:
    batch_size: int
    max_seq_length: int = 256


@dataclass(frozen=True)
class AdapterConfig:
    epochs: int
    batch_size: int
    lr: float
    warmup_steps: int
    max_grad_norm: float
    margin: float
    loss: Literal["mse", "triplet", "infonce"]
    negatives: Literal["none", "slow", "hard"]
    temperature: float = 0.05  # InfoNCE only
    weight_decay: float = 0.01




@dataclass(frozen=True)
class RetrievalConfig:
    protocol: Literal["heldout", "study"]
    ks: tuple[int, ...]
    adapter: str | None  # adapter whose query side the generation prompts use; null = base model


@dataclass(frozen=True)
class LLMConfig:
    backend: Literal["local", "openai", "recorded"]
    model: str
    base_url: str | None
    api_key_env: str
    temperature: float
    max_tokens: int
    seed: int
    concurrency: int
    timeout_s: float
    max_retries: int
    max_failure_fraction: float  # the stage exits non-zero above this share of failed requests
    cache_dir: str  # response cache; absolute or ~ so queued experiments share it


@dataclass(frozen=True)
class NegativesConfig:
    limit: int  # how many train problems get an LLM-made slow variant (0 = none)
    llm: LLMConfig  # its own model settings, so `-S llm.model=...` never retrains adapters


@dataclass(frozen=True)
class TimingConfig:
    backend: Literal["wall", "deterministic", "gem5"]
    repeats: int
    min_sample_ms: float
    timeout_s: float
    memory_limit_mb: int
    rss_interval_ms: float
    gem5_image: str = "alexshypula/gem5-skylake:api"  # PIE's public simulator image
    gem5_arch: str = "X86-skylake"  # the only architecture PIE's image simulates
    gem5_optimization_flag: str = "-O3"  # g++ flag for compiled programs (gem5, and C++ under wall)


@dataclass(frozen=True)
class PieConfig:
    limit_tasks: int | None
    shots: int
    prompt_style: Literal["plain", "conditioned"]
    samples: int
    tests_per_level: int


@dataclass(frozen=True)
class Params:
    seed: int
    data: DataConfig
    embed: EmbedConfig
    adapters: dict[str, AdapterConfig]
    negatives: NegativesConfig
    retrieval: RetrievalConfig
    llm: LLMConfig
    shots: int
    timing: TimingConfig
    pie: PieConfig


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _convert(hint: Any, value: Any, key: str) -> Any:
    """Check `value` against the type `hint`, converting lists to tuples and dicts to dataclasses."""
    origin = typing.get_origin(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ConfigError(
            f"{key}: expected {_type_name(hint)}, got {value!r}"
        )
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{key}: expected a non-empty mapping, got {value!r}")
        return {str(name): _convert(value_type, item, f"{key}.{name}") for name, item in value.items()}
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: expected a non-empty list, got {value!r}")
        return tuple(_convert(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported config type {hint!r}")  # a bug here, not in params


def build(cls: type, mapping: Any, key: str = "") -> Any:
    """Build the dataclass `cls` from `mapping`, rejecting unknown, missing and mistyped keys."""
    where = key or "params"
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{key}." if key else ""
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (expected one of {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        if name not in mapping:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{prefix}{name}: missing key")
            continue
        values[name] = _convert(hints[name], mapping[name], f"{prefix}{name}")
    return cls(**values)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    params = build(Params, raw)
    _check_ranges(params)
    return params


def _check_ranges(params: Params) -> None:
    def require(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    require(0.0 < params.data.test_fraction < 1.0, f"data.test_fraction: expected 0 < x < 1, got {params.data.test_fraction}")
    require(params.data.limit_tasks is None or params.data.limit_tasks > 0, "data.limit_tasks: expected a positive int or null")
    require(params.shots >= 0, f"shots: expected >= 0, got {params.shots}")
    require(all(k > 0 for k in params.retrieval.ks), "retrieval.ks: every k must be positive")
    require(
        params.retrieval.adapter is None or params.retrieval.adapter in params.adapters,
        f"retrieval.adapter: {params.retrieval.adapter!r} is not a variant in adapters",
    )
    for name, adapter in params.adapters.items():
        key = f"adapters.{name}"
        require(adapter.epochs > 0, f"{key}.epochs: expected > 0")
        require(adapter.batch_size > 1, f"{key}.batch_size: expected > 1")
        require(adapter.lr > 0, f"{key}.lr: expected > 0")
        require(adapter.temperature > 0, f"{key}.temperature: expected > 0")
        require(
            not (adapter.loss == "mse" and adapter.negatives != "none"),
            f"{key}.negatives: the mse loss uses no negatives; set negatives: none",
        )
        require(
            not (adapter.loss == "triplet" and adapter.negatives == "none"),
            f"{key}.negatives: the triplet loss needs negatives: slow or hard",
        )
    for key, llm in (("llm", params.llm), ("negatives.llm", params.negatives.llm)):
        require(llm.concurrency >= 1, f"{key}.concurrency: expected >= 1")
        require(llm.max_retries >= 0, f"{key}.max_retries: expected >= 0")
        require(0.0 <= llm.max_failure_fraction <= 1.0, f"{key}.max_failure_fraction: expected 0..1")
    require(params.timing.repeats >= 1, "timing.repeats: expected >= 1")
    require(params.timing.timeout_s > 0, "timing.timeout_s: expected > 0")
    require(params.negatives.limit >= 0, "negatives.limit: expected >= 0")
    require(params.pie.samples >= 1, "pie.samples: expected >= 1")
    require(params.pie.shots >= 0, "pie.shots: expected >= 0")
