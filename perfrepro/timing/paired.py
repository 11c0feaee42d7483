"""A program's time ratio to another (a completion to its canonical), with its own interval.

The wall backend times every program of a task once per repeat, interleaved, and reports each
program's second-fastest repeat (perfrepro.timing.wall.second_fastest), so a task's ratio is the
ratio of those. Its interval comes from the repeats themselves: resample the repeats (the two
programs' samples of a repeat stay together, they ran seconds apart), recompute the ratio, and
take the 2.5% and 97.5% percentiles. Seeded: the same samples always give the same interval. A
wide interval says that the ratio rests on a few processes; a tight one, that most repeats agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from perfrepro.records import Measurement
from perfrepro.timing.wall import second_fastest

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
# backends whose Measurement.samples are one value per repeat (gem5's are one per test)
PER_REPEAT_SAMPLES = ("wall", "deterministic")


@dataclass(frozen=True)
class RatioInterval:
    """`ratio` = program / baseline, each its second-fastest repeat (the wall backend's
    `execution_time`); [lo, hi] its bootstrap interval over the `repeats` paired repeats."""

    ratio: float
    lo: float
    hi: float
    repeats: int


def task_ratio(program: Measurement, baseline: Measurement, seed: int = SEED) -> RatioInterval | None:
    """`program` against `baseline` (e.g. a completion against its canonical), both measured in
    one backend run; None unless both passed with the same number (>= 1) of per-repeat samples."""
    if not (program.passed and baseline.passed) or not program.samples \
            or len(program.samples) != len(baseline.samples) \
            or {program.backend, baseline.backend} - set(PER_REPEAT_SAMPLES):
        return None
    pairs = list(zip(program.samples, baseline.samples))
    draw = random.Random(seed)
    ratios = []
    for _ in range(RESAMPLES):
        resample = [pairs[draw.randrange(len(pairs))] for _ in pairs]
        ratios.append(second_fastest([a for a, _ in resample]) / second_fastest([b for _, b in resample]))
    ratios.sort()
    tail = (1.0 - CONFIDENCE) / 2.0
    return RatioInterval(
        ratio=second_fastest(program.samples) / second_fastest(baseline.samples),
        lo=ratios[int(tail * (RESAMPLES - 1))],
        hi=ratios[int((1.0 - tail) * (RESAMPLES - 1) + 0.5)],
        repeats=len(pairs),
    )
