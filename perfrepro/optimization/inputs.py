"""Seeded test inputs for ENAMEL tasks, with expected answers from the ENAMEL reference.

For each task, `generate_input(size, lid, cid)` runs for every level ``lid`` (size
``task.levels[lid]``) and ``cid`` in ``range(tests_per_level)``, with the global ``random`` seeded
from (seed, task id, lid, cid), so a test never changes when another is added. The reference
program answers every input, and ENAMEL's checker must accept both programs' outputs:
- level 0 (correctness only, as in ENAMEL) and HumanEval+ inputs where it rejects either output,
  or either program raises, are dropped and counted: edge cases a HumanEval canonical gets wrong
  (HumanEval/44 with x = 0) or that lie outside the contract (HumanEval/32's zero polynomial,
  where even the reference's answer fails the checker);
- on the timed levels the reference must be accepted and the slow program too where it finishes
  (within ``slow_timeout_s``); otherwise the task is skipped (HumanEval/122's canonical is wrong
  on negative numbers, which makes a speedup meaningless).

The work runs in a child process (`generate_inputs_isolated`): generators and programs are
dataset code, but a hang or a crash must not take the stage down. The result is a pickle
(protocol 4) holding only builtin values; see `TaskInputs`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from perfrepro.records import OptTask, record_from_dict
from perfrepro.optimization.helpers import generator_scope

PICKLE_PROTOCOL = 4


class InputGenerationError(RuntimeError):
    """A task whose inputs cannot be made (generator, reference or slow program failed)."""


@dataclass
class TaskInputs:
    """A task's stored tests. ``tests``: dicts with level, cid, size, args (tuple), answer."""

    task_id: str
    seed: int
    levels: tuple[int, ...]
    tests: list[dict] = field(default_factory=list)
    plus: list[dict] = field(default_factory=list)  # dicts with index, args, answer
    plus_dropped: int = 0
    level0_dropped: int = 0  # level-0 tests where the slow program disagrees with the reference
    slow_timeouts: int = 0  # timed tests the slow program did not finish (timeout, recursion, memory)

    def by_level(self, level: int) -> list[dict]:
        return [t for t in self.tests if t["level"] == level]

    def dump(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        tmp.write_bytes(pickle.dumps(asdict(self), protocol=PICKLE_PROTOCOL))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TaskInputs":
        data = pickle.loads(Path(path).read_bytes())
        data["levels"] = tuple(data["levels"])
        return cls(**data)


def test_seed(seed: int, task_id: str, level: int, cid: int) -> int:
    """The seed of one generated test: stable across Python versions and hash seeds."""
    digest = hashlib.sha256(f"{seed}:{task_id}:{level}:{cid}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@contextlib.contextmanager
def _time_limit(seconds: float, what: str):
    """Raise InputGenerationError when the block runs longer than `seconds` (main thread only)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _expired(signum, frame):
        raise InputGenerationError(f"{what}: no result within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_function(program: str, entry_point: str, checker: str, where: str) -> tuple[Callable, Callable]:
    """Exec `program` in a fresh namespace; return (entry point, checker bound to that namespace).

    The checker runs in the program's namespace because ENAMEL's HumanEval/32 checker calls the
    task's own ``poly``.
    """
    namespace: dict[str, Any] = {"__name__": "__enamel_program__"}
    try:
        exec(compile(program, f"<{where}>", "exec"), namespace)
    except Exception as exc:  # dataset code: report, don't crash
        raise InputGenerationError(f"{where}: does not load ({type(exc).__name__}: {exc})") from None
    if entry_point not in namespace:
        raise InputGenerationError(f"{where}: defines no {entry_point!r}")
    exec(compile(checker, f"<{where} checker>", "exec"), namespace)
    return namespace[entry_point], namespace["__check"]


def _accepts(check: Callable, args: tuple, answer: Any, output: Any) -> bool:
    """ENAMEL's checker on one output; a checker that raises rejects it."""
    try:
        return bool(check(args, answer, output))
    except Exception:
        return False


def reference_answer(reference: Callable, args: tuple, call_timeout_s: float, where: str) -> Any:
    """The reference's output on a copy of `args`; InputGenerationError when it fails or hangs."""
    try:
        with _time_limit(call_timeout_s, f"{where}: reference"):
            return reference(*copy.deepcopy(args))
    except InputGenerationError:
        raise
    except Exception as exc:
        raise InputGenerationError(f"{where}: reference failed ({type(exc).__name__}: {exc})") from None


def _as_args(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def generate_task_inputs(
    task: OptTask,
    seed: int,
    tests_per_level: int,
    plus_inputs: Sequence[Sequence[Any]] = (),
    call_timeout_s: float = 60.0,
    plus_timeout_s: float = 2.0,
    slow_timeout_s: float = 10.0,
) -> TaskInputs:
    """Generate and answer a task's tests in this process (see module docstring)."""
    scope = generator_scope()
    with contextlib.suppress(Exception):  # some generators call the prompt's helpers (HumanEval/50)
        exec(compile(task.statement, f"<{task.id} statement>", "exec"), scope)
    try:
        exec(compile(task.input_generator, f"<{task.id} generator>", "exec"), scope)
        generate = scope["generate_input"]
    except Exception as exc:
        raise InputGenerationError(f"{task.id}: generator does not load ({type(exc).__name__}: {exc})") from None
    reference, check = load_function(task.reference_program, task.entry_point, task.checker, f"{task.id} reference")
    slow, slow_check = load_function(task.slow_program, task.entry_point, task.checker, f"{task.id} slow program")
    result = TaskInputs(task_id=task.id, seed=seed, levels=tuple(task.levels))
    slow_too_slow = False  # after one timeout the larger tests are not tried
    for level, size in enumerate(task.levels):
        for cid in range(tests_per_level):
            where = f"{task.id} level {level} test {cid} (size {size})"
            random.seed(test_seed(seed, task.id, level, cid))
            try:
                with _time_limit(call_timeout_s, f"{where}: generator"):
                    args = _as_args(generate(size, level, cid))
            except InputGenerationError:
                raise
            except Exception as exc:
                raise InputGenerationError(f"{where}: generator failed ({type(exc).__name__}: {exc})") from None
            answer = reference_answer(reference, args, call_timeout_s, where)
            if not _accepts(check, args, answer, copy.deepcopy(answer)):  # outside the contract (HumanEval/32 with xs = [0, 0])
                if level > 0:
                    raise InputGenerationError(f"{where}: ENAMEL's checker rejects the reference's own answer")
                result.level0_dropped += 1
                continue
            if level > 0 and not slow_too_slow:
                # The slow side must be right where it finishes: a wrong canonical (HumanEval/122
                # on negative numbers) makes the task meaningless for a speedup. Too slow is fine.
                try:
                    with _time_limit(slow_timeout_s, f"{where}: slow program"):
                        output = slow(*copy.deepcopy(args))
                except (InputGenerationError, RecursionError, MemoryError):  # cannot finish: not wrong
                    slow_too_slow = True
                    result.slow_timeouts += 1
                except Exception as exc:
                    raise InputGenerationError(f"{where}: slow program failed ({type(exc).__name__}: {exc})") from None
                else:
                    if not slow_check(args, answer, output):
                        raise InputGenerationError(f"{where}: slow program disagrees with the reference")
            if level == 0:
                try:
                    with _time_limit(call_timeout_s, f"{where}: slow program"):
                        output = slow(*copy.deepcopy(args))
                    agree = _accepts(slow_check, args, answer, output)
                except Exception:  # raises or hangs on an edge case (HumanEval/64 with "")
                    agree = False
                if not agree:  # an edge case the canonical gets wrong (HumanEval/44 x=0): drop it
                    result.level0_dropped += 1
                    continue
            result.tests.append({"level": level, "cid": cid, "size": size, "args": args, "answer": answer})
    for index, raw in enumerate(plus_inputs):
        args = tuple(raw)
        try:
            with _time_limit(plus_timeout_s, f"{task.id} plus input {index}"):
                answer = reference(*copy.deepcopy(args))
                output = slow(*copy.deepcopy(args))
            keep = _accepts(check, args, answer, copy.deepcopy(answer)) and _accepts(check, args, answer, output)
        except Exception:  # a contract violation, a disagreement or too slow: not a usable test
            keep = False
        if keep:
            result.plus.append({"index": index, "args": args, "answer": answer})
        else:
            result.plus_dropped += 1
    return result


def select_plus_inputs(plus_input: Sequence[Any], cap: int | None, seed: int, task_id: str) -> list[tuple[int, Any]]:
    """A seeded subset of at most `cap` HumanEval+ inputs (None: all), in their original order."""
    indices = list(range(len(plus_input)))
    if cap is not None and len(indices) > cap:
        indices = sorted(random.Random(f"{seed}:{task_id}:plus").sample(indices, cap))
    return [(i, plus_input[i]) for i in indices]


def generate_inputs_isolated(
    task: OptTask,
    out_path: str | os.PathLike,
    seed: int,
    tests_per_level: int,
    plus_inputs: Sequence[Sequence[Any]] = (),
    timeout_s: float = 900.0,
    call_timeout_s: float = 60.0,
    enamel: Mapping[str, Any] | None = None,
) -> dict:
    """Run `generate_task_inputs` in a child Python (fixed hash seed) and write its pickle; with
    `enamel` ({"seed", "tests_per_level"}), ENAMEL's own tests instead
    (perfrepro.optimization.enamel_inputs; `tests_per_level` and `plus_inputs` are then unused).

    Returns a summary dict (counts, bytes, sha256). Raises InputGenerationError with the child's
    reason when the task cannot be generated.
    """
    with tempfile.TemporaryDirectory(prefix="perfrepro-inputs-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({
            "task": asdict(task),
            "seed": seed,
            "tests_per_level": tests_per_level,
            "plus_inputs": [list(p) for p in plus_inputs],
            "call_timeout_s": call_timeout_s,
            "enamel": dict(enamel) if enamel else None,
            "out": str(Path(out_path).resolve()),
        }))
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
        env["PYTHONHASHSEED"] = "0"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "perfrepro.optimization.inputs", str(request)],
                capture_output=True, text=True, timeout=timeout_s, env=env,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
        except subprocess.TimeoutExpired:
            raise InputGenerationError(f"{task.id}: input generation took more than {timeout_s:g} s") from None
        if done.returncode != 0:
            lines = (done.stderr or "").strip().splitlines()
            raise InputGenerationError(lines[-1] if lines else f"{task.id}: worker exited {done.returncode}")
    data = Path(out_path).read_bytes()
    stored = TaskInputs.load(out_path)
    return {
        "task_id": task.id,
        "tests": len(stored.tests),
        "plus": len(stored.plus),
        "plus_dropped": stored.plus_dropped,
        "level0_dropped": stored.level0_dropped,
        "slow_timeouts": stored.slow_timeouts,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def generate_inputs_remote(
    seed: int,
    tests_per_level: int,
    timeout_s: float,
    call_timeout_s: float,
    item: tuple[OptTask, Sequence[Sequence[Any]]],
    enamel: Mapping[str, Any] | None = None,
) -> tuple[dict, bytes] | str:
    """One task's inputs on whichever worker runs it (an executor's unit of work): the pickle is
    written to the worker's own temp dir and sent back as bytes with its summary; a task that
    cannot be generated returns the reason (a string), which no retry would change."""
    task, plus_inputs = item
    with tempfile.TemporaryDirectory(prefix="perfrepro-inputs-out-") as tmp:
        out = Path(tmp) / "inputs.pkl"
        try:
            summary = generate_inputs_isolated(task, out, seed, tests_per_level, plus_inputs,
                                               timeout_s=timeout_s, call_timeout_s=call_timeout_s, enamel=enamel)
        except InputGenerationError as exc:
            return str(exc).removeprefix("InputGenerationError: ")
        return summary, out.read_bytes()


def _worker(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    task = record_from_dict(OptTask, request["task"], request_path)
    enamel = request.get("enamel")
    try:
        if enamel:
            from perfrepro.optimization.enamel_inputs import generate_enamel_inputs  # it imports this module

            result = generate_enamel_inputs(task, enamel["seed"], enamel["tests_per_level"], request["call_timeout_s"])
        else:
            result = generate_task_inputs(
                task, request["seed"], request["tests_per_level"], request["plus_inputs"], request["call_timeout_s"]
            )
    except InputGenerationError as exc:
        print(f"InputGenerationError: {exc}", file=sys.stderr)
        return 2
    result.dump(request["out"])
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
