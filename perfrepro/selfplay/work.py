"""Self-play's sandboxed work: the proposal as an ENAMEL-shaped task, the probe and measurement work
items that run on the executor (one proposal per item), and the cache that answers them on a rerun
(keyed by what decides them and the environment fingerprint)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from perfrepro.config import TimingConfig
from perfrepro.dispatch import Executor, TaskFailure
from perfrepro.execution.harness import run_program
from perfrepro.execution.sandbox import Limits
from perfrepro.generation.cache import ResponseCache, cache_key
from perfrepro.optimization.inputs import test_seed
from perfrepro.records import OptTask, Program
from perfrepro.selfplay.probe import ProbeError, plain_value
from perfrepro.selfplay.prompts import ENTRY_POINT, Proposal
from perfrepro.timing.fingerprint import check_uniform, environment_fingerprint
from perfrepro.timing.remote import worker_backend

CACHE_FORMAT = 1
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


class RunCache:
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


def environment(executor: Executor) -> str:
    """The one environment every worker shares (refused when they differ: counts must compare)."""
    fingerprints = executor.run_everywhere(lambda: environment_fingerprint("deterministic"))
    check_uniform("deterministic", fingerprints.items())
    return next(iter(fingerprints.values()))


def plain_tests(result: dict) -> tuple[list[dict], list[str]]:
    tests, texts = [], []
    for test in result["tests"]:
        args = plain_value(test["args"], f"the generator's input (size {test['size']}, input {test['cid']})")
        if not isinstance(args, tuple):
            raise ProbeError("the generator's input is not an argument tuple")
        answer = plain_value(test["answer"], f"the program's output (size {test['size']}, input {test['cid']})")
        tests.append({"level": test["level"], "cid": test["cid"], "size": test["size"], "args": args, "answer": answer})
        texts.append(test["args"])
    return tests, texts


def probe_error(result: dict) -> str:
    error = result["error"]
    where = f" ({error['where']})" if error.get("where") else ""
    return f"{error['step']} {error['kind']}{where}: {error['message']}"
