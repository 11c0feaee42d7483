"""Uncertainty of reported numbers: seeded bootstrap intervals and paired comparisons.

- `bootstrap_interval`: a percentile bootstrap over items (tasks for NET/NMU/NTMU and Speedup,
  queries for Hit@k). The same values and seed give the same interval, bit for bit.
- `paired_comparison`: two experiments on the items both have (e.g. the tasks both passed):
  the median per-item ratio b/a and the Wilcoxon signed-rank p-value of log(b/a) (scipy).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Mapping

import numpy as np

# resamples x items held in memory at once (float64: 8 MB)
_CHUNK_CELLS = 1_000_000


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """statistic over each row of `samples`: vectorised when it takes `axis`, else row by row."""
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=float)
        if out.shape == (samples.shape[0],):
            return out
    except TypeError:
        pass
    return np.array([float(statistic(row)) for row in samples], dtype=float)


def bootstrap_interval(
    values: Iterable[float],
    statistic: Callable = np.mean,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """(low, high): the `confidence` percentile-bootstrap interval of `statistic` over the items.

    Items are resampled with replacement, `n_resamples` times, from numpy's default_rng(seed).
    Edge cases: an empty input gives (nan, nan); a single item (or all items equal) gives that
    value twice. `values` must be finite (a NaN or inf raises ValueError naming its position),
    so the interval itself never holds a NaN for a non-empty input.
    """
    x = np.asarray(list(values), dtype=float)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_interval: expected a flat sequence of numbers, got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"bootstrap_interval: value {int(bad[0])} is {float(x[bad[0]])!r}; pass finite numbers only "
                         "(drop the items with no value first)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap_interval: confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"bootstrap_interval: n_resamples must be >= 1, got {n_resamples!r}")
    n = x.size
    if n == 0:
        return (math.nan, math.nan)
    if n == 1 or np.all(x == x[0]):
        value = float(statistic(x))
        return (value, value)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // n)
    stats = []
    done = 0
    while done < n_resamples:
        rows = min(per_chunk, n_resamples - done)
        stats.append(_apply(statistic, x[rng.integers(0, n, size=(rows, n))]))
        done += rows
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.concatenate(stats), [alpha, 1.0 - alpha])
    return (float(low), float(high))


@dataclass(frozen=True)
class PairedComparison:
    """Experiment b against experiment a on the items both have.

    n: items in the comparison; median_ratio: median over items of b_i / a_i (below 1: b is
    lower, e.g. faster for NET); wilcoxon_p: two-sided Wilcoxon signed-rank p-value of
    log(b_i / a_i) (nan when n == 0; 1.0 when every pair is equal).
    """

    n: int
    median_ratio: float
    wilcoxon_p: float


def paired_comparison(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> PairedComparison:
    """Paired comparison of b against a on the ids both have (values must be positive and finite)."""
    ids = sorted(set(a) & set(b), key=str)
    for name, side in (("a", a), ("b", b)):
        for item in ids:
            value = side[item]
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ValueError(f"paired_comparison: {name}[{item!r}] = {value!r}; "
                                 "ratios need positive finite values")
    if not ids:
        return PairedComparison(0, math.nan, math.nan)
    ratios = np.array([b[i] / a[i] for i in ids], dtype=float)
    median_ratio = float(np.median(ratios))
    log_ratios = np.log(ratios)
    if not np.any(log_ratios != 0.0):
        return PairedComparison(len(ids), median_ratio, 1.0)
    from scipy.stats import wilcoxon  # only comparisons need scipy

    p_value = float(wilcoxon(log_ratios, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedComparison(len(ids), median_ratio, p_value)
