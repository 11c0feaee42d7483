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
import dataclasses
import functools
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping, Sequence

from perfrepro.config import LLMConfig, SelfPlayConfig, TimingConfig
from perfrepro.execution.harness import run_program
from perfrepro.execution.sandbox import Limits
from perfrepro.dispatch import Executor, LocalExecutor, TaskFailure
from perfrepro.finetuning.leakage import EvalProgram, LeakageIndex
from perfrepro.records import SftRecord
from perfrepro.generation.cache import ResponseCache, cache_key
from perfrepro.generation.client import ChatBackend, ChatRequest
from perfrepro.generation.generate import to_completion
from perfrepro.optimization.inputs import test_seed
from perfrepro.optimization.optimize import build_requests
from perfrepro.optimization.programs import program_source
from perfrepro.records import CorpusPair, OptTask, Program
from perfrepro.selfplay.filters import first_of_each_class, trivial_reason
from perfrepro.selfplay.probe import (
    ProbeError,
    output_signature,
    plain_value,
    probe_limits,
    run_probe_item,
)
from perfrepro.selfplay.prompts import ENTRY_POINT, Proposal, parse_proposal, proposer_messages
from perfrepro.timing.fingerprint import check_uniform, environment_fingerprint
from perfrepro.timing.remote import worker_backend

log = logging.getLogger(__name__)

STEPS = ("proposed", "ran", "novel", "optimized", "correct", "faster", "kept")
CACHE_FORMAT = 1
TOP_SCORE = 10  # the rewrite is the faster of its problem's two known solutions: PIE's percentile 10/10
SOURCE = "self_play"

# The tasks' checker: the rewrite's output must equal the proposed program's; floats to a relative
# 1e-9 (a rewrite may add in another order), containers element by element, types exactly.
CHECKER = '''\
def __check(args, answer, output):
    def same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            numbers = (int, float)
            if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, numbers) and isinstance(b, numbers)):
                return False
            return a == b or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
        if type(a) is not type(b):
            return False
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b
    return same(answer, output)
'''


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


def self_play_task(candidate_id: str, proposal: Proposal, sizes: Sequence[int]) -> OptTask:
    """The proposal in the ENAMEL task shape: the proposed program is both the slow program and
    the reference (its outputs are the answers)."""
    return OptTask(id=candidate_id, statement="", slow_program=proposal.program, reference_program=proposal.program,
                   input_generator=proposal.generator, levels=tuple(sizes), checker=CHECKER, source=SOURCE,
                   entry_point=ENTRY_POINT)


def inputs_request(task: OptTask, seed: int, per_size: int, call_timeout_s: float) -> dict:
    tests = [{"level": level, "cid": cid, "size": size, "seed": test_seed(seed, task.id, level, cid)}
             for level, size in enumerate(task.levels) for cid in range(per_size)]
    return {"mode": "inputs", "generator": task.input_generator, "program": task.slow_program,
            "entry_point": task.entry_point, "tests": tests, "call_timeout_s": call_timeout_s}


def measure_candidate(timing: TimingConfig, check_limits: Limits, item: tuple[str, str, str]) -> dict:
    """One optimized proposal on whichever worker runs it: the rewrite's correctness run (sandboxed
    harness, untimed), then both programs' instruction counts under callgrind (massif's heap
    profile is not needed by the filter, so it is not run)."""
    task_id, slow_source, fast_source = item
    verdict, _ = run_program(Program(task_id, "generated", fast_source), limits=check_limits)
    out: dict[str, Any] = {"correct": {"status": verdict.status, "error": verdict.error}}
    if not verdict.passed:
        return out
    backend = worker_backend(timing)
    for role, source in (("slow", slow_source), ("fast", fast_source)):
        record, step, (full, base) = backend.python_instructions(Program(task_id, role, source))
        out[role] = {"status": record.status, "error": record.error, "step": step,
                     "instructions": full - base if record.passed else None}
    return out


class _RunCache:
    """Probe and measurement results by a key of everything that decides them (JSON entries in a
    ResponseCache directory); counts what it answered and what had to run."""

    def __init__(self, cache: ResponseCache | None, fingerprint: str):
        self.cache, self.fingerprint = cache, fingerprint
        self.stats = {"probes_run": 0, "probes_cached": 0, "measurements_run": 0, "measurements_cached": 0}

    def key(self, kind: str, payload: Any) -> str:
        return cache_key({"format": CACHE_FORMAT, "kind": kind, "environment": self.fingerprint, "payload": payload})

    def map(self, executor: Executor, fn: Callable, items: Sequence, payloads: Sequence, kind: str, desc: str) -> list:
        """fn over the items the cache does not answer (through `executor`); results in item order.
        A TaskFailure is returned, never cached."""
        keys = [self.key(kind, payload) for payload in payloads]
        results: list[Any] = [None] * len(items)
        missing = []
        for index, key in enumerate(keys):
            entry = self.cache.get(key) if self.cache is not None else None
            if entry is not None:
                results[index] = entry["result"]
            else:
                missing.append(index)
        stat = "probes" if kind != "measure" else "measurements"
        self.stats[f"{stat}_cached"] += len(items) - len(missing)
        self.stats[f"{stat}_run"] += len(missing)
        if missing:
            done = executor.map(fn, [items[i] for i in missing], desc=desc, unit="proposal")
            for index, result in zip(missing, done):
                results[index] = result
                if self.cache is not None and not isinstance(result, TaskFailure):
                    self.cache.put(keys[index], {"kind": kind, "result": result})
        return results


def _environment(executor: Executor) -> str:
    """The one environment every worker shares (refused when they differ: counts must compare)."""
    fingerprints = executor.run_everywhere(lambda: environment_fingerprint("deterministic"))
    check_uniform("deterministic", fingerprints.items())
    return next(iter(fingerprints.values()))


def _plain_tests(result: dict) -> tuple[list[dict], list[str]]:
    tests, texts = [], []
    for test in result["tests"]:
        args = plain_value(test["args"], f"the generator's input (size {test['size']}, input {test['cid']})")
        if not isinstance(args, tuple):
            raise ProbeError("the generator's input is not an argument tuple")
        answer = plain_value(test["answer"], f"the program's output (size {test['size']}, input {test['cid']})")
        tests.append({"level": test["level"], "cid": test["cid"], "size": test["size"], "args": args, "answer": answer})
        texts.append(test["args"])
    return tests, texts


def _probe_error(result: dict) -> str:
    error = result["error"]
    where = f" ({error['where']})" if error.get("where") else ""
    return f"{error['step']} {error['kind']}{where}: {error['message']}"


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
    """Run the funnel for `seeds` (see the module docstring). `open_proposer(config.proposer)` and
    `open_optimizer(config.optimizer)` are context managers yielding a ChatBackend
    (perfrepro.generation.backends.open_backend); `examples_for(tasks)` gives each task's few-shot
    PIE pairs (none when omitted); `training_programs` and `eval_programs` are what a proposal
    must not copy (token 5-gram Jaccard >= `leak_threshold`)."""
    executor = executor or LocalExecutor()
    runs = _RunCache(cache, _environment(executor))
    candidates = [Candidate(proposal_id(r.problem_id), r.problem_id) for r in seeds]
    n_inputs = len(config.input_sizes) * config.inputs_per_size
    first_failure: list[str] = []

    def fail(candidate: Candidate, step: str, reason: str) -> None:
        candidate.drop(step, reason, failure=True)
        first_failure.append(f"{candidate.id}: {reason}")

    # proposed -> ran: ask, read the answer, make the inputs and the answers in the sandbox
    requests = [ChatRequest(id=c.id, messages=proposer_messages(r.slow)) for c, r in zip(candidates, seeds)]
    with open_proposer(config.proposer) as backend:
        answers = backend.complete_many(requests, desc="self_play propose") if requests else []
        proposer_label = backend.model_label
    request_counts = {"proposer": (sum(not a.ok for a in answers), len(answers)), "optimizer": (0, 0)}
    for candidate, answer in zip(candidates, answers):
        if not answer.ok:
            fail(candidate, "ran", f"proposer request failed: {answer.error}")
            continue
        parsed = parse_proposal(answer.text)
        if isinstance(parsed, str):
            candidate.drop("ran", parsed)
            continue
        candidate.proposal = parsed
        candidate.task = self_play_task(candidate.id, parsed, config.input_sizes)
    live = [c for c in candidates if c.alive]
    payloads = [inputs_request(c.task, config.seed, config.inputs_per_size, config.timeout_s) for c in live]
    limits = probe_limits(config.timeout_s, 3 * n_inputs, config.memory_limit_mb)  # generator twice, program once
    results = runs.map(executor, functools.partial(run_probe_item, limits), payloads,
                       [{"request": p, "limits": dataclasses.asdict(limits)} for p in payloads], "inputs",
                       "self_play inputs")
    for candidate, result in zip(live, results):
        if isinstance(result, TaskFailure):
            fail(candidate, "ran", f"work item failed on every try ({result.tries}): {result.reason}")
        elif "error" in result:
            candidate.drop("ran", _probe_error(result))
        else:
            try:
                candidate.tests, candidate.arg_texts = _plain_tests(result)
                candidate.advance("ran")
            except ProbeError as exc:
                candidate.drop("ran", str(exc))

    # ran -> novel: no copy of a training or evaluation program, no semantic duplicate
    training_index = LeakageIndex(list(training_programs), leak_threshold)
    eval_index = LeakageIndex(list(eval_programs), leak_threshold)
    live = [c for c in candidates if c.alive]
    for candidate in live:
        program = candidate.proposal.program
        copied = training_index.match(candidate.id, program)
        leaked = eval_index.match(candidate.id, program)
        if copied is not None:
            candidate.drop("novel", f"copies training program {copied[0]} ({copied[1]}, similarity {copied[2]})")
        elif leaked is not None:
            candidate.drop("novel", f"overlaps evaluation task {leaked[0]} ({leaked[1]}, similarity {leaked[2]})")
    live = [c for c in candidates if c.alive]
    pool = [text for c in live for text in c.arg_texts]
    payloads = [{"mode": "outputs", "program": c.proposal.program, "entry_point": ENTRY_POINT, "inputs": pool,
                 "call_timeout_s": config.timeout_s} for c in live]
    limits = probe_limits(config.timeout_s, len(pool), config.memory_limit_mb)
    results = runs.map(executor, functools.partial(run_probe_item, limits), payloads,
                       [{"request": p, "limits": dataclasses.asdict(limits)} for p in payloads], "outputs",
                       "self_play dedup")
    signatures = []
    for candidate, result in zip(live, results):
        if isinstance(result, TaskFailure) or "error" in result:  # not comparable: stays its own class
            why = result.reason if isinstance(result, TaskFailure) else _probe_error(result)
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

    # novel -> optimized: the optimizer rewrites each novel program
    live = [c for c in candidates if c.alive]
    tasks = [c.task for c in live]
    examples = dict(examples_for(tasks)) if examples_for is not None and config.shots > 0 and tasks else {}
    optimizer_label = ""
    if live:
        requests = build_requests(tasks, examples, config.prompt_style, conditioned_template)
        with open_optimizer(config.optimizer) as backend:
            answers = backend.complete_many(requests, desc="self_play optimize")
            optimizer_label = backend.model_label
        request_counts["optimizer"] = (sum(not a.ok for a in answers), len(answers))
        for candidate, answer in zip(live, answers):
            completion = to_completion(candidate.task, answer, optimizer_label,
                                       [p.id for p in examples.get(candidate.id, ())])
            if completion.status == "error":
                fail(candidate, "optimized", f"optimizer request failed: {completion.error}")
            elif completion.status != "ok":
                candidate.drop("optimized", f"no_code: the optimizer's answer holds no block that defines {ENTRY_POINT}")
            else:
                candidate.optimized = completion.code
                candidate.advance("optimized")

    # optimized -> correct -> faster: sandboxed correctness run, then callgrind counts
    live = [c for c in candidates if c.alive]
    timing = TimingConfig(backend="deterministic", repeats=1, min_sample_ms=0.0, timeout_s=config.timeout_s * n_inputs,
                          memory_limit_mb=config.memory_limit_mb, rss_interval_ms=1.0)
    check_limits = probe_limits(config.timeout_s, n_inputs, config.memory_limit_mb)
    items = [(c.id, program_source(c.task, c.proposal.program, c.tests, "timed"),
              program_source(c.task, c.optimized, c.tests, "timed")) for c in live]
    results = runs.map(executor, functools.partial(measure_candidate, timing, check_limits), items,
                       [{"item": item, "timing": dataclasses.asdict(timing), "limits": dataclasses.asdict(check_limits)}
                        for item in items], "measure", "self_play measure")
    for candidate, result in zip(live, results):
        if isinstance(result, TaskFailure):
            fail(candidate, "correct", f"work item failed on every try ({result.tries}): {result.reason}")
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

    # faster -> kept: no trivial rewrite
    pairs = []
    for candidate in (c for c in candidates if c.alive):
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
            input_generator=candidate.proposal.generator, input_sizes=tuple(config.input_sizes),
            inputs=len(candidate.tests), seed_problem_id=candidate.seed_problem_id,
            proposer=proposer_label, optimizer=optimizer_label, environment=runs.fingerprint,
        ))
    funnel = {step: sum(1 for c in candidates if STEPS.index(c.reached) >= i) for i, step in enumerate(STEPS)}
    return SelfPlayResult(pairs=pairs, candidates=[c.row() for c in candidates], funnel=funnel,
                          failures=sum(c.failure for c in candidates),
                          first_failure=first_failure[0] if first_failure else None, stats=runs.stats,
                          requests=request_counts)


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
