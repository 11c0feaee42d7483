"""Self-play as one library call: seed records -> proposals -> filters -> kept slow -> fast pairs.

The funnel, each step a subset of the one before:
  proposed   one proposer request per seed problem;
  ran        the answer holds a program (`solve`) and a generator (`generate_input`), the generator
             made every seeded input (the same one twice) and the program answered each with plain
             data, in the sandbox;
  novel      not a copy of a training program nor of an evaluation program (text), and not a
             semantic duplicate of an earlier proposal (the same outputs on every input of the pool
             of all proposals' inputs);
  optimized  the optimizer's answer holds a program that defines `solve`;
  correct    the rewrite gives the proposed program's outputs on all its inputs (sandboxed harness);
  faster     proposed / rewrite instruction counts (deterministic backend, callgrind) >= min_speedup;
  kept       the rewrite is not trivial (perfrepro.selfplay.filters.trivial_reason).
A malformed answer (no code, a crash, a hanging generator) stops its proposal at its step, with the
reason, and never the run. Requests that fail for good and work items that fail on every try are
failures: `failure_message` says when there are more than the configured share.

Sandboxed work goes through the executor, one proposal per unit. Every probe and measurement is
cached (`cache`, keyed by what decides it and the environment fingerprint), and every LLM request
by the LLM cache: a rerun sends no request and runs nothing again.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping, Sequence

from perfrepro.config import LLMConfig, SelfPlayConfig
from perfrepro.dispatch import Executor, LocalExecutor
from perfrepro.generation.cache import ResponseCache
from perfrepro.generation.client import ChatBackend
from perfrepro.records import CorpusPair, EvalProgram, OptTask, SftRecord
from perfrepro.selfplay.funnel import (STEPS, Candidate, Funnel, SelfPlayPair, drop_copies, drop_duplicates, keep,
                                       measure, optimize, propose, run_proposals)
from perfrepro.selfplay.work import SOURCE, RunCache, environment


@dataclass
class SelfPlayResult:
    pairs: list[SelfPlayPair]
    candidates: list[dict[str, Any]]  # one row per proposal: how far it got and why it stopped
    funnel: dict[str, int]
    failures: int
    first_failure: str | None
    stats: dict[str, int]  # probes and measurements run / answered from the cache
    requests: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (failed, sent) LLM requests


def select_seeds(records: Sequence[SftRecord], problems: int, seed: int) -> list[SftRecord]:
    """One record per problem (its first by id) for the first `problems` problems of a seeded
    shuffle of the sorted problem ids (a larger number keeps the smaller one's choice, and its
    cached answers)."""
    by_problem: dict[str, SftRecord] = {}
    for record in sorted(records, key=lambda r: r.id):
        by_problem.setdefault(record.problem_id, record)
    ids = sorted(by_problem)
    random.Random(seed).shuffle(ids)
    return [by_problem[i] for i in ids[:problems]]


def proposal_id(seed_problem_id: str) -> str:
    return f"{SOURCE}/{seed_problem_id}"


def run_self_play(
    seeds: Sequence[SftRecord],
    config: SelfPlayConfig,
    *,
    open_proposer: Callable[[LLMConfig], ContextManager[ChatBackend]],
    open_optimizer: Callable[[LLMConfig], ContextManager[ChatBackend]],
    training_programs: Sequence[EvalProgram] = (),
    eval_programs: Sequence[EvalProgram] = (),
    leak_threshold: float = 0.5,
    cache: ResponseCache | None = None,
    executor: Executor | None = None,
    examples_for: Callable[[Sequence[OptTask]], Mapping[str, Sequence[CorpusPair]]] | None = None,
    conditioned_template: str | None = None,
) -> SelfPlayResult:
    """Run the funnel for `seeds` (see the module docstring), one step after the other
    (perfrepro.selfplay.funnel). `open_proposer(config.proposer)` and `open_optimizer(config.optimizer)`
    are context managers yielding a ChatBackend (perfrepro.generation.backends.open_backend);
    `examples_for(tasks)` gives each task's few-shot PIE pairs (none when omitted);
    `training_programs` and `eval_programs` are what a proposal must not copy (token 5-gram
    Jaccard >= `leak_threshold`)."""
    executor = executor or LocalExecutor()
    runs = RunCache(cache, environment(executor))
    funnel = Funnel([Candidate(proposal_id(r.problem_id), r.problem_id) for r in seeds], config, executor, runs)
    proposer, proposer_requests = propose(funnel, seeds, open_proposer)
    run_proposals(funnel)
    drop_copies(funnel, training_programs, eval_programs, leak_threshold)
    drop_duplicates(funnel)
    optimizer, optimizer_requests = optimize(funnel, open_optimizer, examples_for, conditioned_template)
    measure(funnel)
    pairs = keep(funnel, proposer, optimizer)
    candidates = funnel.candidates
    counts = {step: sum(1 for c in candidates if STEPS.index(c.reached) >= i) for i, step in enumerate(STEPS)}
    return SelfPlayResult(pairs=pairs, candidates=[c.row() for c in candidates], funnel=counts,
                          failures=sum(c.failure for c in candidates),
                          first_failure=funnel.failures[0] if funnel.failures else None, stats=runs.stats,
                          requests={"proposer": proposer_requests, "optimizer": optimizer_requests})


def failure_message(result: SelfPlayResult, config: SelfPlayConfig) -> str | None:
    """Why the run failed, or None: more of a model's requests failed for good than its
    `max_failure_fraction` allows, or more proposals were lost to failures (failed requests and
    work items that failed on every try) than `self_play.max_failure_fraction` allows."""
    for role in ("proposer", "optimizer"):
        failed, sent = result.requests.get(role, (0, 0))
        limit = getattr(config, role).max_failure_fraction
        if sent and failed / sent > limit:
            return (f"{failed} of {sent} self_play.{role} requests failed for good "
                    f"(self_play.{role}.max_failure_fraction {limit}); first: {result.first_failure}")
    proposed = result.funnel["proposed"]
    if proposed and result.failures / proposed > config.max_failure_fraction:
        return (f"{result.failures} of {proposed} proposals were lost to failed requests or work items "
                f"(self_play.max_failure_fraction {config.max_failure_fraction}); first: {result.first_failure}. "
                "Malformed answers are not failures: they stop at their funnel step")
    return None


def open_with(opener: Callable[..., ContextManager[ChatBackend]], key: str) -> Callable[[LLMConfig], ContextManager[ChatBackend]]:
    """`opener(llm, key=key)` as a one-argument factory (open_backend with its params key in errors)."""
    return lambda llm: opener(llm, key=key)


def fixed_backend(backend: ChatBackend) -> Callable[[LLMConfig], ContextManager[ChatBackend]]:
    """A factory that always yields `backend` (hand-written answers, the recorded backend)."""
    return lambda llm: contextlib.nullcontext(backend)
