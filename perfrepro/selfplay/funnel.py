"""Self-play's funnel, one function per step (perfrepro.selfplay.run chains them). Each step takes
the `Funnel` (every proposal's `Candidate`, the config, the executor and the run cache) and moves
the live candidates on to its step or drops them there with the reason.

  propose          proposed: one proposer request per seed problem, the answer parsed;
  run_proposals    ran: the generator made every seeded input and the program answered each with
                   plain data, in the sandbox;
  drop_copies      novel (text): not a copy of a training program nor of an evaluation program;
  drop_duplicates  novel (semantics): not the same outputs as an earlier proposal on every input of
                   the pool of all proposals' inputs;
  optimize         optimized: the optimizer's answer holds a program that defines `solve`;
  measure          correct, faster: the rewrite gives the proposed program's outputs on all its
                   inputs, and the callgrind instruction counts' ratio reaches min_speedup;
  keep             kept: the rewrite is not trivial, and becomes a `SelfPlayPair`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping, Sequence

from perfrepro.config import LLMConfig, SelfPlayConfig, TimingConfig
from perfrepro.dispatch import Executor, TaskFailure
from perfrepro.finetuning.leakage import LeakageIndex
from perfrepro.generation.client import ChatBackend, ChatRequest
from perfrepro.generation.generate import to_completion
from perfrepro.optimization.optimize import build_requests
from perfrepro.optimization.programs import program_source
from perfrepro.records import CorpusPair, EvalProgram, OptTask, SftRecord
from perfrepro.selfplay.filters import first_of_each_class, trivial_reason
from perfrepro.selfplay.probe import ProbeError, output_signature, probe_limits, run_probe_item
from perfrepro.selfplay.prompts import ENTRY_POINT, Proposal, parse_proposal, proposer_messages
from perfrepro.selfplay.work import (RunCache, inputs_request, measure_candidate, plain_tests, probe_error,
                                     self_play_task)

log = logging.getLogger(__name__)

STEPS = ("proposed", "ran", "novel", "optimized", "correct", "faster", "kept")
TOP_SCORE = 10  # the rewrite is the faster of its problem's two known solutions: PIE's percentile 10/10


@dataclass(frozen=True)
class SelfPlayPair:
    """A kept self-play pair (data/self_play/pairs.jsonl), in the field names of PIE's released
    splits so the fine-tuning loader reads it like PIE's own pairs: `src_code` the proposed program,
    `tgt_code` its optimization. Runtimes are valgrind instruction counts of the program on all its
    inputs (`runtime_unit`), `speedup` their ratio, `target_reward_updated_pct_bin` the tag the
    performance-conditioned template shows (1..10, 10 = the fastest known solution of the problem)."""

    problem_id: str
    src_id: str
    tgt_id: str
    src_code: str
    tgt_code: str
    src_agg_runtime: float
    tgt_agg_runtime: float
    speedup: float
    target_reward_updated_pct_bin: int
    runtime_unit: str
    statement: str  # the proposer's one-line problem (may be empty)
    entry_point: str
    input_generator: str
    input_sizes: tuple[int, ...]
    inputs: int  # inputs both programs ran on, with the same outputs
    seed_problem_id: str  # the training problem that seeded the proposal
    proposer: str
    optimizer: str
    environment: str  # what the counts depend on (perfrepro.timing.fingerprint)


@dataclass
class Candidate:
    """One proposal's way through the funnel (mutable while the run goes on)."""

    id: str
    seed_problem_id: str
    reached: str = "proposed"
    dropped_at: str | None = None
    reason: str | None = None
    failure: bool = False  # lost to a failed request or work item, not to its answer
    proposal: Proposal | None = None
    task: OptTask | None = None
    tests: list[dict] = field(default_factory=list)  # level, cid, size, args (tuple), answer
    arg_texts: list[str] = field(default_factory=list)
    optimized: str | None = None
    counts: dict[str, float] = field(default_factory=dict)
    speedup: float | None = None

    def advance(self, step: str) -> None:
        self.reached = step

    def drop(self, step: str, reason: str, failure: bool = False) -> None:
        self.dropped_at, self.reason, self.failure = step, reason, failure

    @property
    def alive(self) -> bool:
        return self.dropped_at is None

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "seed_problem_id": self.seed_problem_id, "reached": self.reached,
                "dropped_at": self.dropped_at, "reason": self.reason, "failure": self.failure,
                "statement": self.proposal.statement if self.proposal else None,
                "instructions_proposed": self.counts.get("slow"), "instructions_optimized": self.counts.get("fast"),
                "speedup": self.speedup}


@dataclass
class Funnel:
    """What the steps share: every proposal's Candidate, the config, where sandboxed work runs
    and its cache, and each failure's text in order (lost to a failed request or work item)."""

    candidates: list[Candidate]
    config: SelfPlayConfig
    executor: Executor
    runs: RunCache
    failures: list[str] = field(default_factory=list)

    @property
    def live(self) -> list[Candidate]:
        return [c for c in self.candidates if c.alive]

    @property
    def n_inputs(self) -> int:
        return len(self.config.input_sizes) * self.config.inputs_per_size

    def fail(self, candidate: Candidate, step: str, reason: str) -> None:
        candidate.drop(step, reason, failure=True)
        self.failures.append(f"{candidate.id}: {reason}")


def propose(funnel: Funnel, seeds: Sequence[SftRecord],
            open_proposer: Callable[[LLMConfig], ContextManager[ChatBackend]]) -> tuple[str, tuple[int, int]]:
    """proposed -> (parsed): ask for a program and an input generator per seed problem and read
    the answer. Returns the proposer's label and its (failed, sent) requests."""
    requests = [ChatRequest(id=c.id, messages=proposer_messages(r.slow)) for c, r in zip(funnel.candidates, seeds)]
    with open_proposer(funnel.config.proposer) as backend:
        answers = backend.complete_many(requests, desc="self_play propose") if requests else []
        label = backend.model_label
    for candidate, answer in zip(funnel.candidates, answers):
        if not answer.ok:
            funnel.fail(candidate, "ran", f"proposer request failed: {answer.error}")
            continue
        parsed = parse_proposal(answer.text)
        if isinstance(parsed, str):
            candidate.drop("ran", parsed)
            continue
        candidate.proposal = parsed
        candidate.task = self_play_task(candidate.id, parsed, funnel.config.input_sizes)
    return label, (sum(not a.ok for a in answers), len(answers))


def run_proposals(funnel: Funnel) -> None:
    """-> ran: make the inputs and the answers in the sandbox."""
    config, live = funnel.config, funnel.live
    payloads = [inputs_request(c.task, config.seed, config.inputs_per_size, config.timeout_s) for c in live]
    limits = probe_limits(config.timeout_s, 3 * funnel.n_inputs, config.memory_limit_mb)  # generator twice, program once
    results = funnel.runs.map(funnel.executor, functools.partial(run_probe_item, limits), payloads,
                              [{"request": p, "limits": dataclasses.asdict(limits)} for p in payloads], "inputs",
                              "self_play inputs")
    for candidate, result in zip(live, results):
        if isinstance(result, TaskFailure):
            funnel.fail(candidate, "ran", f"work item failed on every try ({result.tries}): {result.reason}")
        elif "error" in result:
            candidate.drop("ran", probe_error(result))
        else:
            try:
                candidate.tests, candidate.arg_texts = plain_tests(result)
                candidate.advance("ran")
            except ProbeError as exc:
                candidate.drop("ran", str(exc))


def drop_copies(funnel: Funnel, training_programs: Sequence[EvalProgram], eval_programs: Sequence[EvalProgram],
                leak_threshold: float) -> None:
    """ran -> (novel): no copy of a training or an evaluation program (token 5-gram Jaccard >= `leak_threshold`)."""
    training_index = LeakageIndex(list(training_programs), leak_threshold)
    eval_index = LeakageIndex(list(eval_programs), leak_threshold)
    for candidate in funnel.live:
        program = candidate.proposal.program
        copied = training_index.match(candidate.id, program)
        leaked = eval_index.match(candidate.id, program)
        if copied is not None:
            candidate.drop("novel", f"copies training program {copied[0]} ({copied[1]}, similarity {copied[2]})")
        elif leaked is not None:
            candidate.drop("novel", f"overlaps evaluation task {leaked[0]} ({leaked[1]}, similarity {leaked[2]})")


def drop_duplicates(funnel: Funnel) -> None:
    """-> novel: no semantic duplicate (the same outputs as an earlier proposal on every pooled input)."""
    config, live = funnel.config, funnel.live
    pool = [text for c in live for text in c.arg_texts]
    payloads = [{"mode": "outputs", "program": c.proposal.program, "entry_point": ENTRY_POINT, "inputs": pool,
                 "call_timeout_s": config.timeout_s} for c in live]
    limits = probe_limits(config.timeout_s, len(pool), config.memory_limit_mb)
    results = funnel.runs.map(funnel.executor, functools.partial(run_probe_item, limits), payloads,
                              [{"request": p, "limits": dataclasses.asdict(limits)} for p in payloads], "outputs",
                              "self_play dedup")
    signatures = []
    for candidate, result in zip(live, results):
        if isinstance(result, TaskFailure) or "error" in result:  # not comparable: stays its own class
            why = result.reason if isinstance(result, TaskFailure) else probe_error(result)
            log.warning("%s: not compared with the other proposals (%s)", candidate.id, why)
            signatures.append(None)
        else:
            signatures.append(output_signature(result["tokens"]))
    for candidate, first in zip(live, first_of_each_class(signatures)):
        if live[first] is not candidate:
            candidate.drop("novel", f"semantic duplicate of {live[first].id} (the same outputs on all {len(pool)} "
                                    f"pooled inputs)")
        else:
            candidate.advance("novel")


def optimize(funnel: Funnel, open_optimizer: Callable[[LLMConfig], ContextManager[ChatBackend]],
             examples_for: Callable[[Sequence[OptTask]], Mapping[str, Sequence[CorpusPair]]] | None,
             conditioned_template: str | None) -> tuple[str, tuple[int, int]]:
    """novel -> optimized: the optimizer rewrites each novel program. Returns the optimizer's label
    ("" when nothing was novel) and its (failed, sent) requests."""
    config, live = funnel.config, funnel.live
    tasks = [c.task for c in live]
    examples = dict(examples_for(tasks)) if examples_for is not None and config.shots > 0 and tasks else {}
    if not live:
        return "", (0, 0)
    requests = build_requests(tasks, examples, config.prompt_style, conditioned_template)
    with open_optimizer(config.optimizer) as backend:
        answers = backend.complete_many(requests, desc="self_play optimize")
        label = backend.model_label
    for candidate, answer in zip(live, answers):
        completion = to_completion(candidate.task, answer, label, [p.id for p in examples.get(candidate.id, ())])
        if completion.status == "error":
            funnel.fail(candidate, "optimized", f"optimizer request failed: {completion.error}")
        elif completion.status != "ok":
            candidate.drop("optimized", f"no_code: the optimizer's answer holds no block that defines {ENTRY_POINT}")
        else:
            candidate.optimized = completion.code
            candidate.advance("optimized")
    return label, (sum(not a.ok for a in answers), len(answers))


def measure(funnel: Funnel) -> None:
    """optimized -> correct -> faster: the sandboxed correctness run, then callgrind counts."""
    config, live, n_inputs = funnel.config, funnel.live, funnel.n_inputs
    timing = TimingConfig(backend="deterministic", repeats=1, min_sample_ms=0.0, timeout_s=config.timeout_s * n_inputs,
                          memory_limit_mb=config.memory_limit_mb, rss_interval_ms=1.0)
    check_limits = probe_limits(config.timeout_s, n_inputs, config.memory_limit_mb)
    items = [(c.id, program_source(c.task, c.proposal.program, c.tests, "timed"),
              program_source(c.task, c.optimized, c.tests, "timed")) for c in live]
    results = funnel.runs.map(funnel.executor, functools.partial(measure_candidate, timing, check_limits), items,
                              [{"item": item, "timing": dataclasses.asdict(timing),
                                "limits": dataclasses.asdict(check_limits)} for item in items],
                              "measure", "self_play measure")
    for candidate, result in zip(live, results):
        if isinstance(result, TaskFailure):
            funnel.fail(candidate, "correct", f"work item failed on every try ({result.tries}): {result.reason}")
            continue
        verdict = result["correct"]
        if verdict["status"] != "ok":
            candidate.drop("correct", f"{verdict['status']}: {verdict['error']}")
            continue
        candidate.advance("correct")
        slow, fast = result["slow"], result["fast"]
        broken = next((f"{role} program: {r['status']} under callgrind ({r['step']}): {r['error']}"
                       for role, r in (("proposed", slow), ("optimized", fast)) if r["instructions"] is None), None)
        if broken is not None:
            candidate.drop("faster", f"not measured: {broken}")
            continue
        candidate.counts = {"slow": float(slow["instructions"]), "fast": float(fast["instructions"])}
        if candidate.counts["fast"] <= 0:
            candidate.drop("faster", "not measured: the optimized program's count is not positive")
            continue
        candidate.speedup = round(candidate.counts["slow"] / candidate.counts["fast"], 4)
        if candidate.speedup < config.min_speedup:
            candidate.drop("faster", f"speedup {candidate.speedup:.3f} < self_play.min_speedup {config.min_speedup}")
            continue
        candidate.advance("faster")


def keep(funnel: Funnel, proposer: str, optimizer: str) -> list[SelfPlayPair]:
    """faster -> kept: no trivial rewrite; each kept candidate as a pair (`proposer` and
    `optimizer` the models' labels)."""
    pairs = []
    for candidate in funnel.live:
        trivial = trivial_reason(candidate.proposal.program, candidate.optimized)
        if trivial is not None:
            candidate.drop("kept", f"trivial: {trivial}")
            continue
        candidate.advance("kept")
        pairs.append(SelfPlayPair(
            problem_id=candidate.id, src_id="proposed", tgt_id="optimized",
            src_code=candidate.proposal.program, tgt_code=candidate.optimized,
            src_agg_runtime=candidate.counts["slow"], tgt_agg_runtime=candidate.counts["fast"],
            speedup=candidate.speedup, target_reward_updated_pct_bin=TOP_SCORE, runtime_unit="instructions",
            statement=candidate.proposal.statement, entry_point=ENTRY_POINT,
            input_generator=candidate.proposal.generator, input_sizes=tuple(funnel.config.input_sizes),
            inputs=len(candidate.tests), seed_problem_id=candidate.seed_problem_id,
            proposer=proposer, optimizer=optimizer, environment=funnel.runs.fingerprint,
        ))
    return pairs
