"""Deterministic corpus splits and task subsets (same inputs and seed -> same output, any order in)."""

from __future__ import annotations

import random
from typing import Callable, Sequence, TypeVar

from .base import DatasetError

T = TypeVar("T")


def split_by_problem(
    pairs: Sequence[T],
    test_fraction: float,
    seed: int,
    key: Callable[[T], str] = lambda pair: pair.id,
) -> tuple[list[T], list[T]]:
    """Split into (train, test) so no problem id (`key`) is on both sides.

    Problem ids are sorted, shuffled by `seed`, and the first round(n * test_fraction) of them
    (at least 1, at most n - 1) go to test. Each side keeps the input order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction: expected 0 < x < 1, got {test_fraction}")
    problems = sorted({key(pair) for pair in pairs})
    if len(problems) < 2:
        raise DatasetError(f"cannot split {len(problems)} problem(s) into train and test")
    random.Random(seed).shuffle(problems)
    n_test = min(max(round(len(problems) * test_fraction), 1), len(problems) - 1)
    test_ids = set(problems[:n_test])
    train = [pair for pair in pairs if key(pair) not in test_ids]
    test = [pair for pair in pairs if key(pair) in test_ids]
    return train, test


def select_subset(items: Sequence[T], limit: int | None, seed: int, key: Callable[[T], str] = lambda item: item.id) -> list[T]:
    """`limit` items chosen by `seed` (all when limit is None or >= len), in input order."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        raise DatasetError(f"limit: expected a positive int or None, got {limit}")
    ids = sorted(key(item) for item in items)
    chosen = set(random.Random(seed).sample(ids, limit))
    return [item for item in items if key(item) in chosen]
