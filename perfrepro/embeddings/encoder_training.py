"""Fine-tuning the whole encoder (all-MiniLM-L6-v2) with sentence-transformers' own trainer.

`encoder_mnrl`: `SentenceTransformerTrainer` + `MultipleNegativesRankingLoss` (in-batch negatives)
on (problem statement, performant solution, hard negative) triplets, where the hard negative is
the nearest wrong training solution under the base model, mined exactly as the hard-negative
adapter mines it (`perfrepro.embeddings.training.mine_hard_negatives`).

Seeded end to end (torch, the trainer's seed and data seed, no dataloader workers), so on CPU the
same texts and settings give the same weights.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderTrainingData:
    anchors: list[str]  # problem statements
    positives: list[str]  # each statement's performant solution
    negatives: list[str] | None  # one mined hard-negative solution per row, or None
    description: str


def encoder_training_data(
    ids: Sequence[str],
    problems: Sequence[str],
    solutions: Sequence[str],
    problem_embeddings: np.ndarray,
    solution_embeddings: np.ndarray,
    hard_negatives: bool,
    max_pairs: int | None = None,
) -> EncoderTrainingData:
    """Training rows in corpus order (the first `max_pairs` when set); hard negatives are mined
    among the kept rows' solutions under the base embeddings."""
    from perfrepro.embeddings.training import mine_hard_negatives

    n = len(ids) if max_pairs is None else min(max_pairs, len(ids))
    if not (len(problems) == len(solutions) == len(problem_embeddings) == len(solution_embeddings) == len(ids)):
        raise ValueError("encoder_training_data: ids, problems, solutions and embeddings differ in length")
    ids, problems, solutions = list(ids[:n]), list(problems[:n]), list(solutions[:n])
    if n < 2:
        raise ValueError(f"encoder_training_data: {n} training pairs; in-batch negatives need at least 2")
    if not hard_negatives:
        return EncoderTrainingData(problems, solutions, None, f"{n} train-split pairs, in-batch negatives")
    neg = mine_hard_negatives(problem_embeddings[:n], solution_embeddings[:n], ids)
    return EncoderTrainingData(
        problems, solutions, [solutions[j] for j in neg],
        f"{n} train-split pairs, in-batch negatives + {n} mined hard negatives",
    )


def train_encoder(
    model,
    data: EncoderTrainingData,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    warmup_ratio: float,
    scale: float,
    seed: int,
    work_dir: str | os.PathLike,
    show_progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune `model` (a SentenceTransformer, max_seq_length already set) in place; returns it
    and a log {seconds, steps, loss, n_train, n_triplets, data}."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(seed)
    np.random.seed(seed)
    columns = {"anchor": data.anchors, "positive": data.positives}
    if data.negatives is not None:
        columns["negative"] = data.negatives
    dataset = Dataset.from_dict(columns)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(work_dir)),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=float(warmup_ratio),  # a float < 1 is a share of the steps (transformers v5)
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        dataloader_num_workers=0,
        save_strategy="no",
        logging_strategy="epoch",
        report_to=[],
        disable_tqdm=not show_progress,
    )
    loss = MultipleNegativesRankingLoss(model, scale=scale)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    losses = [round(float(e["loss"]), 6) for e in trainer.state.log_history if "loss" in e]
    train_log = {
        "seconds": seconds,
        "steps": int(result.global_step),
        "loss_per_epoch": losses,
        "n_train": len(data.anchors),
        "n_triplets": len(data.negatives) if data.negatives is not None else 0,
        "data": data.description,
    }
    log.info("fine-tuned encoder (%s): %d steps, %.1fs", data.description, result.global_step, seconds)
    return model, train_log
