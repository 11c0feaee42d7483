"""Stage `self_play`: new programs from one model, their optimizations from another, kept only when
novel, correct and measurably faster (params: self_play, finetune.data, finetune.leak_threshold,
data.pie_pairs).

Seeds are `self_play.problems` problems of the training records (data/finetune/data/train.jsonl,
never the evaluation tasks). `self_play.proposer` writes a new problem per seed as a function
`solve` with an input generator; both run in the sandbox on seeded inputs; semantic duplicates and
copies of training or evaluation programs (data/prepared/opt_tasks.jsonl) are dropped;
`self_play.optimizer` rewrites the rest (PIE's few-shot or conditioned prompt); a pair is kept when
the rewrite gives the same outputs on every input, is >= `self_play.min_speedup` faster in
callgrind instruction counts, and is not trivial. See perfrepro/selfplay/run.py for the funnel.

Writes data/self_play/pairs.jsonl (kept pairs, PIE's released field names, counts, speedup, tag),
data/self_play/candidates.jsonl (every proposal: how far it got and why it stopped),
data/self_play/finetune_pairs.jsonl (the pairs when `finetune.data` is pie+self_play, else empty:
the finetune stage depends on this file only, so under pie no self-play change retrains the model)
and metrics/self_play.json (the funnel). LLM answers, sandbox probes and measurements are cached
beside the LLM cache, so a rerun sends no request and runs nothing again. Exits 1, writing
nothing, when more than `self_play.max_failure_fraction` of the proposals are lost to failed
requests or work items.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.datasets.base import DatasetError
from perfrepro.datasets.pie import load_pairs
from perfrepro.execution import sandbox
from perfrepro.dispatch import ExecutorError, make_executor
from perfrepro.finetuning.leakage import eval_programs_from_tasks
from perfrepro.generation.backends import BackendError, check_backend, open_backend, preflight_backend
from perfrepro.generation.cache import ResponseCache, resolve_cache_dir
from perfrepro.generation.local_server import LocalServerError
from perfrepro.generation.runinfo import start_model_stage
from perfrepro.io import atomic_outputs, write_json
from perfrepro.optimization.optimize import retrieve_pie_examples
from perfrepro.optimization.prompts import load_conditioned_template
from perfrepro.records import EvalProgram, OptTask, RecordError, SftRecord, read_jsonl, write_jsonl
from perfrepro.selfplay.run import STEPS, failure_message, open_with, run_self_play, select_seeds

log = logging.getLogger("self_play")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--train-data", type=Path, default=Path("data/finetune/data"), help="pie_train_data's output")
    parser.add_argument("--eval-tasks", type=Path, default=Path("data/prepared/opt_tasks.jsonl"),
                        help="the evaluation tasks no proposal may copy")
    parser.add_argument("--pairs", type=Path, default=None, help="PIE few-shot pairs (default: data.pie_pairs)")
    parser.add_argument("--templates", type=Path, default=Path("data/raw/pie/templates"))
    parser.add_argument("--out", type=Path, default=Path("data/self_play"),
                        help="folder of pairs.jsonl, candidates.jsonl and finetune_pairs.jsonl")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/self_play.json"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    start_model_stage("self_play")
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        sandbox.require_isolation()  # model-written code runs only in the sandbox: refuse at once
        params = load_params(args.params)
        config = params.self_play
        if config is None:
            raise ConfigError(f"{args.params}: no self_play section (see README, \"Self-play\")")
        if shutil.which("valgrind") is None:
            raise ConfigError("self_play measures speedups with the deterministic backend, which needs valgrind "
                              "(apt-get install valgrind); it is not on PATH")
        for key, llm in (("self_play.proposer", config.proposer), ("self_play.optimizer", config.optimizer)):
            check_backend(llm, key=key, recorded_available=False, track="self-play")
            preflight_backend(llm, key=key)  # a wrong base_url fails here, in seconds
        train = read_jsonl(args.train_data / "train.jsonl", SftRecord)
        val = read_jsonl(args.train_data / "val.jsonl", SftRecord)
        seeds = select_seeds(train, config.problems, config.seed)
        training_programs = [EvalProgram(r.problem_id, side, code) for r in [*train, *val]
                             for side, code in (("slow", r.slow), ("fast", r.fast))]
        eval_programs = eval_programs_from_tasks(read_jsonl(args.eval_tasks, OptTask))
        template = load_conditioned_template(args.templates) if config.prompt_style == "conditioned" else None
        pairs_file = args.pairs or Path(params.data.pie_pairs)
        llm_cache = resolve_cache_dir(config.proposer.cache_dir)

        def examples_for(tasks):
            bank = load_pairs(pairs_file)
            return retrieve_pie_examples(tasks, bank, config.shots, str(pairs_file),
                                         str(llm_cache.parent / "pie-embeddings"))

        with make_executor(params.executor) as executor:
            result = run_self_play(
                seeds, config,
                open_proposer=open_with(open_backend, "self_play.proposer"),
                open_optimizer=open_with(open_backend, "self_play.optimizer"),
                training_programs=training_programs, eval_programs=eval_programs,
                leak_threshold=params.finetune.leak_threshold,
                cache=ResponseCache(llm_cache.parent / "self-play"),
                executor=executor, examples_for=examples_for, conditioned_template=template,
            )
    except sandbox.SandboxUnavailable as exc:
        log.error("%s", exc)
        return 1
    except (ConfigError, BackendError, LocalServerError, DatasetError, RecordError, ExecutorError, FileNotFoundError,
            ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; answers, probes and measurements so far are cached, a rerun does only the rest")
        return 130
    funnel = " -> ".join(f"{step} {result.funnel[step]}" for step in STEPS)
    log.info("funnel: %s", funnel)
    log.info("sandbox probes: %d run, %d from the cache; measurements: %d run, %d from the cache",
             result.stats["probes_run"], result.stats["probes_cached"], result.stats["measurements_run"],
             result.stats["measurements_cached"])
    problem = failure_message(result, config)
    if problem is not None:
        log.error("%s; nothing written", problem)
        return 1
    outs = [args.out / name for name in ("pairs.jsonl", "candidates.jsonl", "finetune_pairs.jsonl")]
    with atomic_outputs(*outs, args.metrics) as (pairs_out, candidates_out, finetune_out, metrics_out):
        write_jsonl(pairs_out, result.pairs)
        write_jsonl(candidates_out, result.candidates)
        write_jsonl(finetune_out, result.pairs if params.finetune.data == "pie+self_play" else [])
        write_json(metrics_out, {
            **{f"self_play.{step}": result.funnel[step] for step in STEPS},
            "self_play.failures": result.failures,
            **({"self_play.mean_kept_speedup": round(sum(p.speedup for p in result.pairs) / len(result.pairs), 4)}
               if result.pairs else {}),
        })
    log.info("%d pairs kept -> %s (%.1f s)", len(result.pairs), args.out / "pairs.jsonl", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
