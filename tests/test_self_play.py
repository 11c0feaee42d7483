"""Self-play (issue 18): hand-written proposer and optimizer answers pushed through every filter,
with the real sandbox and the real deterministic backend (valgrind) on tiny programs.

The cases, one proposal each: a real >3x rewrite (kept, with its instruction counts); a
semantic duplicate (dropped at novel); a copy of a training program and of an evaluation program
(novel); a wrong rewrite (correct); a ~1.06x rewrite and an echo with a comment (faster); an
answer without code, a crashing program, a hanging generator and one that ignores its seed (ran). Then: a rerun answers
every probe and measurement from the cache; the stage itself against a fake OpenAI server sends
no request on its rerun; finetune's data with pie+self_play holds the kept pairs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_openai_server import FakeOpenAI, Reply, chat_completion

from perfrepro.config import LLMConfig, SelfPlayConfig
from perfrepro.dispatch import LocalExecutor
from perfrepro.finetuning.data import finetune_records, self_play_records
from perfrepro.generation.backends import RecordedBackend
from perfrepro.generation.cache import ResponseCache
from perfrepro.records import EvalProgram, OptTask, SftRecord, write_jsonl
from perfrepro.selfplay.filters import diff_only_import_comment, first_of_each_class, trivial_reason
from perfrepro.selfplay.probe import canonical, output_signature
from perfrepro.selfplay.prompts import parse_proposal
from perfrepro.selfplay.run import STEPS, SelfPlayPair, failure_message, fixed_backend, run_self_play, select_seeds

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

REPO = Path(__file__).resolve().parents[1]
needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason="the deterministic backend needs valgrind")

LLM = LLMConfig(backend="openai", model="hand-written", base_url=None, api_key_env="OPENAI_API_KEY", temperature=0.0,
                max_tokens=512, seed=0, concurrency=1, timeout_s=30.0, max_retries=0, max_failure_fraction=0.5,
                cache_dir="unused")
CONFIG = SelfPlayConfig(proposer=LLM, optimizer=LLM, problems=10, seed=3, input_sizes=(8, 64, 2048), inputs_per_size=1,
                        min_speedup=1.10, shots=0, timeout_s=2.0, memory_limit_mb=1024, max_failure_fraction=0.5)

INTS = "import random\n\ndef generate_input(size):\n    return ([random.randint(-99, 99) for _ in range(size)],)\n"
SUM_LOOP = "def solve(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"
SUM_FAST = "def solve(xs):\n    return sum(xs)\n"
SUM_WHILE = "def solve(values):\n    acc, i = 0, 0\n    while i < len(values):\n        acc = acc + values[i]\n        i += 1\n    return acc\n"
MAX_LOOP = "def solve(xs):\n    best = xs[0]\n    for x in xs:\n        if x > best:\n            best = x\n    return best\n"
ABS_EXTRA = ("def solve(xs):\n    total = 0\n    for x in xs:\n        total += abs(x)\n"
             "    for x in xs[:len(xs) // 16]:\n        total += 0\n    return total\n")
ABS_LEAN = "def solve(xs):\n    total = 0\n    for x in xs:\n        total += abs(x)\n    return total\n"
EVENS = "def solve(xs):\n    count = 0\n    for x in xs:\n        if x % 2 == 0:\n            count += 1\n    return count\n"
DISTINCT = "def solve(xs):\n    return len(set(xs))\n"  # also a training program (seed p09's slow side)
EVAL_COPY = "def solve(xs):\n    return sorted(xs)[::-1]\n"  # also an evaluation program


def answer(program: str, generator: str = INTS, problem: str = "a new problem") -> str:
    return f"Problem: {problem}\n\n```python\n{program}```\n\n```python\n{generator}```\n"


def fenced(program: str) -> str:
    return f"Here is the faster version.\n```python\n{program}```\n"


CASES = {  # seed problem -> (proposer answer, optimizer answer or None, where it stops)
    "p01": (answer(SUM_LOOP), fenced(SUM_FAST), "kept"),
    "p02": (answer(SUM_WHILE, INTS.replace("-99, 99", "0, 50")), fenced(SUM_FAST), "novel"),
    "p03": (answer(MAX_LOOP), fenced("def solve(xs):\n    return max(xs) + 1\n"), "correct"),
    "p04": (answer(ABS_EXTRA), fenced(ABS_LEAN), "faster"),
    "p05": ("I would solve it by summing the numbers, in about five lines.", None, "ran"),
    "p06": (answer("def solve(xs):\n    return len(xs) // 0\n"), None, "ran"),
    "p07": (answer(SUM_LOOP, "def generate_input(size):\n    while True:\n        pass\n"), None, "ran"),
    "p08": (answer(EVENS), fenced("# counts the even numbers\n" + EVENS), "faster"),
    "p09": (answer(DISTINCT), None, "novel"),
    "p10": (answer(EVAL_COPY), None, "novel"),
    "p11": (answer(MAX_LOOP, "import os\n\ndef generate_input(size):\n    return (list(os.urandom(size)),)\n"),
            None, "ran"),  # ignores the seed
}


def seed_records() -> list[SftRecord]:
    records = []
    for number, problem in enumerate(CASES, start=1):
        slow = DISTINCT if problem == "p09" else f"n = int(input())\nprint(sum(range(n * {number})))\n"
        fast = f"n = int(input())\nprint((n * {number}) * (n * {number} - 1) // 2)\n"
        records.append(SftRecord(f"{problem}_a_b", problem, "fixture", "train", slow, fast, 10, "problem", False))
    return records


def run(cache: ResponseCache, seeds=None):
    proposer = RecordedBackend({f"self_play/{p}": proposal for p, (proposal, _, _) in CASES.items()})
    optimizer = RecordedBackend({f"self_play/{p}": rewrite for p, (_, rewrite, _) in CASES.items() if rewrite})
    records = seed_records() if seeds is None else seeds
    return run_self_play(
        records, CONFIG, open_proposer=fixed_backend(proposer), open_optimizer=fixed_backend(optimizer),
        training_programs=[EvalProgram(r.problem_id, side, code) for r in records
                           for side, code in (("slow", r.slow), ("fast", r.fast))],
        eval_programs=[EvalProgram("HumanEval/0", "reference", EVAL_COPY)],
        leak_threshold=0.5, cache=cache, executor=LocalExecutor(progress=False),
    )


@needs_valgrind
def test_known_cases_stop_at_their_filter_and_the_real_rewrite_is_kept_with_its_counts(tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    result = run(cache)
    rows = {row["id"].removeprefix("self_play/"): row for row in result.candidates}
    stopped = {problem: row["dropped_at"] or row["reached"] for problem, row in rows.items()}
    assert stopped == {problem: where for problem, (_, _, where) in CASES.items()}
    assert result.funnel == {"proposed": 11, "ran": 7, "novel": 4, "optimized": 4, "correct": 3, "faster": 1, "kept": 1}
    strict = dataclasses.replace(CONFIG, max_failure_fraction=0.0)
    assert result.failures == 0 and failure_message(result, strict) is None

    # why each was dropped
    assert rows["p02"]["reason"].startswith("semantic duplicate of self_play/p01")
    assert rows["p09"]["reason"].startswith("copies training program p09")
    assert rows["p10"]["reason"].startswith("overlaps evaluation task HumanEval/0")
    assert rows["p03"]["reason"].startswith("wrong_answer")
    assert rows["p05"]["reason"].startswith("no_code")
    assert rows["p06"]["reason"].startswith("program raise") and "ZeroDivisionError" in rows["p06"]["reason"]
    assert rows["p07"]["reason"].startswith("generator timeout")
    assert rows["p11"]["reason"].startswith("generator raise") and "not deterministic" in rows["p11"]["reason"]
    near, echo = rows["p04"], rows["p08"]
    assert 1.0 < near["speedup"] < CONFIG.min_speedup and "speedup" in near["reason"]
    assert abs(echo["speedup"] - 1.0) < 0.01  # the same program: the same count, give or take compile noise

    # the kept pair: PIE's field names, the deterministic counts and their ratio
    (pair,) = result.pairs
    assert (pair.problem_id, pair.src_code, pair.tgt_code) == ("self_play/p01", SUM_LOOP, SUM_FAST)
    assert pair.runtime_unit == "instructions" and pair.src_agg_runtime > pair.tgt_agg_runtime > 0
    assert pair.speedup == round(pair.src_agg_runtime / pair.tgt_agg_runtime, 4) and pair.speedup > 3.0
    assert pair.target_reward_updated_pct_bin == 10 and pair.inputs == 3 and pair.proposer == "recorded-responses"
    assert rows["p01"]["instructions_proposed"] == pair.src_agg_runtime

    # a rerun: every probe and measurement from the cache, the same result
    again = run(cache)
    assert again.stats["probes_run"] == 0 and again.stats["measurements_run"] == 0
    assert again.stats["measurements_cached"] == 4  # the 4 optimized, the wrong one included
    assert again.pairs == result.pairs and again.candidates == result.candidates


def test_failed_requests_are_failures_and_above_the_share_the_run_fails(tmp_path):
    seeds = [r for r in seed_records() if r.problem_id in ("p05",)]
    seeds += [SftRecord("q1_a_b", "q1", "fixture", "train", "print(1)\n", "print(1)\n", 10, "problem", False),
              SftRecord("q2_a_b", "q2", "fixture", "train", "print(2)\n", "print(2)\n", 10, "problem", False)]
    result = run(ResponseCache(tmp_path / "cache"), seeds)  # q1, q2: no recorded answer = a failed request
    assert result.funnel["proposed"] == 3 and result.funnel["ran"] == 0 and result.failures == 2
    assert result.requests["proposer"] == (2, 3) and result.requests["optimizer"] == (0, 0)
    lenient_llm = dataclasses.replace(LLM, max_failure_fraction=1.0)
    lenient = dataclasses.replace(CONFIG, proposer=lenient_llm, optimizer=lenient_llm)
    message = failure_message(result, lenient)
    assert "2 of 3 proposals" in message and "self_play.max_failure_fraction 0.5" in message
    assert "no recorded response" in message
    assert failure_message(result, dataclasses.replace(lenient, max_failure_fraction=0.7)) is None
    message = failure_message(result, CONFIG)  # the proposer's own limit comes first
    assert message.startswith("2 of 3 self_play.proposer requests failed for good")


def test_parse_proposal_splits_one_block_and_names_what_is_missing():
    both = "Problem: twice\n```python\ndef solve(x):\n    return 2 * x\n\ndef generate_input(size):\n    return (size,)\n```"
    proposal = parse_proposal(both)
    assert proposal.statement == "twice" and "generate_input" not in proposal.program
    assert "def solve" in proposal.program and "def generate_input" in proposal.generator
    assert parse_proposal("no code at all").startswith("no_code")
    assert parse_proposal("```python\ndef solve(x):\n    return x\n```").startswith("no_generator")
    assert parse_proposal("```python\ndef solve(x):\n  return (\n```\n```python\ndef generate_input(s):\n  return (s,)\n```"
                          ).startswith("syntax_error")


def test_trivial_rewrites_whitespace_comments_and_imports_only():
    assert trivial_reason(SUM_LOOP, "# faster!\n" + SUM_LOOP.replace("total += x", "total += x   # add")) \
        == "the same program after normalising whitespace and comments"
    assert trivial_reason(SUM_LOOP, "import sys\nfrom math import fsum\n" + SUM_LOOP) \
        == "the diff changes only imports and comments"
    assert diff_only_import_comment(SUM_LOOP, "import sys\n\n" + SUM_LOOP)
    assert trivial_reason(SUM_LOOP, SUM_FAST) is None
    assert trivial_reason(SUM_LOOP, "import sys\n" + SUM_LOOP.replace("total += x", "total = total + x")) is None
    # indentation is structure: moving the return into the loop is a change
    assert trivial_reason(SUM_LOOP, SUM_LOOP.replace("    return total", "        return total")) is None


def test_output_signatures_and_classes():
    floats = output_signature([{"ok": "0.30000000000000004"}, {"raise": "TypeError"}, {"timeout": True}])
    assert floats == (canonical(0.3), "!raise TypeError", "!timeout")
    assert canonical({2: [1.0, (3, "a")], 1: {5, 4}}) == canonical({1: {4, 5}, 2: [1.0, (3, "a")]})
    assert canonical([1]) != canonical((1,)) and canonical(True) != canonical(1)
    assert first_of_each_class([("a",), ("b",), ("a",), None, None]) == [0, 1, 0, 3, 4]


def test_seeds_are_one_record_per_training_problem_seeded_and_a_larger_budget_keeps_the_smaller():
    records = seed_records() + [SftRecord("p01_c_d", "p01", "fixture", "train", "x = 1\n", "x = 2\n", 10, "problem", False)]
    five = select_seeds(records, 5, seed=3)
    assert len({r.problem_id for r in five}) == 5 and select_seeds(records, 8, seed=3)[:5] == five
    assert select_seeds(records, 5, seed=4) != five
    assert all(r.id.endswith("_a_b") for r in five)  # a problem's first record by id


# ---- finetune.data: pie+self_play -------------------------------------------------------------

def kept_pair(problem: str = "self_play/p01") -> SelfPlayPair:
    return SelfPlayPair(problem_id=problem, src_id="proposed", tgt_id="optimized", src_code=SUM_LOOP, tgt_code=SUM_FAST,
                        src_agg_runtime=157048.0, tgt_agg_runtime=67709.0, speedup=2.3195,
                        target_reward_updated_pct_bin=10, runtime_unit="instructions", statement="sum",
                        entry_point="solve", input_generator=INTS, input_sizes=(8, 64, 256), inputs=3,
                        seed_problem_id="p01", proposer="a", optimizer="b", environment="e")


def test_finetune_data_with_pie_plus_self_play_adds_the_kept_pairs_to_train(tmp_path):
    train = [SftRecord("p1_a_b", "p1", "pie", "train", "print(1)\n", "print(2)\n", 7, "problem", False)]
    val = [SftRecord("p2_a_b", "p2", "pie", "val", "print(3)\n", "print(4)\n", 9, "problem", False)]
    path = tmp_path / "finetune_pairs.jsonl"
    write_jsonl(path, [kept_pair(), kept_pair("self_play/p02")])
    plain_train, plain_val, added = finetune_records(train, val, "pie", path)
    assert (plain_train, plain_val, added) == (train, val, 0)
    both_train, both_val, added = finetune_records(train, val, "pie+self_play", path, max_code_chars=20)
    assert added == 2 and both_val == val and both_train[0] == train[0]
    extra = both_train[1]
    assert (extra.id, extra.problem_id, extra.split, extra.source) == (
        "self_play/p01_proposed_optimized", "self_play/p01", "train", "self_play")
    assert extra.score == 10 and extra.slow == SUM_LOOP[:20] and extra.fast == SUM_FAST[:20] and extra.truncated
    empty = tmp_path / "empty.jsonl"
    write_jsonl(empty, [])
    assert self_play_records(empty, 100) == []  # the stage kept nothing: PIE alone


# ---- the stage: fake OpenAI server, a rerun sends nothing, finetune_pairs follows finetune.data ----

@needs_valgrind
def test_the_stage_writes_funnel_and_outs_its_rerun_sends_and_measures_nothing(tmp_path):
    def script(n, body):
        user = body["messages"][-1]["content"]
        if "Invent a NEW problem" in user:  # the proposer: the same answer twice, so one is a duplicate
            return Reply(body=chat_completion(answer(SUM_LOOP)))
        return Reply(body=chat_completion(fenced(SUM_FAST)))

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", seed_records()[:2])
    write_jsonl(data / "val.jsonl", [])
    write_jsonl(tmp_path / "opt_tasks.jsonl", [OptTask("HumanEval/0", "", EVAL_COPY, EVAL_COPY, INTS, (8,), "", "x",
                                                        "solve")])
    out = tmp_path / "self_play"
    with FakeOpenAI(script) as server:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        llm = {**params["self_play"]["proposer"], "backend": "openai", "base_url": server.base_url, "model": "fake-model",
               "api_key_env": "FAKE_KEY", "max_retries": 0}
        params["self_play"].update(problems=2, input_sizes=[8, 64, 256], inputs_per_size=1, timeout_s=2.0, shots=0,
                                   proposer=llm, optimizer=llm)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "FAKE_KEY": "sk-test",
               "PERFREPRO_LLM_CACHE": str(tmp_path / "llm")}

        def stage(data_choice: str) -> subprocess.CompletedProcess:
            params["finetune"]["data"] = data_choice
            (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
            argv = [sys.executable, str(REPO / "stages" / "self_play.py"), "--params", str(tmp_path / "params.yaml"),
                    "--train-data", str(data), "--eval-tasks", str(tmp_path / "opt_tasks.jsonl"),
                    "--pairs", str(REPO / "data/raw/pie/py_reference.jsonl"), "--templates", str(REPO / "data/raw/pie/templates"),
                    "--out", str(out), "--metrics", str(tmp_path / "self_play.json")]
            done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            return done

        first = stage("pie")
        sent = server.count
        assert sent == 2 + 1  # two proposals; the second is a semantic duplicate: one optimizer request
        assert "measurements: 1 run, 0 from the cache" in first.stderr
        metrics = json.loads((tmp_path / "self_play.json").read_text())
        assert {step: metrics[f"self_play.{step}"] for step in STEPS} == {
            "proposed": 2, "ran": 2, "novel": 1, "optimized": 1, "correct": 1, "faster": 1, "kept": 1}
        candidates = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
        assert sorted(str(c["dropped_at"]) for c in candidates) == ["None", "novel"]
        (pair,) = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
        assert pair["tgt_code"] == SUM_FAST and pair["speedup"] == metrics["self_play.mean_kept_speedup"] > 1.1
        assert (out / "finetune_pairs.jsonl").read_text() == ""  # finetune.data: pie

        again = stage("pie")  # the stage itself rerun (what `dvc repro -f self_play` does)
        assert server.count == sent  # every answer from the LLM cache
        assert "sandbox probes: 0 run, 4 from the cache; measurements: 0 run, 1 from the cache" in again.stderr
        assert json.loads((tmp_path / "self_play.json").read_text()) == metrics

        stage("pie+self_play")  # the switch: from the caches, and now finetune gets the pairs
        assert server.count == sent
        assert (out / "finetune_pairs.jsonl").read_text() == (out / "pairs.jsonl").read_text() != ""
