"""Uncertainty of reported numbers: seeded bootstrap intervals and paired comparisons.

- `bootstrap_interval`: a percentile bootstrap over items (tasks for NET/NMU/NTMU and Speedup,
  queries for Hit@k). The same values and seed give the same interval, bit for bit.
- `paired_comparison`: two experiments (or two model rows) on the items both have (e.g. the tasks
  both passed): the median per-item ratio b/a with its bootstrap interval, and the Wilcoxon
  signed-rank p-value of log(b/a) (scipy), zeros and ties handled explicitly.
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


# Below this many differing items no two-sided signed-rank p-value can reach 0.05 (the smallest is 2 / 2**m).
MIN_DIFFERING_ITEMS = 6
# Up to this many differing items with tied |log ratios|, the p-value is the exact sign-flip
# permutation test on mid-ranks (2**16 sign patterns); above it, the tie-corrected normal approximation.
EXACT_WITH_TIES_MAX = 16


@dataclass(frozen=True)
class PairedComparison:
    """Experiment b against experiment a on the items both have.

    n: items in the comparison; median_ratio: median over items of b_i / a_i (below 1: b is
    lower, e.g. faster for NET; above 1: a higher speedup for a PIE row), with its seeded 95%
    bootstrap interval over items (median_lo, median_hi); wilcoxon_p: two-sided Wilcoxon
    signed-rank p-value of log(b_i / a_i) (nan when n == 0; 1.0 when every pair is equal).

    Zeros (ratio exactly 1, e.g. two PIE rows that both stay at speedup 1.0) are left out of the
    test and counted in `zeros` (Wilcoxon's own treatment); ties among the remaining |log ratios|
    get mid-ranks, and `method` says how p was computed; `note` says when p cannot be small
    because fewer than MIN_DIFFERING_ITEMS items differ.
    """

    n: int
    median_ratio: float
    wilcoxon_p: float
    median_lo: float = math.nan
    median_hi: float = math.nan
    zeros: int = 0
    method: str = ""
    note: str = ""


def signed_rank_test(log_ratios: np.ndarray) -> tuple[float, str, str]:
    """(p, method, note) of the two-sided Wilcoxon signed-rank test, zeros left out: exact when no
    |value| is tied (m <= 50), the exact sign-flip permutation distribution of the mid-ranks when
    some are (m <= EXACT_WITH_TIES_MAX), else the tie-corrected normal approximation."""
    differing = log_ratios[log_ratios != 0.0]
    m = differing.size
    if m == 0:
        return 1.0, "", "no item differs"
    from scipy.stats import PermutationMethod, wilcoxon  # only comparisons need scipy

    tied = np.unique(np.abs(differing)).size < m
    if not tied and m <= 50:
        method, how = "exact", "exact"
    elif m <= EXACT_WITH_TIES_MAX:
        method, how = PermutationMethod(n_resamples=np.inf), "exact (sign flips, mid-ranks for ties)"
    else:
        method, how = "asymptotic", "normal approximation" + (" (tie-corrected)" if tied else "")
    p_value = float(wilcoxon(differing, zero_method="wilcox", alternative="two-sided", method=method).pvalue)
    note = (f"only {m} item(s) differ: p >= {2.0 ** (1 - m):.3g} whatever the data"
            if m < MIN_DIFFERING_ITEMS else "")
    return min(p_value, 1.0), how, note


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
        return PairedComparison(0, math.nan, math.nan, note="no item in common")
    ratios = np.array([b[i] / a[i] for i in ids], dtype=float)
    low, high = bootstrap_interval(ratios, statistic=np.median, seed=0)
    log_ratios = np.log(ratios)
    p_value, method, note = signed_rank_test(log_ratios)
    return PairedComparison(len(ids), float(np.median(ratios)), p_value, low, high,
                            int(np.sum(log_ratios == 0.0)), method, note)
