"""What a self-play run needs before its funnel (perfrepro.selfplay.run) starts: the configuration
checked against this machine and the endpoints, the seeds and the programs no proposal may copy;
and the funnel's metrics afterwards."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from perfrepro.config import ConfigError, SelfPlayConfig
from perfrepro.finetuning.leakage import eval_programs_from_tasks
from perfrepro.generation.backends import check_backend, preflight_backend
from perfrepro.records import EvalProgram, OptTask, SftRecord, read_jsonl
from perfrepro.selfplay.run import STEPS, SelfPlayResult, select_seeds


def check_ready(config: SelfPlayConfig | None, params_file: str | Path) -> SelfPlayConfig:
    """`config` (params' self_play section), once valgrind is on PATH and both endpoints answer."""
    if config is None:
        raise ConfigError(f"{params_file}: no self_play section (see README, \"Self-play\")")
    if shutil.which("valgrind") is None:
        raise ConfigError("self_play measures speedups with the deterministic backend, which needs valgrind "
                          "(apt-get install valgrind); it is not on PATH")
    for key, llm in (("self_play.proposer", config.proposer), ("self_play.optimizer", config.optimizer)):
        check_backend(llm, key=key, recorded_available=False, track="self-play")
        preflight_backend(llm, key=key)  # a wrong base_url fails here, in seconds
    return config


@dataclass(frozen=True)
class SelfPlayInputs:
    seeds: list[SftRecord]
    training_programs: list[EvalProgram]  # both sides of every training and validation record
    eval_programs: list[EvalProgram]  # the evaluation tasks' programs


def read_inputs(train_data: Path, eval_tasks: Path, config: SelfPlayConfig) -> SelfPlayInputs:
    """The seeds (of pie_train_data's train.jsonl in `train_data`) and the programs no proposal may copy."""
    train = read_jsonl(train_data / "train.jsonl", SftRecord)
    val = read_jsonl(train_data / "val.jsonl", SftRecord)
    training_programs = [EvalProgram(r.problem_id, side, code) for r in [*train, *val]
                         for side, code in (("slow", r.slow), ("fast", r.fast))]
    return SelfPlayInputs(select_seeds(train, config.problems, config.seed), training_programs,
                          eval_programs_from_tasks(read_jsonl(eval_tasks, OptTask)))


def funnel_metrics(result: SelfPlayResult) -> dict:
    """metrics/self_play.json: the count at every step, the failures and the mean kept speedup."""
    return {
        **{f"self_play.{step}": result.funnel[step] for step in STEPS},
        "self_play.failures": result.failures,
        **({"self_play.mean_kept_speedup": round(sum(p.speedup for p in result.pairs) / len(result.pairs), 4)}
           if result.pairs else {}),
    }
