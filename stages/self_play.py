"""Stage `self_play`: new programs from one model, their optimizations from another, kept only when
novel, correct and measurably faster (params: self_play, finetune.data, finetune.leak_threshold).

Seeds are `self_play.problems` problems of the training records (--train-data, never the evaluation
tasks of --eval-tasks, which no proposal may copy); `self_play.proposer` writes a new problem per
seed, `self_play.optimizer` rewrites it (PIE's few-shot or conditioned prompt), and a pair is kept
when the rewrite gives the same outputs, is >= `self_play.min_speedup` faster in callgrind
instruction counts and is not trivial (the funnel: perfrepro/selfplay/run.py).

Writes pairs.jsonl (kept pairs, PIE's released field names, counts, speedup, tag), candidates.jsonl
(every proposal: how far it got and why it stopped), finetune_pairs.jsonl (the pairs when
`finetune.data` is pie+self_play, else empty: under pie no self-play change retrains the model) and
the funnel's metrics. LLM answers, sandbox probes and measurements are cached beside the LLM cache,
so a rerun sends no request and runs nothing again. Exits 1, writing nothing, when more than
`self_play.max_failure_fraction` of the proposals are lost to failed requests or work items.
"""

from __future__ import annotations

import logging
import sys
import time

from perfrepro.config import load_params
from perfrepro.execution import sandbox
from perfrepro.dispatch import make_executor
from perfrepro.generation.backends import open_backend
from perfrepro.generation.cache import ResponseCache, resolve_cache_dir
from perfrepro.io import atomic_outputs, write_json
from perfrepro.optimization.optimize import pie_examples
from perfrepro.optimization.prompts import load_conditioned_template
from perfrepro.records import write_jsonl
from perfrepro.selfplay.preparation import check_ready, funnel_metrics, read_inputs
from perfrepro.selfplay.run import STEPS, failure_message, open_with, run_self_play
from perfrepro.stage import stage

log = logging.getLogger("self_play")


@stage("self_play", "train-data", "eval-tasks", "pairs", "templates", "out", "metrics", model=True,
       also=(ValueError, RuntimeError),
       interrupted="interrupted; answers, probes and measurements so far are cached, a rerun does only the rest")
def main(args) -> int:
    started = time.perf_counter()
    sandbox.require_isolation()  # model-written code runs only in the sandbox: refuse at once
    params = load_params(args.params)
    config = check_ready(params.self_play, args.params)
    inputs = read_inputs(args.train_data, args.eval_tasks, config)
    template = load_conditioned_template(args.templates) if config.prompt_style == "conditioned" else None
    llm_cache = resolve_cache_dir(config.proposer.cache_dir)
    with make_executor(params.executor) as executor:
        result = run_self_play(
            inputs.seeds, config,
            open_proposer=open_with(open_backend, "self_play.proposer"),
            open_optimizer=open_with(open_backend, "self_play.optimizer"),
            training_programs=inputs.training_programs, eval_programs=inputs.eval_programs,
            leak_threshold=params.finetune.leak_threshold, cache=ResponseCache(llm_cache.parent / "self-play"),
            executor=executor, examples_for=lambda tasks: pie_examples(tasks, args.pairs, config.shots, llm_cache),
            conditioned_template=template,
        )
    log.info("funnel: %s", " -> ".join(f"{step} {result.funnel[step]}" for step in STEPS))
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
        write_json(metrics_out, funnel_metrics(result))
    log.info("%d pairs kept -> %s (%.1f s)", len(result.pairs), args.out / "pairs.jsonl", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
