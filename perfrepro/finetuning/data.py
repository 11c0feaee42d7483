"""PIE pairs -> supervised fine-tuning records: performance scores, leakage filter, split, truncation.

Sources (any mix, pooled):
- pie-perf's ``py_reference.jsonl`` (the shipped Python pairs): ``input`` / ``target``,
  ``measured_runtime_v0/v1`` (s), ``problem_id``, ``submission_id_v0/v1``;
- PIE's released splits (``train.jsonl``, ``train_hq_only.jsonl``, ``train_with_synthetic.jsonl``,
  ``val.jsonl``): ``src_code`` / ``tgt_code``, ``problem_id``, runtimes ``src_agg_runtime`` /
  ``tgt_agg_runtime`` and, where PIE computed it, ``target_reward_updated_pct_bin``;
read from a local file or from the hub (``owner/name[@split]``), with the loaders' offline error.

Performance score (the conditioned template's ``{pctile}``, 1..10): the share of the known solutions
of the target's problem that are at least as slow as the target, times 10, rounded up (the fastest
scores 10). A problem with a single pair has two known solutions, too few to rank, so its targets
are ranked among every solution of the dataset instead; the summary counts both bases. A released
``target_reward_updated_pct_bin`` is used as given.

No leakage: a training program that shares a problem id with an evaluation task, or whose token
5-gram Jaccard similarity to an evaluation program (slow or reference) reaches
``leak_threshold``, takes its whole problem out of the data. The overlap after the filter is
checked to be 0.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from perfrepro.datasets.base import DatasetError, Row, read_source
from perfrepro.finetuning.leakage import LeakageIndex
from perfrepro.records import EvalProgram, SftRecord

LABEL = "PIE training pairs"
DATA_CHOICES = ("pie", "pie+self_play")
SCORE_BASES = ("problem", "dataset", "released")


class FinetuneDataError(ValueError):
    """Training data that cannot be built as configured; the message says what to change."""


@dataclass(frozen=True)
class TrainingPair:
    """One slow -> fast pair as read from a source, before scoring and filtering."""

    id: str
    problem_id: str
    source: str
    slow: str
    fast: str
    slow_runtime: float | None
    fast_runtime: float | None
    released_score: int | None = None


def check_data_choice(data: str) -> None:
    """``finetune.data``: pie, or pie+self_play (PIE's records plus the self_play stage's kept pairs)."""
    if data not in DATA_CHOICES:
        raise FinetuneDataError(f"finetune.data: expected one of {', '.join(DATA_CHOICES)}, got {data!r}")


def _text(row: Row, names: Sequence[str]) -> str:
    for name in names:
        value = row.data.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise DatasetError(f"{LABEL} file {row.where}: none of the fields {', '.join(map(repr, names))} holds a program")


def _number(row: Row, names: Sequence[str]) -> float | None:
    for name in names:
        value = row.data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def pairs_from_rows(rows: Iterable[Row], source: str) -> list[TrainingPair]:
    """Rows of either PIE format -> TrainingPairs (ids unique within the source)."""
    pairs, seen = [], set()
    for row in rows:
        problem = row.data.get("problem_id")
        if not isinstance(problem, str) or not problem.strip():
            raise DatasetError(f"{LABEL} file {row.where}: field 'problem_id' is missing")
        slow = _text(row, ("input", "src_code"))
        fast = _text(row, ("target", "tgt_code"))
        ids = [row.data.get(k) for k in ("submission_id_v0", "submission_id_v1", "src_id", "tgt_id")]
        ids = [str(i) for i in ids if i not in (None, "")]
        suffix = "_".join(ids[:2]) if len(ids) >= 2 else hashlib.sha256((slow + "\0" + fast).encode()).hexdigest()[:12]
        pair_id = f"{problem}_{suffix}"
        if pair_id in seen:
            continue  # the released files repeat some pairs; one copy is enough
        seen.add(pair_id)
        released = row.data.get("target_reward_updated_pct_bin")
        released_score = None
        if isinstance(released, (int, float)) and not isinstance(released, bool):
            released_score = min(10, max(1, int(round(released))))
        pairs.append(TrainingPair(
            id=pair_id, problem_id=problem, source=source, slow=slow, fast=fast,
            slow_runtime=_number(row, ("measured_runtime_v0", "src_agg_runtime", "cpu_time_v0")),
            fast_runtime=_number(row, ("measured_runtime_v1", "tgt_agg_runtime", "cpu_time_v1")),
            released_score=released_score,
        ))
    return pairs


def load_training_pairs(sources: Sequence[str | os.PathLike]) -> list[TrainingPair]:
    """Every pair of every source, in source order; a pair id seen in an earlier source is skipped."""
    pairs, seen = [], set()
    for source in sources:
        rows = read_source(source, LABEL, "finetune.sources: [data/raw/pie/py_reference.jsonl]")
        for pair in pairs_from_rows(rows, str(source)):
            if pair.id not in seen:
                seen.add(pair.id)
                pairs.append(pair)
    return pairs


def _percentile_score(runtime: float, pool: Sequence[float]) -> int:
    at_least_as_slow = sum(1 for t in pool if t >= runtime)
    return max(1, min(10, math.ceil(10 * at_least_as_slow / len(pool))))


def performance_scores(pairs: Sequence[TrainingPair]) -> dict[str, tuple[int, str]]:
    """pair id -> (score 1..10, basis). Solutions are told apart by their code, so a program that
    is the fast side of one pair and the slow side of another counts once."""
    by_problem: dict[str, dict[str, float]] = defaultdict(dict)
    pair_count: dict[str, int] = defaultdict(int)
    for pair in pairs:
        pair_count[pair.problem_id] += 1
        for code, runtime in ((pair.slow, pair.slow_runtime), (pair.fast, pair.fast_runtime)):
            if runtime is not None:
                by_problem[pair.problem_id].setdefault(code, runtime)
    everything = [t for solutions in by_problem.values() for t in solutions.values()]
    scores = {}
    for pair in pairs:
        if pair.released_score is not None:
            scores[pair.id] = (pair.released_score, "released")
        elif pair.fast_runtime is None:
            raise DatasetError(
                f"{LABEL} {pair.source}: pair {pair.id} has no runtime for its fast program "
                "(measured_runtime_v1 / tgt_agg_runtime) and no target_reward_updated_pct_bin"
            )
        elif pair_count[pair.problem_id] > 1:
            scores[pair.id] = (_percentile_score(pair.fast_runtime, list(by_problem[pair.problem_id].values())), "problem")
        else:
            scores[pair.id] = (_percentile_score(pair.fast_runtime, everything), "dataset")
    return scores


# -- leakage ---------------------------------------------------------------------------------

def leaked_problems(pairs: Sequence[TrainingPair], index: LeakageIndex) -> dict[str, dict]:
    """problem id -> the first match found for it (pair id, side, task id, role, similarity)."""
    leaks: dict[str, dict] = {}
    for pair in pairs:
        if pair.problem_id in leaks:
            continue
        for side, code in (("slow", pair.slow), ("fast", pair.fast)):
            hit = index.match(pair.problem_id, code)
            if hit is not None:
                leaks[pair.problem_id] = {"pair": pair.id, "side": side, "task_id": hit[0], "role": hit[1],
                                          "similarity": hit[2]}
                break
    return leaks


# -- split and records --------------------------------------------------------------------------

def split_problems(problem_ids: Iterable[str], val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """(train, val) problem ids: a seeded shuffle of the sorted ids, the first ceil(f * n) to val
    (at least one when there are two or more problems, never all)."""
    problems = sorted(set(problem_ids))
    random.Random(seed).shuffle(problems)
    n_val = math.ceil(val_fraction * len(problems)) if len(problems) > 1 else 0
    n_val = min(n_val, len(problems) - 1) if problems else 0
    return set(problems[n_val:]), set(problems[:n_val])


def truncate(code: str, max_chars: int) -> tuple[str, bool]:
    """PIE's cut: the first `max_chars` characters."""
    return (code[:max_chars], True) if len(code) > max_chars else (code, False)


@dataclass(frozen=True)
class TrainingData:
    train: list[SftRecord]
    val: list[SftRecord]
    summary: dict


def build_training_data(
    pairs: Sequence[TrainingPair],
    eval_programs: Sequence[EvalProgram],
    *,
    seed: int,
    val_fraction: float = 0.1,
    max_code_chars: int = 1500,
    leak_threshold: float = 0.5,
) -> TrainingData:
    """Scored, leakage-filtered, split and truncated records, and a summary of every count.

    Raises FinetuneDataError when nothing is left for training after the leakage filter.
    """
    if not pairs:
        raise FinetuneDataError(f"{LABEL}: the sources hold no pairs (finetune.sources)")
    scores = performance_scores(pairs)  # over every known solution, before anything is removed
    index = LeakageIndex(eval_programs, leak_threshold)
    leaks = leaked_problems(pairs, index)
    kept = [p for p in pairs if p.problem_id not in leaks]
    if not kept:
        raise FinetuneDataError(
            f"{LABEL}: no pair is left after the leakage filter ({len(leaks)} problems of {len(pairs)} pairs "
            f"overlap the {len(index.task_ids)} evaluation tasks at finetune.leak_threshold {leak_threshold}); "
            "an empty training set would give an untrained model"
        )
    train_ids, val_ids = split_problems((p.problem_id for p in kept), val_fraction, seed)
    records = {"train": [], "val": []}
    truncated = 0
    for pair in kept:
        slow, cut_slow = truncate(pair.slow, max_code_chars)
        fast, cut_fast = truncate(pair.fast, max_code_chars)
        truncated += cut_slow or cut_fast
        split = "train" if pair.problem_id in train_ids else "val"
        score, basis = scores[pair.id]
        records[split].append(SftRecord(pair.id, pair.problem_id, pair.source, split, slow, fast, score, basis,
                                        cut_slow or cut_fast))
    if not records["train"]:
        raise FinetuneDataError(f"{LABEL}: the split left no training record (finetune.val_fraction {val_fraction})")
    remaining = leaked_problems(kept, index)
    if remaining:  # cannot happen: the filter removed these problems; a check, not a hope
        raise AssertionError(f"leakage filter left overlapping problems: {sorted(remaining)}")
    basis_counts = {b: sum(1 for r in records["train"] + records["val"] if r.score_basis == b) for b in SCORE_BASES}
    summary = {
        "sources": sorted({p.source for p in pairs}),
        "pairs_read": len(pairs),
        "problems_read": len({p.problem_id for p in pairs}),
        "eval_tasks": len(index.task_ids),
        "eval_programs": len(eval_programs),
        "leak_threshold": leak_threshold,
        "leaked_problems_removed": len(leaks),
        "leaked_pairs_removed": len(pairs) - len(kept),
        "leaks": dict(sorted(leaks.items())),
        "overlap_after_filter": len(remaining),
        "train_records": len(records["train"]),
        "val_records": len(records["val"]),
        "train_problems": len(train_ids),
        "val_problems": len(val_ids),
        "problems_shared_by_splits": len(train_ids & val_ids),
        "max_code_chars": max_code_chars,
        "truncated_records": truncated,
        "score": "runtime percentile of the target among its problem's known solutions (1..10, 10 = fastest); "
                 "over the whole dataset where a problem has one pair",
        "score_basis_counts": basis_counts,
        "score_counts": {str(s): sum(1 for r in records["train"] + records["val"] if r.score == s) for s in range(1, 11)},
        "seed": seed,
        "val_fraction": val_fraction,
    }
    return TrainingData(records["train"], records["val"], summary)


def records_by_id(records: Iterable[SftRecord]) -> Mapping[str, SftRecord]:
    return {r.id: r for r in records}


# -- self-play pairs (finetune.data: pie+self_play) ---------------------------------------------

SELF_PLAY_LABEL = "self-play pairs"


def self_play_records(path: str | os.PathLike, max_code_chars: int) -> list[SftRecord]:
    """The self_play stage's kept pairs as training records: all in the train split (the
    validation loss stays on PIE's held-out problems, comparable between pie and pie+self_play),
    truncated like PIE's, with the tag the stage gave them (`target_reward_updated_pct_bin`: the
    rewrite is the faster of its problem's two known solutions). The stage already removed
    copies of training programs and overlaps with the evaluation tasks."""
    if os.path.isfile(path) and not _has_text(path):
        return []  # the stage kept nothing (a small model often gets nothing through): PIE alone
    rows = read_source(path, SELF_PLAY_LABEL, "data/self_play/finetune_pairs.jsonl (stage self_play)")
    records = []
    for pair in pairs_from_rows(rows, "self_play"):
        if pair.released_score is None:
            raise DatasetError(f"{SELF_PLAY_LABEL} file {path}: pair {pair.id} has no target_reward_updated_pct_bin "
                               "(rerun the self_play stage)")
        slow, cut_slow = truncate(pair.slow, max_code_chars)
        fast, cut_fast = truncate(pair.fast, max_code_chars)
        records.append(SftRecord(pair.id, pair.problem_id, "self_play", "train", slow, fast, pair.released_score,
                                 "problem", cut_slow or cut_fast))
    return records


def _has_text(path: str | os.PathLike) -> bool:
    with open(path, encoding="utf-8") as handle:
        return any(line.strip() for line in handle)


def finetune_records(train: Sequence[SftRecord], val: Sequence[SftRecord], data: str,
                     self_play_pairs: str | os.PathLike | None,
                     max_code_chars: int = 1500) -> tuple[list[SftRecord], list[SftRecord], int]:
    """What `finetune.data` trains on: (train, val, self-play records added). pie: the PIE records
    as they are; pie+self_play: the self-play records (`self_play_records`) appended to train."""
    check_data_choice(data)
    if data == "pie":
        return list(train), list(val), 0
    if self_play_pairs is None:
        raise FinetuneDataError("finetune.data: pie+self_play needs the self_play stage's pairs "
                                "(data/self_play/finetune_pairs.jsonl); run `dvc repro self_play`")
    extra = self_play_records(self_play_pairs, max_code_chars)
    clash = {r.id for r in extra} & {r.id for r in [*train, *val]}
    if clash:
        raise FinetuneDataError(f"self-play pair ids clash with PIE records: {sorted(clash)[:3]}")
    return [*train, *extra], list(val), len(extra)
