"""Training the query-side LinearAdapter on cached embeddings.

The study's recipe: AdamW, linear warm-up over `warmup_steps` then linear decay to zero, grad-norm
clipping; loss `mse` (adapter(query) ~ solution) or `triplet` (query, solution, negative). Added
here: `infonce` (in-batch multiple-negatives ranking with a temperature) and `hard` negatives (for
each query, the nearest wrong solution among the training solutions under the base model).

Seeded end to end (a dedicated torch.Generator shuffles the batches), so on CPU the same inputs
and config give bit-identical weights.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from perfrepro.config import AdapterConfig
from perfrepro.embeddings.adapter import LinearAdapter
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.losses import infonce_loss, mse_loss, triplet_loss
from perfrepro.vectors import rank_order

log = logging.getLogger(__name__)


class NoTrainingDataError(ValueError):
    """A variant has nothing to train on (e.g. `negatives: slow` without any slow variant)."""


@dataclass(frozen=True)
class TrainingData:
    ids: list[str]
    queries: np.ndarray  # (n, d) base problem embeddings
    positives: np.ndarray  # (n, d) base embeddings of each problem's performant solution
    negatives: np.ndarray | None  # (n, d) one negative per row, or None
    negative_ids: list[str] | None  # what each negative is (for logs and tests)
    description: str  # e.g. "1512 train pairs, 48 slow-variant triplets"


def mine_hard_negatives(
    queries: np.ndarray, solutions: np.ndarray, ids: list[str]
) -> np.ndarray:
    """For each query i, the row of the most similar solution other than its own (cosine under the
    base model; ties broken by id). Queries and solutions are aligned row by row."""
    if len(ids) < 2:
        raise NoTrainingDataError("hard negatives need at least two training pairs")
    scores = np.asarray(queries, dtype=np.float32) @ np.asarray(solutions, dtype=np.float32).T
    np.fill_diagonal(scores, -np.inf)
    return rank_order(scores, ids)[:, 0]


def training_data(embeddings: EmbeddingSet, config: AdapterConfig, protocol: str) -> TrainingData:
    """The rows a variant trains on under `protocol`, with the negatives its strategy asks for."""
    rows = embeddings.training_rows(protocol)
    ids = [embeddings.ids[i] for i in rows]
    queries = embeddings.problems[rows]
    positives = embeddings.solutions[rows]
    split_note = "train-split" if protocol == "heldout" else "all-row (study protocol)"
    if config.negatives == "none":
        return TrainingData(ids, queries, positives, None, None, f"{len(rows)} {split_note} pairs, no negatives")
    if config.negatives == "hard":
        neg = mine_hard_negatives(queries, positives, ids)
        return TrainingData(
            ids, queries, positives, positives[neg], [ids[j] for j in neg],
            f"{len(rows)} {split_note} pairs, {len(rows)} hard-negative triplets",
        )
    # slow: only pairs that have an LLM-made slow variant form a triplet
    slow = embeddings.slow_by_row()
    keep = [i for i in rows if int(i) in slow]
    if not keep:
        raise NoTrainingDataError(
            f"negatives: slow needs LLM-made slow variants, but none of the {len(rows)} {split_note} "
            f"pairs has one (data/negatives/slow_variants.jsonl missing, empty or all failed; "
            f"run the negatives stage)"
        )
    keep_rows = np.asarray(keep, dtype=np.int64)
    return TrainingData(
        [embeddings.ids[i] for i in keep_rows],
        embeddings.problems[keep_rows],
        embeddings.solutions[keep_rows],
        embeddings.slow_solutions[[slow[int(i)] for i in keep_rows]],
        [f"{embeddings.ids[i]}#slow" for i in keep_rows],
        f"{len(keep_rows)} slow-variant triplets (of {len(rows)} {split_note} pairs)",
    )


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: 0 -> 1 over `warmup_steps`, then linearly down to 0 at `total_steps`."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def train_adapter(
    queries: np.ndarray,
    positives: np.ndarray,
    config: AdapterConfig,
    seed: int,
    negatives: np.ndarray | None = None,
    show_progress: bool = True,
    description: str = "",
) -> tuple[LinearAdapter, dict[str, Any]]:
    """Train a LinearAdapter; returns it and a log {loss_per_epoch, seconds, steps, ...}."""
    queries = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    positives = torch.from_numpy(np.ascontiguousarray(positives, dtype=np.float32))
    n, dim = queries.shape
    if n == 0:
        raise NoTrainingDataError("train_adapter: no training pairs")
    if positives.shape != queries.shape:
        raise ValueError(f"train_adapter: queries {tuple(queries.shape)} vs positives {tuple(positives.shape)}")
    neg = None
    if negatives is not None:
        neg = torch.from_numpy(np.ascontiguousarray(negatives, dtype=np.float32))
        if neg.shape != queries.shape:
            raise ValueError(f"train_adapter: negatives {tuple(neg.shape)} vs queries {tuple(queries.shape)}")
    if config.loss == "triplet" and neg is None:
        raise NoTrainingDataError("train_adapter: the triplet loss needs negatives")

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    adapter = LinearAdapter(dim, init="identity", hyperparameters={**vars(config), "seed": seed})
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_decay(step, config.warmup_steps, total_steps)
    )

    losses: list[float] = []
    start = time.perf_counter()
    adapter.train()
    bar = tqdm(total=total_steps, desc=f"train {config.loss}/{config.negatives}", unit="step",
               disable=not show_progress, leave=False)
    for _epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for begin in range(0, n, config.batch_size):
            idx = order[begin : begin + config.batch_size]
            q = adapter(queries[idx])
            if config.loss == "mse":
                loss = mse_loss(q, positives[idx])
            elif config.loss == "triplet":
                loss = triplet_loss(q, positives[idx], neg[idx], config.margin)
            else:
                loss = infonce_loss(q, positives[idx], config.temperature, None if neg is None else neg[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(adapter.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach())
            batches += 1
            bar.update(1)
        losses.append(total / batches)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    adapter.eval()
    seconds = time.perf_counter() - start
    train_log = {
        "loss_per_epoch": losses,
        "seconds": seconds,
        "steps": total_steps,
        "n_train": int(n),
        "n_triplets": int(n) if neg is not None else 0,
        "data": description,
    }
    log.info("trained adapter (%s): %d steps, loss %.4f -> %.4f, %.2fs", description, total_steps,
             losses[0], losses[-1], seconds)
    return adapter, train_log


def train_variant(
    embeddings: EmbeddingSet, config: AdapterConfig, protocol: str, seed: int, show_progress: bool = True
) -> tuple[LinearAdapter, dict[str, Any]]:
    """`training_data` + `train_adapter`: what the train_adapter stage runs per protocol."""
    data = training_data(embeddings, config, protocol)
    log.info("protocol %s: %s", protocol, data.description)
    adapter, train_log = train_adapter(
        data.queries, data.positives, config, seed, data.negatives, show_progress, data.description
    )
    train_log["protocol"] = protocol
    return adapter, train_log
